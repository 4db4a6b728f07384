"""Outcomes: receipts matched by target/type/id, fates per event, dependency closure, bisection."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import pytest

from api_client.models import (
    Action,
    BulkRejected,
    BundleReceipts,
    ErrorBody,
    ErrorType,
    Receipt,
    TaskState,
)
from worker.domain.bisection import bisect_refused
from worker.domain.coalesce import CoalesceMode, Fate
from worker.domain.events import ChangeEvent, Target
from worker.domain.keys import RelationshipKey
from worker.domain.ops import PlannedOp
from worker.domain.outcomes import (
    JUDGED_ON_OTHER_STATE,
    OpRef,
    bound_by_failed_creates,
    outcomes_for_rejections,
    outcomes_from_receipts,
)
from worker.domain.plan import BundlePlan, Plan, PlanCaps, bundle_of_ops, plan_bundles
from worker.domain.plan_check import validate_plan
from worker.domain.receipts import ReceiptMismatchError

from .factories import rel, res

C, U, D = Action.CREATE, Action.UPSERT, Action.DELETE
ANY_ERROR: dict[str, Any] = {"code": 400, "type": "INVALID_ARGUMENT", "message": "invalid schema"}


def link(action: Action, frm: str = "o1", to: str = "p1", **kwargs: Any) -> ChangeEvent:
    return rel(action, "works-at", ("office", frm), ("provider", to), **kwargs)


def one_bundle(events: list[ChangeEvent], **kwargs: Any) -> BundlePlan:
    plan = plan_bundles(events, caps=PlanCaps(isolate_expected_failures=False), **kwargs)
    assert len(plan.bundles) == 1
    return plan.bundles[0]


def receipt_for(op: PlannedOp, status: str, error: dict[str, Any] | None = None, **extra: Any):
    target, type_, id_ = op.receipt_key
    body: dict[str, Any] = {
        "status": status,
        "type": type_,
        "id": id_,
        "targetType": target.upper(),
        "action": op.action.value,
        **extra,
    }
    if error is not None:
        body["error"] = error
    return Receipt.model_validate(body)


Statuses = Mapping[int, tuple[str, dict[str, Any] | None]]


def sync_answer(bundle: BundlePlan, statuses: Statuses) -> BundleReceipts:
    """Receipts for every op (SUCCESS unless `statuses` maps its position in bundle.ops)."""
    made = [receipt_for(op, *statuses.get(i, ("SUCCESS", None))) for i, op in enumerate(bundle.ops)]
    n = len(bundle.resource_ops)
    return BundleReceipts(
        resource_operation_receipts=made[:n], relationship_operation_receipts=made[n:]
    )


def fates(outcomes) -> dict[str, Fate]:
    return {o.event_id: o.fate for o in outcomes.outcomes}


def test_outcomes_sync_success_applies_carriers_and_coalesces_the_superseded():
    a, b, c = res(C, "office", "o1"), res(U, "office", "o1"), link(U)
    bundle = one_bundle([a, b, c])
    outcomes = outcomes_from_receipts(bundle, sync_answer(bundle, {}))
    assert fates(outcomes) == {
        a.event_id: Fate.COALESCED,
        b.event_id: Fate.APPLIED,
        c.event_id: Fate.APPLIED,
    }
    assert outcomes.of(a.event_id).op == OpRef(0, Target.RESOURCE, 0)
    assert outcomes.of(c.event_id).op == OpRef(0, Target.RELATIONSHIP, 0)
    assert outcomes.to_replan == ()


def test_outcomes_failure_dead_letters_the_culprit_and_resubmits_the_innocent():
    a, b = res(U, "office", "o1"), res(U, "clinic", "c1")
    bundle = one_bundle([a, b])
    answer = sync_answer(bundle, {0: ("FAILURE", ANY_ERROR), 1: ("CANCELLED", None)})
    outcomes = outcomes_from_receipts(bundle, answer)
    assert fates(outcomes) == {a.event_id: Fate.FAILED, b.event_id: Fate.CANCELLED}
    failed = outcomes.of(a.event_id)
    assert failed.error is not None
    assert failed.error.type is ErrorType.INVALID_ARGUMENT
    assert outcomes.to_replan == (b.event_id,)
    assert [o.event_id for o in outcomes.failed] == [a.event_id]


def test_outcomes_refused_merged_operation_unmerges_its_events():
    a, b = res(C, "office", "o1"), res(U, "office", "o1")
    bundle = one_bundle([a, b])
    error = {"code": 409, "type": "ALREADY_EXISTS", "message": "exists"}
    outcomes = outcomes_from_receipts(bundle, sync_answer(bundle, {0: ("FAILURE", error)}))
    assert set(fates(outcomes).values()) == {Fate.UNMERGED}
    assert outcomes.no_merge == {a.event_id, b.event_id}
    assert outcomes.to_replan == (a.event_id, b.event_id)


@pytest.mark.parametrize("error_type", ["INTERNAL", "UNAVAILABLE", "UNAUTHENTICATED"])
def test_outcomes_transient_errors_are_retried_not_dead_lettered(error_type):
    a = res(U, "office", "o1")
    bundle = one_bundle([a])
    error = {"code": 500, "type": error_type, "message": "x"}
    outcomes = outcomes_from_receipts(bundle, sync_answer(bundle, {0: ("FAILURE", error)}))
    assert outcomes.of(a.event_id).fate is Fate.RETRY
    assert not outcomes.failed


def _mixed_bundle() -> tuple[BundlePlan, list[ChangeEvent]]:
    events = [
        res(U, "office", "o1"),
        res(U, "provider", "p1"),
        res(U, "provider", "p2"),
        link(U),
        link(U, to="p2"),
    ]
    return one_bundle(events), events


def test_outcomes_task_receipts_give_the_same_outcomes_as_sync_receipts():
    bundle, _ = _mixed_bundle()
    statuses = {
        1: ("FAILURE", ANY_ERROR),
        0: ("CANCELLED", None),
        2: ("CANCELLED", None),
        3: ("CANCELLED", None),
        4: ("CANCELLED", None),
    }
    sync = sync_answer(bundle, statuses)
    flat = sync.resource_operation_receipts + sync.relationship_operation_receipts
    task = TaskState(status="FAILURE", task_id="bd_1", receipts=flat)
    assert outcomes_from_receipts(bundle, task) == outcomes_from_receipts(bundle, sync)


@pytest.mark.parametrize("seed", range(6))
def test_outcomes_shuffled_receipts_give_the_same_outcomes(seed):
    bundle, _ = _mixed_bundle()
    statuses = {3: ("FAILURE", ANY_ERROR)} | dict.fromkeys((0, 1, 2, 4), ("CANCELLED", None))
    sync = sync_answer(bundle, statuses)
    flat = sync.resource_operation_receipts + sync.relationship_operation_receipts
    shuffled = list(itertools.permutations(flat))[seed * 17 % 120]
    task = TaskState(status="FAILURE", receipts=list(shuffled))
    reordered = BundleReceipts(
        resource_operation_receipts=list(reversed(sync.resource_operation_receipts)),
        relationship_operation_receipts=list(reversed(sync.relationship_operation_receipts)),
    )
    expected = outcomes_from_receipts(bundle, sync)
    assert outcomes_from_receipts(bundle, task) == expected
    assert outcomes_from_receipts(bundle, reordered) == expected


def test_outcomes_accept_the_short_relationship_receipt_id():
    event = link(U)
    bundle = one_bundle([event])
    receipt = Receipt(status="SUCCESS", type="works-at", id="o1.p1")
    answer = BundleReceipts(relationship_operation_receipts=[receipt])
    assert outcomes_from_receipts(bundle, answer).of(event.event_id).fate is Fate.APPLIED


def test_outcomes_fall_back_to_position_when_receipts_carry_no_ids():
    a, b = res(U, "office", "o1"), res(U, "clinic", "c1")
    bundle = one_bundle([a, b])
    legacy = BulkRejected(
        status="REJECTED",
        receipts=[
            Receipt(status="CANCELLED"),
            Receipt(status="FAILURE", error=ErrorBody(**ANY_ERROR)),
        ],
    )
    outcomes = outcomes_from_receipts(bundle, legacy)
    assert fates(outcomes) == {a.event_id: Fate.CANCELLED, b.event_id: Fate.FAILED}


def test_outcomes_position_fallback_checks_every_field_a_receipt_carries():
    a, b = res(U, "office", "o1"), res(U, "clinic", "c1")
    bundle = one_bundle([a, b])
    wrong = TaskState(
        status="SUCCESS",
        receipts=[
            Receipt(status="SUCCESS", type="clinic"),
            Receipt(status="SUCCESS", type="office"),
        ],
    )
    with pytest.raises(ReceiptMismatchError, match="receipt 0 has type clinic"):
        outcomes_from_receipts(bundle, wrong)


def _one(status: str = "SUCCESS", **fields: Any) -> Receipt:
    return Receipt.model_validate({"status": status, **fields})


@pytest.mark.parametrize(
    ("receipts", "match"),
    [
        ([], "0 receipts for 2 operations"),
        ([_one(type="office", id="o1"), _one(type="office", id="zz")], "not sent"),
        ([_one(type="office", id="o1"), _one(type="office", id="o1")], "two receipts"),
        ([_one(type="office", id="o1"), _one(type="clinic", id="c1", action="DELETE")], "action"),
        (
            [_one(type="office", id="o1", targetType="RELATIONSHIP"), _one(type="clinic", id="c1")],
            "targetType",
        ),
        ([_one(type="office", id="o1"), _one("PENDING", type="clinic", id="c1")], "not a terminal"),
    ],
    ids=["count", "unknown-id", "duplicate", "action", "target-type", "pending"],
)
def test_outcomes_receipt_mismatch_is_a_contract_error(receipts, match):
    bundle = one_bundle([res(U, "office", "o1"), res(U, "clinic", "c1")])
    with pytest.raises(ReceiptMismatchError, match=match):
        outcomes_from_receipts(bundle, TaskState(status="SUCCESS", receipts=receipts))


def test_outcomes_refuse_a_task_that_is_not_terminal_or_has_no_receipts():
    bundle = one_bundle([res(U, "office", "o1")])
    with pytest.raises(ValueError, match="not terminal"):
        outcomes_from_receipts(bundle, TaskState(status="PENDING", receipts=[]))
    with pytest.raises(ValueError, match="with receipts"):
        outcomes_from_receipts(bundle, TaskState(status="SUCCESS"))


def test_outcomes_cancelled_task_without_receipts_resubmits_everything():
    a = res(U, "office", "o1")
    bundle = one_bundle([a])
    outcomes = outcomes_from_receipts(bundle, TaskState(status="CANCELLED", receipts=[]))
    assert outcomes.of(a.event_id).fate is Fate.CANCELLED


# --- dependency closure -----------------------------------------------------------------------


def _created_by_worker(type_: str, id_: str) -> ChangeEvent:
    event = res(C, type_, id_)
    return event.model_copy(update={"generated_id": True})


def test_outcomes_bind_a_relationship_to_a_failed_create_of_its_end():
    create = _created_by_worker("provider", "p1")
    link_event, other = link(C), res(U, "clinic", "c1")
    bundle = one_bundle([create, link_event, other])
    order = [op.key.type for op in bundle.ops]
    assert order == ["provider", "clinic", "works-at"]
    statuses = {0: ("FAILURE", ANY_ERROR), 1: ("CANCELLED", None), 2: ("CANCELLED", None)}
    outcomes = outcomes_from_receipts(bundle, sync_answer(bundle, statuses))
    bound = outcomes.of(link_event.event_id)
    assert bound.fate is Fate.FAILED
    assert bound.bound_to == create.event_id
    assert "never created" in bound.reason
    assert outcomes.of(other.event_id).fate is Fate.CANCELLED


def test_outcomes_do_not_bind_when_the_create_failed_already_exists():
    create = _created_by_worker("provider", "p1")
    link_event = link(C)
    bundle = one_bundle([create, link_event])
    error = {"code": 409, "type": "ALREADY_EXISTS", "message": "x"}
    answer = sync_answer(bundle, {0: ("FAILURE", error), 1: ("CANCELLED", None)})
    assert outcomes_from_receipts(bundle, answer).of(link_event.event_id).fate is Fate.CANCELLED


def test_outcomes_do_not_bind_to_a_create_whose_id_the_producer_chose():
    create, link_event = res(C, "provider", "p1"), link(C)
    bundle = one_bundle([create, link_event])
    answer = sync_answer(bundle, {0: ("FAILURE", ANY_ERROR), 1: ("CANCELLED", None)})
    # The entity may have existed before: the relationship meets its own fate.
    assert outcomes_from_receipts(bundle, answer).of(link_event.event_id).fate is Fate.CANCELLED


def test_outcomes_an_atomic_batch_fails_together_and_binds_its_relationships():
    batch = [
        _created_by_worker("provider", "p1").model_copy(update={"atomic_batch": "b1"}),
        res(U, "office", "o1", atomicBatch="b1"),
    ]
    outside, neighbour = link(U), res(U, "clinic", "c1")
    bundle = one_bundle([*batch, outside, neighbour])
    culprit = next(i for i, op in enumerate(bundle.ops) if op.key.type == "office")
    cancelled: tuple[str, dict[str, Any] | None] = ("CANCELLED", None)
    statuses = dict.fromkeys(range(len(bundle.ops)), cancelled)
    statuses[culprit] = ("FAILURE", ANY_ERROR)
    outcomes = outcomes_from_receipts(bundle, sync_answer(bundle, statuses))
    created = outcomes.of(batch[0].event_id)
    assert (created.fate, created.bound_to) == (Fate.FAILED, batch[1].event_id)
    # The provider was never created (its batch failed), so the link is bound to it.
    assert outcomes.of(outside.event_id).bound_to == batch[0].event_id
    assert outcomes.of(neighbour.event_id).fate is Fate.CANCELLED


def test_bound_by_failed_creates_binds_later_relationships_until_the_end_is_written():
    create = _created_by_worker("provider", "p1")
    first, rewrite, second = link(U), res(U, "provider", "p1"), link(U, frm="o2")
    bound = bound_by_failed_creates([create], [first, rewrite, second])
    assert bound == {first.event_id: create.event_id}


def test_outcomes_for_rejections_dead_letter_with_the_planner_reason():
    big = res(U, "office", "o1", data={"x": "y" * 2_000})
    plan = plan_bundles([big], caps=PlanCaps(max_bytes=1_000))
    (outcome,) = outcomes_for_rejections(plan).outcomes
    assert outcome.fate is Fate.FAILED
    assert outcome.error is not None
    assert outcome.error.type is ErrorType.CONTENT_TOO_LARGE


# --- bisection --------------------------------------------------------------------------------

REFUSAL = ErrorBody(code=400, type="INVALID_ARGUMENT", message="bad request")


def _validate_halves(halves: tuple[tuple[PlannedOp, ...], ...]) -> None:
    bundles = tuple(bundle_of_ops(i, ops) for i, ops in enumerate(halves))
    validate_plan(Plan("src", CoalesceMode.SUPERSEDE, bundles), PlanCaps())


def test_bisect_refused_splits_a_bundle_in_two_ordered_halves():
    bundle = one_bundle([res(U, "office", f"o{i}") for i in range(6)])
    result = bisect_refused(bundle, REFUSAL, depth=0, max_depth=4)
    assert result.split
    assert [len(h) for h in result.halves] == [3, 3]
    _validate_halves(result.halves)


def test_bisect_refused_keeps_relationships_in_planned_bundles_after_their_ends():
    events = [
        res(U, "clinic", "c1"),
        res(U, "office", "o1"),
        res(U, "provider", "p1"),
        link(U),
        link(U, frm="o2"),
        link(U, frm="o3"),
    ]
    bundle = one_bundle(events)
    first, second = bisect_refused(bundle, REFUSAL, depth=0, max_depth=4).halves
    written_later = {op.key for op in second}
    for op in first:
        if isinstance(op.key, RelationshipKey):
            assert not set(op.key.endpoints) & written_later
    _validate_halves((first, second))


def test_bisect_refused_moves_a_unit_that_reads_a_later_write():
    # A hand-made bundle whose batch reads a resource written by a later unit: the batch moves to
    # the second half, so that the write still runs first.
    batch_end = res(U, "office", "o1", atomicBatch="b1")
    batch_link = link(U, atomicBatch="b1")
    provider = res(U, "provider", "p1")
    ops = plan_bundles([batch_end, batch_link]).bundles[0].ops
    later = plan_bundles([provider]).bundles[0].ops
    bundle = bundle_of_ops(0, [ops[0], later[0], ops[1]])
    first, second = bisect_refused(bundle, REFUSAL, depth=0, max_depth=4).halves
    assert [op.key.type for op in first] == ["provider"]
    assert {op.atomic_batch for op in second} == {"b1"}


def test_bisect_refused_never_splits_an_atomic_batch():
    events = [res(U, "office", f"o{i}", atomicBatch="b1") for i in range(4)]
    bundle = one_bundle([*events, res(U, "clinic", "c1")])
    result = bisect_refused(bundle, REFUSAL, depth=0, max_depth=4)
    batch_halves = {i for i, half in enumerate(result.halves) for op in half if op.atomic_batch}
    assert len(batch_halves) == 1


def test_bisect_refused_dead_letters_a_single_event_alone():
    event = res(U, "office", "o1")
    result = bisect_refused(one_bundle([event]), REFUSAL, depth=2, max_depth=4)
    assert not result.split
    (outcome,) = result.outcomes.outcomes
    assert (outcome.fate, outcome.error) == (Fate.FAILED, REFUSAL)


def test_bisect_refused_unmerges_a_merged_operation_alone():
    events = [res(C, "office", "o1"), res(U, "office", "o1")]
    result = bisect_refused(one_bundle(events), REFUSAL, depth=1, max_depth=4)
    assert {o.fate for o in result.outcomes.outcomes} == {Fate.UNMERGED}


def test_bisect_refused_stops_at_the_depth_bound():
    bundle = one_bundle([res(U, "office", f"o{i}") for i in range(4)])
    result = bisect_refused(bundle, REFUSAL, depth=3, max_depth=3)
    assert not result.split
    assert {o.fate for o in result.outcomes.outcomes} == {Fate.FAILED}
    assert all("depth 3" in o.reason for o in result.outcomes.outcomes)


# -- several failures in one refused bundle (the emulator's `bundle_failures: all`) --------------

EXISTS: dict[str, Any] = {"code": 409, "type": "ALREADY_EXISTS", "message": "exists"}
MISSING: dict[str, Any] = {"code": 404, "type": "NOT_FOUND", "message": "not found"}
NO_END: dict[str, Any] = {"code": 400, "type": "FAILED_PRECONDITION", "message": "no end"}
CANCELLED_RECEIPT: tuple[str, dict[str, Any] | None] = ("CANCELLED", None)


def _error_types(outcomes) -> dict[str, str | None]:
    return {o.event_id: None if o.error is None else str(o.error.type) for o in outcomes.outcomes}


def test_outcomes_several_failures_each_dead_letter_their_own_event_with_their_own_error():
    created, deleted, kept = res(C, "office", "o1"), res(D, "office", "o2"), res(U, "office", "o3")
    linked = link(U, frm="o3", to="p9")
    bundle = one_bundle([created, deleted, kept, linked])
    position = {op.carrier.event_id: i for i, op in enumerate(bundle.ops)}
    statuses = {
        position[created.event_id]: ("FAILURE", EXISTS),
        position[deleted.event_id]: ("FAILURE", MISSING),
        position[kept.event_id]: CANCELLED_RECEIPT,
        position[linked.event_id]: ("FAILURE", NO_END),
    }

    outcomes = outcomes_from_receipts(bundle, sync_answer(bundle, statuses))

    assert [o.event_id for o in outcomes.failed] == [
        created.event_id,
        deleted.event_id,
        linked.event_id,
    ]
    assert _error_types(outcomes) == {
        created.event_id: "ALREADY_EXISTS",
        deleted.event_id: "NOT_FOUND",
        kept.event_id: None,
        linked.event_id: "FAILED_PRECONDITION",
    }
    assert outcomes.to_replan == (kept.event_id,)
    assert all(o.bound_to is None for o in outcomes.outcomes)


def test_outcomes_several_failures_unmerge_a_refused_merge_beside_a_failed_single_event():
    first, second = res(C, "office", "o1"), res(U, "office", "o1")
    gone, innocent = res(D, "office", "o2"), res(U, "office", "o3")
    bundle = one_bundle([first, second, gone, innocent])
    assert len(bundle.ops) == 3
    statuses = {0: ("FAILURE", EXISTS), 1: ("FAILURE", MISSING), 2: CANCELLED_RECEIPT}

    outcomes = outcomes_from_receipts(bundle, sync_answer(bundle, statuses))

    assert fates(outcomes) == {
        first.event_id: Fate.UNMERGED,
        second.event_id: Fate.UNMERGED,
        gone.event_id: Fate.FAILED,
        innocent.event_id: Fate.CANCELLED,
    }
    assert outcomes.no_merge == {first.event_id, second.event_id}
    assert set(outcomes.to_replan) == {first.event_id, second.event_id, innocent.event_id}
    assert _error_types(outcomes)[gone.event_id] == "NOT_FOUND"


def test_outcomes_several_failures_in_an_atomic_batch_keep_their_errors_and_bind_the_rest():
    batch = [
        res(C, "office", "o1", atomicBatch="b1"),
        res(D, "office", "o2", atomicBatch="b1"),
        res(U, "office", "o3", atomicBatch="b1"),
    ]
    bundle = one_bundle(batch)
    statuses = {0: ("FAILURE", EXISTS), 1: ("FAILURE", MISSING), 2: CANCELLED_RECEIPT}

    outcomes = outcomes_from_receipts(bundle, sync_answer(bundle, statuses))

    assert set(fates(outcomes).values()) == {Fate.FAILED}
    assert _error_types(outcomes) == {
        batch[0].event_id: "ALREADY_EXISTS",
        batch[1].event_id: "NOT_FOUND",
        batch[2].event_id: "ALREADY_EXISTS",
    }
    assert [o.bound_to for o in outcomes.outcomes] == [None, None, batch[0].event_id]
    assert outcomes.to_replan == ()


def test_outcomes_a_relationship_failing_on_its_own_beside_its_failed_create_keeps_its_error():
    create = _created_by_worker("provider", "p1")
    link_event, other = link(C), res(U, "clinic", "c1")
    bundle = one_bundle([create, link_event, other])
    statuses = {0: ("FAILURE", ANY_ERROR), 1: CANCELLED_RECEIPT, 2: ("FAILURE", NO_END)}

    outcomes = outcomes_from_receipts(bundle, sync_answer(bundle, statuses))

    judged = outcomes.of(link_event.event_id)
    assert (judged.fate, judged.bound_to) == (Fate.FAILED, None)
    assert judged.error is not None
    assert judged.error.type is ErrorType.FAILED_PRECONDITION
    assert outcomes.to_replan == (other.event_id,)


@pytest.mark.parametrize("seed", range(4))
def test_outcomes_several_failures_read_the_same_from_shuffled_task_receipts(seed):
    bundle, _ = _mixed_bundle()
    statuses: dict[int, tuple[str, dict[str, Any] | None]] = {
        1: ("FAILURE", ANY_ERROR),
        3: ("FAILURE", MISSING),
    }
    statuses |= dict.fromkeys((0, 2, 4), CANCELLED_RECEIPT)
    sync = sync_answer(bundle, statuses)
    flat = sync.resource_operation_receipts + sync.relationship_operation_receipts
    shuffled = list(itertools.permutations(flat))[seed * 29 % 120]

    task = outcomes_from_receipts(bundle, TaskState(status="FAILURE", receipts=list(shuffled)))

    assert task == outcomes_from_receipts(bundle, sync)
    assert len(task.failed) == 2


def _every_failure_bundle() -> tuple[BundlePlan, ChangeEvent, ChangeEvent, ChangeEvent]:
    """An atomic batch (a DELETE that fails, then a DELETE of o2) and a link to o2 after it."""
    missing = res(D, "office", "o1", atomicBatch="b1")
    deleted = res(D, "office", "o2", atomicBatch="b1")
    linked = link(C, frm="o2")
    bundle = one_bundle([missing, deleted, linked])
    return bundle, missing, deleted, linked


def test_outcomes_every_failure_refusals_after_a_bound_operation_are_sent_again():
    # The Registry ran the batch's DELETE of o2 before judging the link: one by one the batch
    # fails whole, o2 stays, and the link applies. Its refusal is not its own outcome.
    bundle, missing, deleted, linked = _every_failure_bundle()
    answer = sync_answer(bundle, {0: ("FAILURE", MISSING), 1: CANCELLED_RECEIPT,
                                  2: ("FAILURE", NO_END)})  # fmt: skip
    outcomes = outcomes_from_receipts(bundle, answer)
    assert fates(outcomes) == {
        missing.event_id: Fate.FAILED,
        deleted.event_id: Fate.FAILED,
        linked.event_id: Fate.CANCELLED,
    }
    assert outcomes.of(deleted.event_id).bound_to == missing.event_id
    assert outcomes.of(linked.event_id).reason == JUDGED_ON_OTHER_STATE
    assert outcomes.to_replan == (linked.event_id,)


def test_outcomes_a_refusal_inside_the_bound_operations_batch_stays_its_own():
    # One by one the batch runs whole too: its link to the office it deleted fails there.
    missing = res(D, "office", "o1", atomicBatch="b1")
    deleted = res(D, "office", "o2", atomicBatch="b1")
    linked = link(C, frm="o2", atomicBatch="b1")
    bundle = one_bundle([missing, deleted, linked])
    answer = sync_answer(bundle, {0: CANCELLED_RECEIPT, 1: CANCELLED_RECEIPT,
                                  2: ("FAILURE", NO_END)})  # fmt: skip
    outcomes = outcomes_from_receipts(bundle, answer)
    assert set(fates(outcomes).values()) == {Fate.FAILED}
    assert outcomes.of(linked.event_id).bound_to is None
    assert outcomes.to_replan == ()


def test_outcomes_every_failure_refusals_after_an_unmerged_operation_on_their_entity_go_again():
    # The merged CREATE of p2 is refused for its UPSERT's payload: one by one the CREATE alone
    # applies, so the link to p2, refused in the bundle for a missing end, applies too.
    create, upsert = res(C, "provider", "p2"), res(U, "provider", "p2")
    linked, elsewhere = link(C, frm="o2", to="p2"), res(D, "office", "o9")
    bundle = one_bundle([create, upsert, linked, elsewhere])
    position = {op.event_ids[-1]: i for i, op in enumerate(bundle.ops)}
    statuses = {
        position[upsert.event_id]: ("FAILURE", ANY_ERROR),
        position[linked.event_id]: ("FAILURE", NO_END),
        position[elsewhere.event_id]: ("FAILURE", MISSING),
    }
    outcomes = outcomes_from_receipts(bundle, sync_answer(bundle, statuses))
    assert fates(outcomes) == {
        create.event_id: Fate.UNMERGED,
        upsert.event_id: Fate.UNMERGED,
        linked.event_id: Fate.CANCELLED,
        elsewhere.event_id: Fate.FAILED,  # an office nothing before it touched: its own refusal
    }
    assert outcomes.of(linked.event_id).reason == JUDGED_ON_OTHER_STATE

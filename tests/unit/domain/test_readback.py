"""Read-back: when an entity as read shows what was sent, and what a lost answer resolves to."""

from __future__ import annotations

from typing import Any

import pytest

from api_client.models import Action, BundleReceipts, ErrorBody, ErrorType, Receipt
from worker.domain.coalesce import Fate
from worker.domain.events import ChangeEvent
from worker.domain.keys import EntityKey
from worker.domain.outcomes import outcomes_from_receipts
from worker.domain.plan import BundlePlan, PlanCaps, plan_bundles
from worker.domain.readback import (
    NOT_APPLIED,
    POISON,
    answered_as_applied,
    op_applied,
    resolve,
    submission_ops,
)

from .factories import rel, res

C, U, D = Action.CREATE, Action.UPSERT, Action.DELETE


def one_bundle(events: list[ChangeEvent]) -> BundlePlan:
    plan = plan_bundles(events, caps=PlanCaps(isolate_expected_failures=False))
    assert len(plan.bundles) == 1
    return plan.bundles[0]


def only_op(event: ChangeEvent) -> Any:
    (op,) = submission_ops(one_bundle([event]))
    return op


@pytest.mark.parametrize(
    ("seen", "applied"),
    [
        (None, False),
        ({"type": "provider", "id": "p1", "data": {"name": "A"}}, True),
        ({"type": "provider", "id": "p1", "data": {"name": "A"}, "meta": {"x": 1}}, True),
        ({"type": "provider", "id": "p1", "data": {"name": "A", "extra": 2}}, True),
        ({"type": "provider", "id": "p1", "data": {"name": "B"}}, False),
        ({"type": "provider", "id": "p1", "data": {}}, False),
        ({"type": "provider", "id": "p1"}, False),
        ({"type": "provider", "id": "p1", "data": "not an object"}, False),
    ],
    ids=["absent", "same", "server-meta", "extra-field", "other-value", "empty", "no-data", "odd"],
)
@pytest.mark.parametrize("action", [C, U])
def test_readback_a_write_is_applied_when_the_fields_sent_are_there(
    action: Action, seen: Any, applied: bool
):
    op = only_op(res(action, "provider", "p1", data={"name": "A"}))
    assert op_applied(op, seen) is applied


def test_readback_nested_values_must_be_equal_not_just_present():
    op = only_op(res(U, "provider", "p1", data={"address": {"city": "Laval", "zip": "H7N"}}))
    assert op_applied(op, {"data": {"address": {"city": "Laval", "zip": "H7N"}}})
    assert not op_applied(op, {"data": {"address": {"city": "Laval"}}})


@pytest.mark.parametrize(("seen", "applied"), [(None, True), ({"data": {}}, False)])
def test_readback_a_delete_is_applied_when_the_entity_is_gone(seen: Any, applied: bool):
    assert op_applied(only_op(res(D, "provider", "p1")), seen) is applied


def test_readback_a_relationship_compares_its_data():
    op = only_op(rel(U, data={"role": "x"}))
    assert op_applied(op, {"type": "works-at", "data": {"role": "x"}})
    assert not op_applied(op, {"type": "works-at", "data": {"role": "y"}})
    assert not op_applied(op, None)


def _bundle() -> BundlePlan:
    return one_bundle(
        [
            res(C, "office", "o1", eid="c", data={"name": "N"}),
            res(D, "office", "o2", eid="d"),
            rel(C, frm=("office", "o1"), to=("provider", "p1"), eid="r", data={"k": 1}),
        ]
    )


def _seen_all_applied(plan: BundlePlan) -> dict[EntityKey, Any]:
    ops = submission_ops(plan)
    return {
        ops[0].key: {"data": {"name": "N"}},
        ops[1].key: None,
        ops[2].key: {"data": {"k": 1}},
    }


@pytest.mark.parametrize("settled", [False, True])
def test_readback_everything_applied_is_recorded_at_once(settled: bool):
    plan = _bundle()
    resolution = resolve(submission_ops(plan), _seen_all_applied(plan), settled=settled)
    assert resolution is not None
    assert {o.event_id: o.fate for o in resolution.outcomes.outcomes} == {
        "c": Fate.APPLIED,
        "d": Fate.APPLIED,
        "r": Fate.APPLIED,
    }
    assert resolution.resent == frozenset()


def test_readback_something_missing_waits_until_the_settle_time():
    plan = _bundle()
    seen = _seen_all_applied(plan)
    seen[submission_ops(plan)[0].key] = None  # the CREATE is not there (yet)
    assert resolve(submission_ops(plan), seen, settled=False) is None

    resolution = resolve(submission_ops(plan), seen, settled=True)

    assert resolution is not None
    fates = {o.event_id: (o.fate, o.reason) for o in resolution.outcomes.outcomes}
    assert fates["c"] == (Fate.RETRY, NOT_APPLIED)
    assert fates["d"][0] is Fate.APPLIED
    assert resolution.resent == frozenset({"c"})


def test_readback_poison_dead_letters_what_did_not_apply_and_keeps_what_did():
    plan = _bundle()
    seen = _seen_all_applied(plan)
    seen[submission_ops(plan)[2].key] = None
    resolution = resolve(submission_ops(plan), seen, settled=False, give_up="poison: stopped 6")
    assert resolution is not None
    failed = resolution.outcomes.of("r")
    assert failed.fate is Fate.FAILED
    assert failed.error is not None
    assert failed.error.type == POISON
    assert resolution.outcomes.of("c").fate is Fate.APPLIED
    assert resolution.resent == frozenset()


def test_readback_merged_events_are_coalesced_into_the_applied_operation():
    plan = one_bundle(
        [res(U, "office", "o1", eid="u1", data={"a": 1}), res(U, "office", "o1", eid="u2")]
    )
    (op,) = submission_ops(plan)
    resolution = resolve([op], {op.key: {"data": {"v": "u2"}}}, settled=False)
    assert resolution is not None
    assert {o.event_id: o.fate for o in resolution.outcomes.outcomes} == {
        "u1": Fate.COALESCED,
        "u2": Fate.APPLIED,
    }


def _refused(plan: BundlePlan, failing: int, error_type: ErrorType) -> BundleReceipts:
    receipts = []
    for index, op in enumerate(submission_ops(plan)):
        body = op.operation.model_dump(by_alias=True, exclude_none=True)
        payload = body.get(op.action.value.lower()) or {}
        status = "FAILURE" if index == failing else "CANCELLED"
        error = ErrorBody(code=409, type=error_type, message="x") if index == failing else None
        receipts.append(
            Receipt(
                status=status,
                action=op.action,
                type=payload.get("type"),
                id=payload.get("id") if op.target.value == "resource" else None,
                target_type=op.target.value.upper(),
                error=error,
            )
        )
    return BundleReceipts(resource_operation_receipts=receipts)


@pytest.mark.parametrize(
    ("failing", "error_type", "candidate"),
    [
        (0, ErrorType.ALREADY_EXISTS, True),
        (0, ErrorType.INVALID_ARGUMENT, False),
        (1, ErrorType.NOT_FOUND, True),
        (1, ErrorType.ALREADY_EXISTS, False),
    ],
)
def test_readback_refusals_that_may_mean_already_applied(
    failing: int, error_type: ErrorType, candidate: bool
):
    plan = one_bundle([res(C, "office", "o1", eid="c"), res(D, "office", "o2", eid="d")])
    answer = _refused(plan, failing, error_type)
    found = answered_as_applied(plan, answer)
    assert [op.carrier.event_id for op in found] == (["cd"[failing]] if candidate else [])


def test_readback_refusals_read_as_applied_or_retried_on_request():
    plan = one_bundle([res(C, "office", "o1", eid="c"), res(D, "office", "o2", eid="d")])
    delete_key = submission_ops(plan)[1].key
    answer = _refused(plan, 1, ErrorType.NOT_FOUND)

    plain = outcomes_from_receipts(plan, answer)
    assert (plain.of("d").fate, plain.of("c").fate) == (Fate.FAILED, Fate.CANCELLED)

    applied = outcomes_from_receipts(plan, answer, applied_anyway={delete_key})
    assert (applied.of("d").fate, applied.of("c").fate) == (Fate.APPLIED, Fate.CANCELLED)

    retried = outcomes_from_receipts(plan, answer, retry_anyway={delete_key})
    assert retried.of("d").fate is Fate.RETRY

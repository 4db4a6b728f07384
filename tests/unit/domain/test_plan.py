"""Bundle planning: unique ids, order across bundles, caps measured by dump_json, atomic batches."""

from __future__ import annotations

import pytest

from api_client.models import (
    Action,
    BundleRequest,
    ErrorType,
    RelationshipOperation,
    ResourceOperation,
    dump_json,
)
from worker.domain.coalesce import CoalesceMode, Role
from worker.domain.events import ChangeEvent
from worker.domain.keys import EntityKey, RelationshipKey, ResourceKey
from worker.domain.ops import EMPTY_BUNDLE_BYTES, bundle_bytes
from worker.domain.ordering import PlanInputError
from worker.domain.plan import Plan, PlanCaps, check_atomic_batch, plan_bundles
from worker.domain.plan_check import validate_plan

from .factories import rel, res

C, U, D = Action.CREATE, Action.UPSERT, Action.DELETE
OFFICE = ResourceKey("src", "office", "o1")
PROVIDER = ResourceKey("src", "provider", "p1")
WORKS_AT = RelationshipKey("src", "works-at", "office", "o1", "provider", "p1")


def link(action: Action, **kwargs) -> ChangeEvent:
    """works-at from office o1 to provider p1."""
    return rel(action, "works-at", ("office", "o1"), ("provider", "p1"), **kwargs)


def planned(events: list[ChangeEvent], caps: PlanCaps | None = None, **kwargs) -> Plan:
    """Plan and validate, as the pipeline does before every submission."""
    caps = caps or PlanCaps()
    plan = plan_bundles(events, caps=caps, **kwargs)
    validate_plan(plan, caps)
    return plan


def bundle_of(plan: Plan, key: EntityKey, nth: int = 0) -> int:
    found = [b.index for b in plan.bundles for op in b.ops if op.key == key]
    return found[nth]


def layout(plan: Plan) -> list[list[tuple[str, str, int]]]:
    """Each bundle as (key kind + type, action, number of events)."""
    return [
        [(f"{op.key.type}", op.action.value, len(op.events)) for op in bundle.ops]
        for bundle in plan.bundles
    ]


def test_plan_bundles_packs_independent_entities_and_groups_into_one_bundle():
    events = [res(U, "office", f"o{i}", group=f"g{i % 3}") for i in range(10)]
    plan = planned(events)
    assert len(plan.bundles) == 1
    assert len(plan.bundles[0].resource_ops) == 10


def test_plan_bundles_records_event_ids_and_roles_per_operation():
    first, second = res(C, "office", "o1"), res(U, "office", "o1")
    plan = planned([first, second])
    (op,) = plan.ops
    assert op.event_ids == (first.event_id, second.event_id)
    assert [e.role for e in op.events] == [Role.SUPERSEDED, Role.CARRIER]
    assert [e.position for e in op.events] == [0, 1]
    assert isinstance(op.operation, ResourceOperation)
    assert op.operation.action == Action.CREATE
    assert op.operation.create is not None
    assert op.operation.create.data == second.data
    assert op.operation.create.id == "o1"


def test_plan_bundles_keeps_one_operation_per_resource_id_per_bundle():
    events = [res(C, "office", "o1"), res(D, "office", "o1"), res(U, "office", "o1")]
    plan = planned(events, PlanCaps(isolate_expected_failures=False))
    assert [len(b.ops) for b in plan.bundles] == [1, 1, 1]
    assert [b.ops[0].action for b in plan.bundles] == [C, D, U]


def test_plan_bundles_keeps_one_operation_per_relationship_per_bundle():
    events = [link(C), link(D), link(C)]
    plan = planned(events)
    assert [bundle_of(plan, WORKS_AT, n) for n in range(3)] == [0, 1, 2]


def test_plan_bundles_puts_resource_operations_before_relationship_operations():
    events = [link(U), res(U, "clinic", "c1"), rel(U, "other", ("a", "1"), ("b", "2"))]
    plan = planned(events)
    (bundle,) = plan.bundles
    body = dump_json(bundle.request).decode()
    assert body.index('"resourceOperations"') < body.index('"relationshipOperations"')
    assert [op.key.type for op in bundle.resource_ops] == ["clinic"]
    assert [op.key.type for op in bundle.relationship_ops] == ["works-at", "other"]


def test_plan_bundles_sends_an_endpoint_write_published_first_in_the_same_bundle():
    events = [res(C, "office", "o1"), res(C, "provider", "p1"), link(C)]
    plan = planned(events)
    assert len(plan.bundles) == 1


@pytest.mark.parametrize("end_action", [D, C, U])
def test_plan_bundles_puts_a_relationship_before_a_later_write_of_its_end(end_action):
    # Published: the relationship, then a write of its end. In one bundle the resource would run
    # first, so the relationship goes in an earlier bundle (invariant 3, rule C).
    events = [link(U), res(end_action, "provider", "p1")]
    plan = planned(events)
    assert bundle_of(plan, WORKS_AT) < bundle_of(plan, PROVIDER)


def test_plan_bundles_relationship_before_endpoint_delete_across_groups():
    events = [
        res(U, "office", "o1", group="offices"),
        link(U, group="offices"),
        res(D, "provider", "p1", group="providers"),
        res(U, "clinic", "c1", group="clinics"),
    ]
    plan = planned(events)
    assert bundle_of(plan, WORKS_AT) == 0
    assert bundle_of(plan, PROVIDER) == 1
    assert bundle_of(plan, ResourceKey("src", "clinic", "c1")) == 0


@pytest.mark.parametrize(("first", "then"), [(U, D), (C, U), (U, U)])
def test_plan_bundles_never_merges_an_end_write_across_a_relationship(first, then):
    # Rule A: office, relationship, office again. Merging the second office event into the first
    # would let the relationship see what only the second one leaves (for a DELETE, no office;
    # for a CREATE refused on its own payload, an office the UPSERT alone would have created).
    events = [res(first, "office", "o1"), link(U), res(then, "office", "o1")]
    plan = planned(events)
    assert layout(plan) == [
        [("office", first.value, 1), ("works-at", "UPSERT", 1)],
        [("office", then.value, 1)],
    ]


def test_plan_bundles_closes_a_relationship_operation_at_a_write_of_its_end():
    # Rule B: the second relationship event must see the office after its UPSERT, not merge back.
    events = [link(U), res(U, "office", "o1"), link(U)]
    plan = planned(events)
    assert bundle_of(plan, WORKS_AT, 0) == 0
    assert bundle_of(plan, OFFICE) == 1
    assert bundle_of(plan, WORKS_AT, 1) == 1


def test_plan_bundles_strict_mode_merges_nothing():
    events = [res(U, "office", "o1") for _ in range(3)]
    plan = planned(events, mode=CoalesceMode.STRICT)
    assert [len(b.ops) for b in plan.bundles] == [1, 1, 1]


def test_plan_bundles_no_merge_events_travel_alone_in_order():
    events = [res(C, "office", "o1"), res(U, "office", "o1"), res(U, "office", "o1")]
    plan = planned(events, no_merge={events[0].event_id, events[1].event_id})
    assert [op.event_ids for op in plan.ops] == [
        (events[0].event_id,),
        (events[1].event_id,),
        (events[2].event_id,),
    ]
    assert [b.index for b in plan.bundles] == [0, 1, 2]


def test_plan_bundles_isolates_operations_the_table_expects_to_fail():
    events = [res(C, "office", "o1"), res(C, "office", "o1"), res(U, "clinic", "c1")]
    plan = planned(events)
    isolated = [b for b in plan.bundles if b.isolated]
    assert len(isolated) == 1
    assert isolated[0].ops[0].event_ids == (events[1].event_id,)
    assert isolated[0].ops[0].expected_error is ErrorType.ALREADY_EXISTS
    relaxed = planned(events, PlanCaps(isolate_expected_failures=False))
    assert not any(b.isolated for b in relaxed.bundles)


def test_plan_bundles_respects_the_operation_count_cap():
    events = [res(U, "office", f"o{i}") for i in range(7)]
    plan = planned(events, PlanCaps(max_operations=3))
    assert [len(b.ops) for b in plan.bundles] == [3, 3, 1]


def test_plan_bundles_measures_bytes_with_dump_json_of_the_whole_request():
    events = [res(U, "office", f"o{i}", data={"blob": "x" * 1000}) for i in range(10)]
    one = planned(events[:1]).bundles[0].size_bytes
    two = planned(events[:2]).bundles[0].size_bytes
    per_op = two - one - 1  # one comma between two operations
    cap = EMPTY_BUNDLE_BYTES + 3 * per_op + 2  # room for exactly three operations
    plan = planned(events, PlanCaps(max_bytes=cap))
    assert [len(b.ops) for b in plan.bundles] == [3, 3, 3, 1]
    for bundle in plan.bundles:
        assert bundle.size_bytes == len(dump_json(bundle.request)) <= cap
    assert plan.bundles[0].size_bytes == cap


def test_plan_bundles_byte_count_matches_dump_json_for_mixed_bundles():
    events = [
        res(U, "office", "o1", data={"n": "Élan"}, meta={"createdAt": "2024-01-01T00:00:00Z"}),
        res(C, "provider", "p1", contained={"k": [{"id": "1"}]}),
        link(U, data={"since": "2020"}),
        rel(D, "x-y", ("office", "o1"), ("clinic", "c9")),
        res(D, "clinic", "c2"),
    ]
    plan = planned(events)
    for bundle in plan.bundles:
        resources = [op.size_bytes for op in bundle.resource_ops]
        relationships = [op.size_bytes for op in bundle.relationship_ops]
        counted = bundle_bytes(resources, relationships)
        assert counted == len(dump_json(bundle.request)) == bundle.size_bytes


def test_plan_bundles_rejects_an_operation_no_bundle_can_carry_and_plans_the_rest():
    big = res(U, "office", "o1", data={"blob": "x" * 2_000})
    other, after = res(U, "clinic", "c1"), res(U, "office", "o1")
    plan = planned([big, other, after], PlanCaps(max_bytes=1_000), mode=CoalesceMode.STRICT)
    (rejection,) = plan.rejected
    assert [e.event_id for e in rejection.events] == [big.event_id]
    assert rejection.error_type is ErrorType.CONTENT_TOO_LARGE
    assert "limit is 1000 bytes" in rejection.reason
    assert sorted(op.event_ids for op in plan.ops) == sorted([(other.event_id,), (after.event_id,)])


def test_plan_bundles_never_splits_an_atomic_batch():
    batch = [res(U, "office", f"o{i}", atomicBatch="b1") for i in range(4)]
    before = [res(U, "clinic", f"c{i}") for i in range(3)]
    plan = planned(before + batch, PlanCaps(max_operations=4))
    (holder,) = [b for b in plan.bundles if any(op.atomic_batch == "b1" for op in b.ops)]
    assert sum(1 for op in holder.ops if op.atomic_batch == "b1") == 4


def test_plan_bundles_never_merges_atomic_batch_events():
    pending = res(U, "office", "o1")
    batch = [res(U, "office", "o1", atomicBatch="b1"), res(U, "clinic", "c1", atomicBatch="b1")]
    plan = planned([pending, *batch])
    assert all(len(op.events) == 1 for op in plan.ops)
    assert bundle_of(plan, OFFICE, 0) < bundle_of(plan, OFFICE, 1)


def test_plan_bundles_rejects_an_atomic_batch_over_the_caps_whole():
    batch = [res(U, "office", f"o{i}", atomicBatch="b1") for i in range(4)]
    plan = planned(batch, PlanCaps(max_operations=3))
    assert not plan.bundles
    (rejection,) = plan.rejected
    assert len(rejection.events) == 4
    assert "atomic batch b1" in rejection.reason


@pytest.mark.parametrize(
    ("events", "field", "reason"),
    [
        ([res(U, "office", "o1"), res(U, "office", "o1")], "events[1]", "same entity"),
        ([link(U), res(U, "office", "o1")], "events[1]", "resource events before"),
        ([res(U, source="a"), res(U, "clinic", source="b")], "sourceKey", "one source"),
        ([res(U, "office", f"o{i}") for i in range(4)], "atomicBatch", "at most 3"),
        ([res(U, "office", "o1", data={"x": "y" * 900})], "atomicBatch", "limit is 1000"),
    ],
    ids=["same-id", "rel-before-end", "sources", "count", "bytes"],
)
def test_check_atomic_batch_refuses_a_batch_that_cannot_be_one_bundle(events, field, reason):
    problems = check_atomic_batch(events, PlanCaps(max_operations=3, max_bytes=1_000))
    assert problems
    assert problems[0].field == field
    assert reason in problems[0].reason


def test_check_atomic_batch_accepts_resources_then_relationships():
    events = [res(C, "office", "o1"), res(C, "provider", "p1"), link(C)]
    assert check_atomic_batch(events) == []


@pytest.mark.parametrize(
    ("events", "match"),
    [
        ([], "nothing"),
        ([res(U, source="a"), res(U, source="b")], "one source"),
        ([res(U, eid="same"), res(U, "clinic", eid="same")], "twice"),
        (
            [res(U, "a", atomicBatch="b"), res(U, "x"), res(U, "c", atomicBatch="b")],
            "not contiguous",
        ),
        (
            [res(U, "office", "o1", atomicBatch="b"), res(U, "office", "o1", atomicBatch="b")],
            "successive bundles",
        ),
    ],
    ids=["empty", "sources", "duplicate-id", "split-batch", "unorderable-batch"],
)
def test_plan_bundles_refuses_input_it_cannot_plan(events, match):
    with pytest.raises(PlanInputError, match=match):
        plan_bundles(events)


def test_plan_bundles_request_round_trips_through_the_wire_form():
    events = [res(U, "office", "o1"), link(C)]
    bundle = planned(events).bundles[0]
    again = BundleRequest.model_validate_json(dump_json(bundle.request))
    assert again == bundle.request
    assert isinstance(again.relationship_operations[0], RelationshipOperation)


def test_plan_caps_refuse_nonsense():
    with pytest.raises(ValueError, match="max_operations"):
        PlanCaps(max_operations=0)
    with pytest.raises(ValueError, match="max_bytes"):
        PlanCaps(max_bytes=10)


def test_plan_bundles_keeps_an_operation_after_a_rejected_one_after_what_came_before():
    first, big, last = (
        res(D, "office", "o1"),
        res(C, "office", "o1", data={"name": "x" * 300}),
        res(D, "office", "o1"),
    )
    plan = planned([first, big, last], PlanCaps(max_bytes=300))
    (rejection,) = plan.rejected
    assert [e.event_id for e in rejection.events] == [big.event_id]
    assert [op.event_ids for b in plan.bundles for op in b.ops] == [
        (first.event_id,),
        (last.event_id,),
    ]
    assert bundle_of(plan, OFFICE, 0) == 0
    assert bundle_of(plan, OFFICE, 1) == 1


def test_plan_bundles_carries_order_through_a_rejected_operation_to_its_own_predecessors():
    o2 = ResourceKey("src", "office", "o2")
    events = [
        res(U, "office", "o1"),
        res(C, "office", "o2"),
        res(D, "office", "o2"),
        res(C, "office", "o2", data={"name": "x" * 300}),
        res(D, "office", "o2"),
    ]
    plan = planned(events, PlanCaps(max_bytes=300))
    assert [e.event_id for r in plan.rejected for e in r.events] == [events[3].event_id]
    on_o2 = [(b.index, op.event_ids) for b in plan.bundles for op in b.ops if op.key == o2]
    assert on_o2 == [
        (0, (events[1].event_id,)),
        (1, (events[2].event_id,)),
        (2, (events[4].event_id,)),
    ]


def test_plan_bundles_unmerges_a_merged_operation_no_bundle_can_carry():
    create, big, delete = (
        res(C, "office", "o1"),
        res(U, "office", "o1", data={"name": "x" * 300}),
        res(D, "office", "o1"),
    )
    plan = planned([create, big, delete], PlanCaps(max_bytes=300))
    assert [e.event_id for r in plan.rejected for e in r.events] == [big.event_id]
    assert [(b.index, op.event_ids) for b in plan.bundles for op in b.ops] == [
        (0, (create.event_id,)),
        (1, (delete.event_id,)),
    ]


CREATED = {"createdAt": "2020-01-01T00:00:00Z"}
UPDATED = {"createdAt": "2020-01-01T00:00:00Z", "updatedAt": "2021-01-01T00:00:00Z"}
IDENTIFIED = {"identifier": [{"system": "https://ids.test/npi", "value": "1"}]}


@pytest.mark.parametrize(
    ("first", "first_meta", "then", "then_meta"),
    [
        (C, CREATED, U, None),
        (U, CREATED, U, None),
        (U, UPDATED, U, CREATED),
        (U, IDENTIFIED, U, CREATED),
    ],
    ids=["create-then-upsert", "upsert-then-upsert", "updated-at-dropped", "identifier-dropped"],
)
def test_plan_bundles_never_merges_away_meta_only_a_superseded_event_names(
    first, first_meta, then, then_meta
):
    events = [
        res(first, "office", "o1", meta=first_meta),
        res(then, "office", "o1", **({"meta": then_meta} if then_meta else {})),
    ]
    plan = planned(events)
    assert [(b.index, op.event_ids) for b in plan.bundles for op in b.ops] == [
        (0, (events[0].event_id,)),
        (1, (events[1].event_id,)),
    ]


def test_plan_bundles_never_merges_away_meta_of_a_relationship():
    events = [link(C, meta=CREATED), link(U)]
    plan = planned(events)
    assert [len(op.events) for op in plan.ops] == [1, 1]
    assert bundle_of(plan, WORKS_AT, 0) < bundle_of(plan, WORKS_AT, 1)


@pytest.mark.parametrize(
    ("first_meta", "then", "then_meta"),
    [(CREATED, U, UPDATED), (None, U, CREATED), (UPDATED, D, None)],
    ids=["carrier-names-more", "superseded-names-none", "delete-carrier"],
)
def test_plan_bundles_merges_when_the_carrier_names_all_superseded_meta(
    first_meta, then, then_meta
):
    events = [
        res(U, "office", "o1", **({"meta": first_meta} if first_meta else {})),
        res(then, "office", "o1", **({"meta": then_meta} if then_meta else {})),
    ]
    (op,) = planned(events).ops
    assert op.event_ids == (events[0].event_id, events[1].event_id)
    assert op.action is then


def test_plan_bundles_does_not_merge_upsert_then_delete_of_an_entity_deleted_just_before():
    # In the plan: DELETE, UPSERT, DELETE. The merge of the last two would be refused NOT_FOUND
    # (the first DELETE leaves nothing to delete), so they travel apart.
    events = [res("DELETE"), res("UPSERT"), res("DELETE")]

    plan = plan_bundles(events)

    validate_plan(plan, PlanCaps())
    assert [(op.action, len(op.events)) for op in plan.ops] == [
        (Action.DELETE, 1),
        (Action.UPSERT, 1),
        (Action.DELETE, 1),
    ]


def test_plan_bundles_does_not_merge_upsert_then_delete_after_a_delete_planned_earlier():
    upsert, delete = res("UPSERT"), res("DELETE")
    key = str(ResourceKey(upsert.source_key, "provider", "p1"))

    merged = plan_bundles([upsert, delete])
    apart = plan_bundles([upsert, delete], after_delete={key})

    assert [op.action for op in merged.ops] == [Action.DELETE]
    assert [op.action for op in apart.ops] == [Action.UPSERT, Action.DELETE]
    validate_plan(apart, PlanCaps())

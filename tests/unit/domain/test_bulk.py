"""Bulk planning: resource and relationship requests, in order, one operation per entity each."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from api_client.models import Action, Receipt, RelationshipBulkRequest, TaskState, dump_json
from worker.domain.bulk import (
    EMPTY_BULK_BYTES,
    BulkCaps,
    BulkPlan,
    bulk_body,
    plan_bulk,
    validate_bulk_plan,
)
from worker.domain.coalesce import Fate
from worker.domain.events import ChangeEvent, Target
from worker.domain.ordering import PlanInputError
from worker.domain.outcomes import outcomes_from_receipts
from worker.domain.plan import PlanError

from .factories import rel, res

C, U, D = Action.CREATE, Action.UPSERT, Action.DELETE


def link(action: Action, frm: str = "o1", to: str = "p1", **kwargs: Any) -> ChangeEvent:
    return rel(action, "works-at", ("office", frm), ("provider", to), **kwargs)


def planned(events: list[ChangeEvent], caps: BulkCaps | None = None, **kwargs: Any) -> BulkPlan:
    caps = caps or BulkCaps()
    plan = plan_bulk(events, caps=caps, **kwargs)
    validate_bulk_plan(plan, caps)
    return plan


def shape(plan: BulkPlan) -> list[tuple[str, list[str]]]:
    return [(r.target.value, [op.key.type for op in r.ops]) for r in plan.requests]


def test_plan_bulk_splits_resources_and_relationships_in_order():
    events = [res(U, "office", "o1"), res(U, "provider", "p1"), link(U), res(U, "clinic", "c1")]
    plan = planned(events)
    assert shape(plan) == [
        ("resource", ["office", "provider", "clinic"]),
        ("relationship", ["works-at"]),
    ]


def test_plan_bulk_sends_a_relationship_before_a_later_write_of_its_end():
    plan = planned([link(U), res(D, "provider", "p1")])
    assert shape(plan) == [("relationship", ["works-at"]), ("resource", ["provider"])]


def test_plan_bulk_keeps_one_operation_per_entity_per_request():
    plan = planned([res(C, "office", "o1"), res(D, "office", "o1"), res(U, "clinic", "c1")])
    assert shape(plan) == [("resource", ["office", "clinic"]), ("resource", ["office"])]


def test_plan_bulk_coalesces_by_the_same_table():
    plan = planned([res(U, "office", "o1"), res(U, "office", "o1")])
    (request,) = plan.requests
    assert len(request.ops[0].events) == 2


def test_plan_bulk_respects_the_count_and_byte_caps():
    events = [res(U, "office", f"o{i}", data={"x": "y" * 100}) for i in range(5)]
    by_count = planned(events, BulkCaps(max_operations=2))
    assert [len(r.ops) for r in by_count.requests] == [2, 2, 1]
    size = by_count.requests[2].ops[0].size_bytes
    cap = EMPTY_BULK_BYTES + 3 * size + 2
    by_bytes = planned(events, BulkCaps(max_bytes=cap))
    assert [len(r.ops) for r in by_bytes.requests] == [3, 2]
    assert by_bytes.requests[0].size_bytes == len(dump_json(by_bytes.requests[0].request)) == cap


def test_plan_bulk_rejects_an_operation_over_the_byte_cap():
    plan = planned([res(U, "office", "o1", data={"x": "y" * 500})], BulkCaps(max_bytes=200))
    assert not plan.requests
    assert "limit is 200" in plan.rejected[0].reason


def test_plan_bulk_keeps_an_operation_after_a_rejected_one_after_what_came_before():
    first, big, last = (
        res(D, "office", "o1"),
        res(C, "office", "o1", data={"name": "x" * 300}),
        res(D, "office", "o1"),
    )
    plan = planned([first, big, last], BulkCaps(max_bytes=200))
    assert [e.event_id for r in plan.rejected for e in r.events] == [big.event_id]
    assert [(r.index, op.event_ids) for r in plan.requests for op in r.ops] == [
        (0, (first.event_id,)),
        (1, (last.event_id,)),
    ]


def test_plan_bulk_unmerges_a_merged_operation_over_the_byte_cap():
    create, big = res(C, "office", "o1"), res(U, "office", "o1", data={"name": "x" * 300})
    plan = planned([create, big], BulkCaps(max_bytes=200))
    assert [e.event_id for r in plan.rejected for e in r.events] == [big.event_id]
    assert [op.event_ids for r in plan.requests for op in r.ops] == [(create.event_id,)]


@pytest.mark.parametrize(
    ("events", "match"),
    [
        ([], "nothing"),
        ([res(U, atomicBatch="b1")], "not atomic"),
        ([res(U, source="a"), res(U, source="b")], "one source"),
        ([res(U, eid="x"), res(U, "clinic", eid="x")], "twice"),
    ],
    ids=["empty", "atomic", "sources", "duplicate"],
)
def test_plan_bulk_refuses_input_it_cannot_plan(events, match):
    with pytest.raises(PlanInputError, match=match):
        plan_bulk(events)


def test_validate_bulk_plan_refuses_two_operations_on_one_entity_in_a_request():
    plan = plan_bulk([res(C, "office", "o1"), res(D, "office", "o1")])
    first, second = plan.requests
    ops = first.ops + second.ops
    merged = replace(first, ops=ops, body=bulk_body(Target.RESOURCE, ops))
    with pytest.raises(PlanError, match="two operations on res:src:office:o1"):
        validate_bulk_plan(replace(plan, requests=(merged,)), BulkCaps())


def test_validate_bulk_plan_refuses_a_relationship_sent_after_a_later_end_write():
    plan = plan_bulk([link(U), res(D, "provider", "p1")])
    relationships, resources = plan.requests
    swapped = (replace(resources, index=0), replace(relationships, index=1))
    with pytest.raises(PlanError, match="rule"):
        validate_bulk_plan(replace(plan, requests=swapped), BulkCaps())


def test_validate_bulk_plan_refuses_the_wrong_kind_of_operation():
    plan = plan_bulk([link(U)])
    (request,) = plan.requests
    wrong = replace(request, target=Target.RESOURCE)
    with pytest.raises(PlanError, match="relationship operation in a resource bulk request"):
        validate_bulk_plan(replace(plan, requests=(wrong,)), BulkCaps())


def test_bulk_outcomes_read_each_receipt_on_its_own():
    first, second = link(U), link(U, frm="o2")
    (request,) = planned([first, second]).requests
    assert isinstance(request.request, RelationshipBulkRequest)
    receipts = [
        Receipt(
            status="SUCCESS", type="works-at", id="office.o2,provider.p1", targetType="RELATIONSHIP"
        ),
        Receipt.model_validate(
            {
                "status": "FAILURE",
                "type": "works-at",
                "id": "office.o1,provider.p1",
                "error": {"code": 404, "type": "NOT_FOUND", "message": "x"},
            }
        ),
    ]
    outcomes = outcomes_from_receipts(request, TaskState(status="FAILURE", receipts=receipts))
    assert outcomes.of(first.event_id).fate is Fate.FAILED
    assert outcomes.of(second.event_id).fate is Fate.APPLIED

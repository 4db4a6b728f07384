"""The plan validator refuses hand-made plans that break each rule, and names the rule."""

from __future__ import annotations

from dataclasses import replace

import pytest

from api_client.models import Action, dump_json
from worker.domain.coalesce import CoalesceMode, Role
from worker.domain.events import ChangeEvent
from worker.domain.ops import PlannedEvent, PlannedOp, bundle_body, plan_op
from worker.domain.plan import BundlePlan, Plan, PlanCaps, PlanError, plan_bundles
from worker.domain.plan_check import validate_plan

from .factories import rel, res

C, U, D = Action.CREATE, Action.UPSERT, Action.DELETE
CAPS = PlanCaps()


def link(action: Action, **kwargs) -> ChangeEvent:
    return rel(action, "works-at", ("office", "o1"), ("provider", "p1"), **kwargs)


def op_of(events: list[tuple[ChangeEvent, int]], action: Action | None = None) -> PlannedOp:
    """A planned operation over (event, position) pairs, carrier last."""
    planned = tuple(
        PlannedEvent(e, p, Role.CARRIER if i == len(events) - 1 else Role.SUPERSEDED)
        for i, (e, p) in enumerate(events)
    )
    return plan_op(planned, action or events[-1][0].action)


def bundle(index: int, *ops: PlannedOp, isolated: bool = False) -> BundlePlan:
    """A bundle whose request and size agree with its operations, so one rule breaks at a time."""
    resources = tuple(op for op in ops if op.target.value == "resource")
    relationships = tuple(op for op in ops if op.target.value == "relationship")
    return BundlePlan(
        index, resources, relationships, bundle_body(resources, relationships), isolated
    )


def plan_of(*bundles: BundlePlan, mode: CoalesceMode = CoalesceMode.SUPERSEDE) -> Plan:
    return Plan("src", mode, tuple(bundles))


def refused(plan: Plan, caps: PlanCaps = CAPS) -> str:
    with pytest.raises(PlanError) as info:
        validate_plan(plan, caps)
    return str(info.value)


def test_validate_plan_accepts_what_the_planner_makes():
    events = [res(C, "office", "o1"), res(U, "office", "o1"), link(U), res(D, "provider", "p1")]
    validate_plan(plan_bundles(events), CAPS)


def test_validate_plan_refuses_two_operations_on_one_resource_in_a_bundle():
    a, b = res(U, "office", "o1"), res(D, "office", "o1")
    message = refused(plan_of(bundle(0, op_of([(a, 0)]), op_of([(b, 1)]))))
    assert "two operations on res:src:office:o1" in message


def test_validate_plan_refuses_two_operations_on_one_relationship_in_a_bundle():
    a, b = link(U), link(D)
    message = refused(plan_of(bundle(0, op_of([(a, 0)]), op_of([(b, 1)]))))
    assert "two operations on rel:src:works-at" in message


def test_validate_plan_refuses_a_bundle_over_the_operation_cap():
    ops = [op_of([(res(U, "office", f"o{i}"), i)]) for i in range(3)]
    message = refused(plan_of(bundle(0, *ops)), PlanCaps(max_operations=2))
    assert "3 operations; the cap is 2" in message


def test_validate_plan_refuses_a_bundle_over_the_byte_cap_measured_with_dump_json():
    op = op_of([(res(U, "office", "o1", data={"x": "y" * 500}), 0)])
    plan = plan_of(bundle(0, op))
    size = len(dump_json(plan.bundles[0].request))
    validate_plan(plan, PlanCaps(max_bytes=size))
    message = refused(plan, PlanCaps(max_bytes=size - 1))
    assert f"{size} bytes as sent; the cap is {size - 1}" in message


def test_validate_plan_refuses_a_request_that_differs_from_its_operations():
    first = bundle(0, op_of([(res(U, "office", "o1"), 0)]))
    other = bundle(0, op_of([(res(U, "office", "o2"), 1)]))
    tampered = replace(first, body=other.body)
    assert "does not hold exactly its planned operations" in refused(plan_of(tampered))


def test_validate_plan_refuses_a_relationship_among_resource_operations():
    good = bundle(0, op_of([(link(U), 0)]))
    swapped = replace(good, resource_ops=good.relationship_ops, relationship_ops=())
    assert "is in the resource operations" in refused(plan_of(swapped))


def test_validate_plan_refuses_a_merge_the_table_does_not_allow():
    # CREATE then DELETE is a SPLIT row; a hand-made DELETE carrying both is refused.
    a, b = res(C, "office", "o1"), res(D, "office", "o1")
    message = refused(plan_of(bundle(0, op_of([(a, 0), (b, 1)], D))))
    assert "does not merge these events into DELETE" in message


CREATED = {"createdAt": "2020-01-01T00:00:00Z"}


def test_validate_plan_refuses_a_merge_that_drops_meta_only_a_superseded_event_names():
    a, b = res(C, "office", "o1", meta=CREATED), res(U, "office", "o1")
    message = refused(plan_of(bundle(0, op_of([(a, 0), (b, 1)], C))))
    assert "a superseded event names meta its carrier does not" in message
    upsert, delete = res(U, "office", "o1", meta=CREATED), res(D, "office", "o1")
    validate_plan(plan_of(bundle(0, op_of([(upsert, 0), (delete, 1)]))), CAPS)


def test_validate_plan_refuses_any_merge_in_strict_mode():
    a, b = res(U, "office", "o1"), res(U, "office", "o1")
    message = refused(plan_of(bundle(0, op_of([(a, 0), (b, 1)])), mode=CoalesceMode.STRICT))
    assert "STRICT" in message


def test_validate_plan_refuses_an_operation_that_is_not_its_carriers_payload():
    a, b = res(U, "office", "o1"), res(U, "office", "o1")
    good = op_of([(a, 0), (b, 1)])
    stale = op_of([(a, 0)])
    tampered = replace(good, wire=stale.wire)
    assert "not its carrier's payload" in refused(plan_of(bundle(0, tampered)))


def test_validate_plan_refuses_roles_out_of_order():
    a, b = res(U, "office", "o1"), res(U, "office", "o1")
    good = op_of([(a, 0), (b, 1)])
    flipped = replace(good, events=(replace(good.events[0], role=Role.CARRIER), good.events[1]))
    assert "roles" in refused(plan_of(bundle(0, flipped)))


def test_validate_plan_refuses_an_event_bound_to_two_operations():
    a = res(U, "office", "o1")
    b = res(U, "office", "o1", eid=a.event_id)
    message = refused(plan_of(bundle(0, op_of([(a, 0)])), bundle(1, op_of([(b, 1)]))))
    assert f"event {a.event_id}: in" in message


def test_validate_plan_refuses_operations_on_one_entity_out_of_publish_order():
    a, b = res(D, "office", "o1"), res(C, "office", "o1")
    message = refused(plan_of(bundle(0, op_of([(b, 1)])), bundle(1, op_of([(a, 0)]))))
    assert "not after bundle" in message


def test_validate_plan_refuses_a_relationship_sharing_a_bundle_with_a_later_end_delete():
    # Published: relationship (0), then DELETE of its end (1); one bundle runs the DELETE first.
    message = refused(
        plan_of(bundle(0, op_of([(res(D, "provider", "p1"), 1)]), op_of([(link(U), 0)])))
    )
    assert "rule C" in message


def test_validate_plan_refuses_an_end_write_published_first_but_sent_later():
    message = refused(
        plan_of(bundle(0, op_of([(link(U), 1)])), bundle(1, op_of([(res(C, "provider", "p1"), 0)])))
    )
    assert "rule D" in message


@pytest.mark.parametrize(("first", "then"), [(U, D), (C, U), (U, U)])
def test_validate_plan_refuses_an_end_merge_across_a_relationship(first, then):
    sent = D if then is D else first
    end = op_of([(res(first, "office", "o1"), 0), (res(then, "office", "o1"), 2)], sent)
    message = refused(plan_of(bundle(0, end, op_of([(link(U), 1)]))))
    assert "rule A" in message


def test_validate_plan_refuses_an_end_written_between_merged_relationship_events():
    merged = op_of([(link(U), 0), (link(U), 2)])
    message = refused(plan_of(bundle(0, op_of([(res(U, "office", "o1"), 1)]), merged)))
    assert "rule B" in message


def test_validate_plan_refuses_a_split_atomic_batch():
    a = res(U, "office", "o1", atomicBatch="b1")
    b = res(U, "clinic", "c1", atomicBatch="b1")
    message = refused(plan_of(bundle(0, op_of([(a, 0)])), bundle(1, op_of([(b, 1)]))))
    assert "atomic batch b1: split" in message


def test_validate_plan_refuses_an_isolated_bundle_with_company():
    ops = [op_of([(res(U, "office", f"o{i}"), i)]) for i in range(2)]
    assert "isolated" in refused(plan_of(bundle(0, *ops, isolated=True)))


def test_validate_plan_refuses_a_foreign_source_and_misnumbered_bundles():
    op = op_of([(res(U, "office", "o1", source="other"), 0)])
    message = refused(plan_of(bundle(3, op)))
    assert "source other" in message
    assert "says it is bundle 3" in message


def test_validate_plan_error_names_no_payload_data():
    secret = "Patient-Name-Zed"
    a = res(U, "office", "o1", data={"name": secret})
    b = res(D, "office", "o1")
    message = refused(plan_of(bundle(0, op_of([(a, 0)]), op_of([(b, 1)]))))
    assert secret not in message

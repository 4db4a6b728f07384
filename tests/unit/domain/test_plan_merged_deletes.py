"""Merged `UPSERT+ DELETE` operations travel in bundles of their own kind."""

from __future__ import annotations

from api_client.models import Action
from worker.domain.keys import ResourceKey
from worker.domain.plan import Plan, PlanCaps, plan_bundles
from worker.domain.plan_check import validate_plan

from .factories import res

U, D = Action.UPSERT, Action.DELETE


def shapes(plan: Plan) -> list[list[tuple[str, str]]]:
    """Per bundle: (action, id) of each resource operation."""
    return [
        [(op.action.value, op.key.id) for op in b.resource_ops if isinstance(op.key, ResourceKey)]
        for b in plan.bundles
    ]


def test_a_merged_delete_leaves_the_plain_operations_in_their_own_bundle():
    events = [
        res(U, "office", "o1"),
        res(U, "provider", "p1"),
        res(D, "office", "o1"),
        res(U, "provider", "p2"),
    ]

    plan = plan_bundles(events)

    validate_plan(plan, PlanCaps())
    assert shapes(plan) == [[("DELETE", "o1")], [("UPSERT", "p1"), ("UPSERT", "p2")]]


def test_merged_deletes_share_bundles_with_each_other():
    events = [
        res(U, "office", "o1"),
        res(U, "office", "o2"),
        res(D, "office", "o1"),
        res(D, "office", "o2"),
        res(U, "provider", "p1"),
    ]

    plan = plan_bundles(events)

    validate_plan(plan, PlanCaps())
    assert shapes(plan) == [[("DELETE", "o1"), ("DELETE", "o2")], [("UPSERT", "p1")]]


def test_a_delete_alone_is_no_merge_and_stays_with_the_others():
    plan = plan_bundles([res(D, "office", "o1"), res(U, "provider", "p1")])
    assert shapes(plan) == [[("DELETE", "o1"), ("UPSERT", "p1")]]


def test_the_separation_can_be_turned_off():
    events = [res(U, "office", "o1"), res(U, "provider", "p1"), res(D, "office", "o1")]
    plan = plan_bundles(events, caps=PlanCaps(separate_merged_deletes=False))
    assert shapes(plan) == [[("DELETE", "o1"), ("UPSERT", "p1")]]

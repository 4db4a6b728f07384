"""The soft operation target of a shrunk source: bundles close at it, yet nothing that fits the
configured caps is ever rejected because of it."""

from __future__ import annotations

import pytest

from api_client.models import Action
from worker.domain.coalesce import CoalesceMode
from worker.domain.plan import Plan, PlanCaps, plan_bundles
from worker.domain.plan_check import validate_plan

from .factories import res

U = Action.UPSERT
HARD = PlanCaps(max_operations=8)
SHRUNK = PlanCaps(max_operations=8, target_operations=3)


def planned(events, caps: PlanCaps, **kwargs) -> Plan:
    plan = plan_bundles(events, caps=caps, **kwargs)
    validate_plan(plan, caps)
    return plan


def sizes(plan: Plan) -> list[int]:
    return [len(b.ops) for b in plan.bundles]


def test_plan_target_closes_bundles_at_the_shrunk_cap():
    events = [res(U, "office", f"o{i}") for i in range(8)]
    assert sizes(planned(events, HARD)) == [8]
    assert sizes(planned(events, SHRUNK)) == [3, 3, 2]


def test_plan_target_above_max_changes_nothing():
    events = [res(U, "office", f"o{i}") for i in range(10)]
    caps = PlanCaps(max_operations=4, target_operations=50)
    assert sizes(planned(events, caps)) == [4, 4, 2]


def test_plan_target_an_atomic_batch_over_it_travels_alone_never_rejected():
    before = [res(U, "clinic", f"c{i}") for i in range(2)]
    batch = [res(U, "office", f"o{i}", atomicBatch="b1") for i in range(5)]
    after = [res(U, "provider", f"p{i}") for i in range(2)]
    plan = planned(before + batch + after, SHRUNK)
    assert not plan.rejected
    (holder,) = [b for b in plan.bundles if any(op.atomic_batch == "b1" for op in b.ops)]
    assert [op.atomic_batch for op in holder.ops] == ["b1"] * 5, "alone in its bundle"
    assert sizes(plan) == [3, 5, 1], "the others fill the bundles around it up to the target"


def test_plan_target_a_batch_over_the_hard_cap_is_still_rejected():
    batch = [res(U, "office", f"o{i}", atomicBatch="b1") for i in range(9)]
    plan = planned(batch, SHRUNK)
    assert not plan.bundles
    (rejection,) = plan.rejected
    assert "at most 8" in rejection.reason


def test_plan_target_a_plan_made_before_a_shrink_stays_valid_after_it():
    events = [res(U, "office", f"o{i}") for i in range(8)]
    plan = planned(events, HARD)
    validate_plan(plan, SHRUNK)  # the validator keeps to the hard caps


def test_plan_target_of_one_sends_every_unit_alone_and_rejects_none():
    events = [res(U, "office", f"o{i}") for i in range(4)]
    events += [res(U, "clinic", f"c{i}", atomicBatch="b2") for i in range(2)]
    plan = planned(events, PlanCaps(max_operations=8, target_operations=1))
    assert not plan.rejected
    assert sizes(plan) == [1, 1, 1, 1, 2]


def test_plan_target_merges_as_before_it_only_counts_operations():
    events = [res(U, "office", "o1"), res(U, "office", "o1"), res(U, "office", "o2")]
    plan = planned(events, PlanCaps(max_operations=8, target_operations=1))
    assert [len(op.events) for op in plan.ops] == [2, 1]
    strict = planned(events, PlanCaps(max_operations=8, target_operations=1),
                     mode=CoalesceMode.STRICT)  # fmt: skip
    assert sizes(strict) == [1, 1, 1]


def test_plan_caps_refuse_a_target_below_one():
    with pytest.raises(ValueError, match="target_operations"):
        PlanCaps(target_operations=0)

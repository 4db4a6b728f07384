"""The validator's end rules (A-D between a relationship and its ends), checked with indexes so
that a hot end costs a few bisections per relationship, find a problem exactly where the rules'
plain statement, over every pair of operations, finds one.

Plans are the planner's own operations placed in random bundles, so many placements break rules
C or D and some break none. The planner never merges across a relationship, so rules A and B are
left to the hand-made plans of tests/unit/domain/test_plan_check.py.
"""

from __future__ import annotations

from collections.abc import Iterable

from hypothesis import given
from hypothesis import strategies as st

from tests.property.streams import Scenario, scenarios
from worker.domain.keys import RelationshipKey
from worker.domain.ops import PlannedOp
from worker.domain.plan import PlanCaps, plan_bundles
from worker.domain.plan_check import order_problems

RULES = ("rule A", "rule B", "rule C", "rule D")


def pairwise_rules(placed: Iterable[tuple[int, PlannedOp]]) -> set[tuple[str, str, str]]:
    """(relationship, end, rule) for every broken rule, from every pair of operations."""
    ops = list(placed)
    found = set()
    for rb, rel in ops:
        if not isinstance(rel.key, RelationshipKey):
            continue
        for xb, res in ops:
            if res.key not in rel.key.endpoints:
                continue
            r_min, r_max = rel.first_position, rel.last_position
            where = (str(rel.key), str(res.key))
            if any(r_min < e.position < r_max for e in res.events):
                found.add((*where, "rule B"))
            if res.first_position < r_min < res.last_position:
                found.add((*where, "rule A"))
            if xb > rb and res.first_position < r_max:
                found.add((*where, "rule D"))
            if xb <= rb and res.last_position > r_min:
                found.add((*where, "rule C"))
    return found


def indexed_rules(placed: Iterable[tuple[int, PlannedOp]]) -> set[tuple[str, str, str]]:
    found = set()
    for problem in order_problems(placed):
        rule = next((r for r in RULES if f"({r})" in problem), None)
        if rule is not None:
            keys, _, _ = problem.partition(": ")
            rel, _, end = keys.partition(" and ")
            found.add((rel, end, rule))
    return found


@given(scenario=scenarios(), data=st.data())
def test_indexed_end_rules_agree_with_every_pair(scenario: Scenario, data: st.DataObject) -> None:
    plan = plan_bundles(scenario.events, caps=PlanCaps(max_operations=500))
    ops = list(plan.ops)
    bundles = data.draw(st.lists(st.integers(0, 4), min_size=len(ops), max_size=len(ops)))
    placed = list(zip(bundles, ops, strict=True))

    assert indexed_rules(placed) == pairwise_rules(placed)

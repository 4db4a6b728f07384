"""The fault plan: which requests a rule looks at, when it fires, and how effects combine."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from emulator.faults import (
    DropEffect,
    FaultPlan,
    FaultRule,
    LatencyEffect,
    RequestFacts,
    StatusEffect,
    UnknownRouteError,
)

BUNDLE = RequestFacts(
    method="POST",
    path="/sources/src/v1/bundle",
    route="bundle",
    source="src",
    op_ids=frozenset({"1", "2"}),
    accepts_override=True,
)
POLL = RequestFacts(
    method="GET", path="/sources/src/v1/tasks/bd_1", route="task_status", source="src"
)


def rule(**fields: object) -> FaultRule:
    return FaultRule.model_validate(fields)


def fired_calls(plan: FaultPlan, facts: RequestFacts, n: int) -> list[int]:
    """The 1-based numbers of the calls (out of n) on which some rule fired."""
    return [i for i in range(1, n + 1) if plan.decide(facts).fired]


def test_fault_plan_calls_fire_on_the_named_calls_only():
    plan = FaultPlan([rule(route="bundle", calls=[2, 3], effect={"kind": "drop"})])
    assert fired_calls(plan, BUNDLE, 6) == [2, 3]


def test_fault_plan_every_fires_on_each_nth_call():
    plan = FaultPlan([rule(every=3, effect={"kind": "status", "status": 500})])
    assert fired_calls(plan, BUNDLE, 10) == [3, 6, 9]


def test_fault_plan_first_fires_on_the_first_calls():
    plan = FaultPlan([rule(first=2, effect={"kind": "status", "status": 503})])
    assert fired_calls(plan, BUNDLE, 5) == [1, 2]


def test_fault_plan_times_caps_the_firings():
    plan = FaultPlan([rule(every=1, times=2, effect={"kind": "drop"})])
    assert fired_calls(plan, BUNDLE, 5) == [1, 2]
    assert plan.describe()[0]["fired"] == 2
    assert plan.describe()[0]["seen"] == 5


def test_fault_plan_route_name_filters_and_counts_only_matching_requests():
    plan = FaultPlan([rule(route="task_status", calls=[2], effect={"kind": "drop"})])
    outcomes = [bool(plan.decide(facts).fired) for facts in (BUNDLE, POLL, BUNDLE, POLL, POLL)]
    assert outcomes == [False, False, False, True, False]


@pytest.mark.parametrize(
    ("route", "fires"),
    [
        ("POST /sources/*/v1/bundle", True),
        ("GET /sources/*/v1/bundle", False),
        ("* /sources/src/*", True),
        ("/sources/*/v1/bundle", True),
        ("/sources/other/*", False),
        ("bundle", True),
        ("task_status", False),
    ],
)
def test_fault_plan_route_patterns_match_method_and_path(route: str, fires: bool):
    plan = FaultPlan([rule(route=route, effect={"kind": "drop"})])
    assert bool(plan.decide(BUNDLE).fired) is fires


def test_fault_plan_op_id_matches_requests_holding_that_id():
    plan = FaultPlan([rule(op_id="2", effect={"kind": "status", "status": 400})])
    assert plan.decide(BUNDLE).fired
    assert not plan.decide(POLL).fired
    other = RequestFacts(method="POST", path="/x", op_ids=frozenset({"3"}), accepts_override=True)
    assert not plan.decide(other).fired


def test_fault_plan_min_ops_matches_requests_carrying_at_least_that_many_operations():
    plan = FaultPlan([rule(route="bundle", min_ops=3, effect={"kind": "status", "status": 413})])
    decisions = [
        plan.decide(RequestFacts(method="POST", path="/b", route="bundle", op_count=n)).terminal
        for n in (0, 2, 3, 50)
    ]
    assert [d is not None for d in decisions] == [False, False, True, True]
    assert plan.describe()[0]["seen"] == 2, "requests below min_ops are filtered out, not counted"


def test_fault_plan_source_filter():
    plan = FaultPlan([rule(source="other", effect={"kind": "drop"})])
    assert not plan.decide(BUNDLE).fired


def test_fault_plan_probability_is_deterministic_under_the_seed():
    def pattern(seed: int) -> list[int]:
        plan = FaultPlan([rule(probability=0.3, effect={"kind": "drop"})], seed=seed)
        return fired_calls(plan, BUNDLE, 200)

    first = pattern(7)
    assert first == pattern(7)
    assert first != pattern(8)
    assert 30 < len(first) < 90  # about 30% of 200


def test_fault_plan_adding_a_rule_does_not_change_when_another_fires():
    alone = FaultPlan([rule(id="a", probability=0.5, effect={"kind": "drop"})], seed=1)
    together = FaultPlan(
        [
            rule(id="b", probability=0.5, effect={"kind": "latency", "seconds": 1}),
            rule(id="a", probability=0.5, effect={"kind": "drop"}),
        ],
        seed=1,
    )
    pattern_alone = [("a" in alone.decide(BUNDLE).fired) for _ in range(50)]
    pattern_together = [("a" in together.decide(BUNDLE).fired) for _ in range(50)]
    assert pattern_alone == pattern_together


def test_fault_plan_combines_latency_and_keeps_the_first_terminal_effect():
    plan = FaultPlan(
        [
            rule(effect={"kind": "latency", "seconds": 0.5}),
            rule(effect={"kind": "status", "status": 429}),
            rule(effect={"kind": "latency", "seconds": 0.25}),
            rule(times=1, effect={"kind": "drop"}),
        ]
    )
    decision = plan.decide(BUNDLE)
    assert decision.latency_s == pytest.approx(0.75)
    assert isinstance(decision.terminal, StatusEffect)
    assert decision.terminal.status == 429
    assert decision.fired == ("f1", "f2", "f3")
    # the drop rule did not fire, so its single firing is still available
    assert plan.describe()[3]["fired"] == 0


def test_fault_plan_task_effects_apply_to_task_creating_writes_only():
    plan = FaultPlan(
        [
            rule(effect={"kind": "pending", "polls": 3}),
            rule(effect={"kind": "task_failure"}),
        ]
    )
    assert not plan.decide(POLL).fired
    decision = plan.decide(BUNDLE)
    assert decision.pending_polls == 3
    assert decision.force_async is True
    assert decision.failure is not None
    assert decision.failure["type"] == "INTERNAL"
    assert decision.has_override
    assert [state["seen"] for state in plan.describe()] == [1, 1]


def test_fault_plan_late_effect_adds_its_delay_and_may_force_async():
    plan = FaultPlan([rule(effect={"kind": "late", "seconds": 2, "force_async": True})])
    decision = plan.decide(BUNDLE)
    assert decision.late_s == 2
    assert decision.force_async is True
    assert decision.terminal is None


def test_fault_plan_no_rule_means_nothing_to_do():
    decision = FaultPlan().decide(BUNDLE)
    assert decision.fired == ()
    assert not decision.has_override
    assert decision.latency_s == 0


def test_fault_plan_assigns_ids_and_refuses_duplicates():
    plan = FaultPlan()
    assert plan.add(rule(effect={"kind": "drop"})).id == "f1"
    assert plan.add(rule(id="mine", effect={"kind": "drop"})).id == "mine"
    with pytest.raises(ValueError, match="mine"):
        plan.add(rule(id="mine", effect={"kind": "drop"}))
    assert plan.remove("f1") is True
    assert plan.remove("f1") is False
    assert [r["id"] for r in plan.describe()] == ["mine"]
    plan.clear()
    assert plan.describe() == []


def test_fault_plan_restrict_routes_refuses_unknown_names():
    plan = FaultPlan([rule(route="bundle", effect={"kind": "drop"})])
    plan.restrict_routes({"bundle", "task_status"})
    with pytest.raises(UnknownRouteError, match="bundel"):
        plan.add(rule(route="bundel", effect={"kind": "drop"}))
    plan.add(rule(route="POST /anything/*", effect={"kind": "drop"}))


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"effect": {"kind": "status", "status": 200}}, "status"),
        ({"effect": {"kind": "latency", "seconds": 0}}, "seconds"),
        ({"effect": {"kind": "explode"}}, "effect"),
        ({"probability": 1.5, "effect": {"kind": "drop"}}, "probability"),
        ({"calls": [0], "effect": {"kind": "drop"}}, "calls"),
        ({"route": "FETCH /x", "effect": {"kind": "drop"}}, "route"),
        ({"effect": {"kind": "status", "status": 429, "retry_after": "soon"}}, "retry_after"),
        ({"effect": {"kind": "task_failure", "error": {"code": 500}}}, "error"),
        ({"times": 1, "effect": {"kind": "drop"}, "when": "now"}, "when"),
    ],
)
def test_fault_rule_names_the_bad_field(fields: dict[str, object], field: str):
    with pytest.raises(ValidationError) as caught:
        FaultRule.model_validate(fields)
    assert field in str(caught.value)


def test_fault_rule_accepts_an_http_date_retry_after():
    effect = StatusEffect(status=429, retry_after="Wed, 21 Oct 2015 07:28:00 GMT")
    assert effect.retry_after is not None


def test_fault_decision_terminal_kinds():
    drop = FaultPlan([rule(effect={"kind": "drop", "apply_first": True})]).decide(BUNDLE)
    assert isinstance(drop.terminal, DropEffect)
    assert drop.terminal.apply_first is True
    latency = FaultPlan([rule(effect={"kind": "latency", "seconds": 1})]).decide(BUNDLE)
    assert latency.terminal is None
    assert LatencyEffect(seconds=1).kind == "latency"

"""Invariants 2 and 4: planned bundles applied to the emulator's state match one-by-one application.

Each case is run twice from the same starting records: through the driver loop (plan, validate,
submit to `SourceState.apply_bundle`, read receipts, re-plan), and event by event through the
oracle. Both must end in the same snapshot, with the same outcome for every event.

About half the generated writes name no `meta`: the emulator keeps a stored createdAt when a write
names none, so a merge must never drop a createdAt that only a superseded event named (the cases
at the end pin the two shortest such streams).
"""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emulator.config import BundleFailures
from tests.property.cases import Case, cases
from tests.property.compare import assert_same_outcomes
from tests.property.driver import drive, submitter
from tests.property.oracle import one_by_one, registry_with
from tests.property.streams import START_TIME as T0
from tests.property.streams import TIMES, publish
from worker.domain.coalesce import CoalesceMode, Fate
from worker.domain.plan import PlanCaps

T1 = TIMES[0]
MODES = st.sampled_from([CoalesceMode.SUPERSEDE, CoalesceMode.STRICT])
FAILURES = st.sampled_from(list(BundleFailures))
"""A refused bundle reports its first failing operation, or every one (the emulator's switch)."""


@given(case=cases(), failures=FAILURES)
def test_plan_bundles_in_supersede_mode_match_one_by_one_application(
    case: Case, failures: BundleFailures
) -> None:
    scenario = case.scenario
    planned = registry_with(scenario.start)
    planned.bundle_failures = failures
    run = drive(scenario.events, submitter(planned), mode=CoalesceMode.SUPERSEDE, caps=case.caps)
    oracle, expected = one_by_one(registry_with(scenario.start), scenario.events)
    assert planned.snapshot() == oracle.snapshot()
    assert_same_outcomes(
        scenario.events,
        expected,
        run.final,
        mode=CoalesceMode.SUPERSEDE,
        invalid=scenario.invalid,
    )


@given(case=cases(), failures=FAILURES)
def test_plan_bundles_in_strict_mode_match_one_by_one_outcomes_exactly(
    case: Case, failures: BundleFailures
) -> None:
    scenario = case.scenario
    planned = registry_with(scenario.start)
    planned.bundle_failures = failures
    run = drive(scenario.events, submitter(planned), mode=CoalesceMode.STRICT, caps=case.caps)
    oracle, expected = one_by_one(registry_with(scenario.start), scenario.events)
    assert planned.snapshot() == oracle.snapshot()
    assert not [o for o in run.final.values() if o.fate is Fate.COALESCED]
    # No exception is allowed here: an empty `invalid` set turns the SUPERSEDE allowance off.
    assert_same_outcomes(scenario.events, expected, run.final, mode=CoalesceMode.STRICT)


@given(case=cases(), mode=MODES)
def test_outcomes_from_receipts_give_every_event_exactly_one_final_outcome(
    case: Case, mode: CoalesceMode
) -> None:
    events = case.scenario.events
    run = drive(events, submitter(registry_with(case.scenario.start)), mode=mode, caps=case.caps)
    finals = Counter(
        outcome.event_id
        for _, outcomes in run.submissions
        for outcome in outcomes.outcomes
        if outcome.is_final
    )
    finals.update(p.event_id for plan in run.plans for r in plan.rejected for p in r.events)
    assert finals == Counter(e.event_id for e in events)  # none lost, none twice


def _office(event_id: str, action: str, meta: dict[str, str] | None) -> dict[str, object]:
    raw: dict[str, object] = {
        "eventId": event_id,
        "sourceKey": "src",
        "target": "resource",
        "action": action,
        "type": "office",
        "id": "o1",
        "data": {"name": event_id},
    }
    if meta is not None:
        raw["meta"] = meta
    return raw


PRESENT_O1 = {
    "action": "UPSERT",
    "upsert": {"type": "office", "id": "o1", "data": {"name": "old"}, "meta": {"createdAt": T0}},
}


@pytest.mark.parametrize(
    ("start", "first"),
    [((), "CREATE"), ((PRESENT_O1,), "UPSERT")],
    ids=["create-then-upsert", "upsert-then-upsert"],
)
def test_plan_bundles_keep_a_created_at_named_only_by_a_superseded_event(
    start: tuple[dict[str, object], ...], first: str
) -> None:
    events = publish([_office("e0", first, {"createdAt": T1}), _office("e1", "UPSERT", None)])
    planned = registry_with(start)
    drive(events, submitter(planned), mode=CoalesceMode.SUPERSEDE, caps=PlanCaps())
    oracle, _ = one_by_one(registry_with(start), events)
    assert planned.snapshot() == oracle.snapshot()

"""Invariant 5: a FAILURE fails only its own events and those bound to them; innocents land.

A failure is injected on a random operation of a bundle that would otherwise apply in full. In
that bundle's outcomes, the failed operation's single event is FAILED (a merged operation is
UNMERGED instead, to be replayed event by event), an event of another operation is FAILED only
when bound to that failure (its atomic batch, or a relationship to a worker-id CREATE that was
never applied), a merged DELETE cancelled by it is UNMERGED, and every other event is CANCELLED
and sent back to planning. Driven to the end,
the run matches the one-by-one application in which the injected event alone fails.
"""

from __future__ import annotations

from hypothesis import assume, given
from hypothesis import strategies as st

from api_client.models import Action
from tests.property.cases import Case, cases
from tests.property.compare import assert_same_outcomes
from tests.property.driver import drive
from tests.property.injection import Injector
from tests.property.oracle import INJECTED_ERROR_TYPE, one_by_one, registry_with
from worker.domain.coalesce import CoalesceMode, Fate
from worker.domain.events import ChangeEvent, Target
from worker.domain.keys import RelationshipKey, key_of
from worker.domain.outcomes import UNMERGED_WHEN_CANCELLED, EventOutcome

MODES = st.sampled_from([CoalesceMode.SUPERSEDE, CoalesceMode.STRICT])


def _bound_legitimately(event: ChangeEvent, cause: ChangeEvent) -> bool:
    """Its atomic batch failed, or it is a relationship to a worker-id CREATE never applied."""
    if event.atomic_batch is not None and event.atomic_batch == cause.atomic_batch:
        return True
    key = key_of(event)
    return (
        isinstance(key, RelationshipKey)
        and cause.target is Target.RESOURCE
        and cause.action is Action.CREATE
        and cause.generated_id
        and key_of(cause) in key.endpoints
    )


def _root(outcome: EventOutcome, outcomes: dict[str, EventOutcome]) -> str:
    seen = {outcome.event_id}
    while outcome.bound_to is not None:
        outcome = outcomes[outcome.bound_to]
        assert outcome.event_id not in seen, "a cycle of bound failures"
        seen.add(outcome.event_id)
    return outcome.event_id


@given(
    case=cases(operations=(3, 5, 500), min_steps=4),
    mode=MODES,
    after=st.integers(0, 2),
    choice=st.integers(0, 30),
)
def test_outcomes_from_receipts_fail_only_what_is_bound_to_an_injected_failure(
    case: Case, mode: CoalesceMode, after: int, choice: int
) -> None:
    scenario = case.scenario
    events = {e.event_id: e for e in scenario.events}
    registry = registry_with(scenario.start)
    injector = Injector(registry, after=after, choice=choice)
    run = drive(scenario.events, injector, mode=mode, caps=case.caps)
    injection = injector.injection
    assume(injection is not None)
    assert injection is not None
    bundle, outcomes = run.submissions[injection.submission]
    assert bundle is injection.bundle
    failed_ids = set(injection.op.event_ids)
    single = len(failed_ids) == 1
    in_bundle = {o.event_id: o for o in outcomes.outcomes}
    for outcome in outcomes.outcomes:
        if outcome.event_id in failed_ids:
            if single:
                assert outcome.fate is Fate.FAILED
                assert outcome.bound_to is None
                assert outcome.error is not None
                assert outcome.error.type == INJECTED_ERROR_TYPE
            else:
                assert outcome.fate is Fate.UNMERGED
                assert outcome.event_id in outcomes.no_merge
        elif outcome.fate is Fate.FAILED:
            assert single, "a refused merge binds nothing: its events are replayed"
            assert outcome.bound_to is not None
            assert _root(outcome, in_bundle) in failed_ids
            cause = events[outcome.bound_to]
            assert _bound_legitimately(events[outcome.event_id], cause), outcome
        elif outcome.reason == UNMERGED_WHEN_CANCELLED:
            # a merged DELETE cancelled by its neighbour is replayed unmerged (coalescing.md)
            assert outcome.fate is Fate.UNMERGED, outcome
            assert outcome.event_id in outcomes.no_merge
        else:
            assert outcome.fate is Fate.CANCELLED, outcome
    replanned = {o.event_id for o in outcomes.outcomes if o.fate in (Fate.CANCELLED, Fate.UNMERGED)}
    assert set(outcomes.to_replan) == replanned
    later = run.submissions[injection.submission + 1 :]
    for event_id in replanned:
        assert any(event_id in b.event_ids for b, _ in later), f"{event_id} never resubmitted"
    forced = failed_ids if single else set()
    oracle, expected = one_by_one(registry_with(scenario.start), scenario.events, forced)
    assert registry.snapshot() == oracle.snapshot()
    assert_same_outcomes(scenario.events, expected, run.final, mode=mode, invalid=scenario.invalid)

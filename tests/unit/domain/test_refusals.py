"""The refusal rate and the choice of bulk requests for the rest of a refused bundle."""

from __future__ import annotations

import pytest

from api_client.models import ErrorBody
from worker.domain.coalesce import Fate
from worker.domain.events import Target
from worker.domain.foresight import ForesightCounts, ForesightPolicy, Prior
from worker.domain.outcomes import UNMERGED_WHEN_CANCELLED, EventOutcome, OpRef, Outcomes
from worker.domain.refusals import (
    Observation,
    RefusalPolicy,
    RefusalState,
    decay_factor,
    fold,
    observe,
    rest_goes_bulk,
)

NOT_FOUND = ErrorBody(code=404, type="NOT_FOUND", message="provider 'p9' not found")


def op(index: int, target: Target = Target.RESOURCE) -> OpRef:
    return OpRef(0, target, index)


def outcome(event: str, fate: Fate, ref: OpRef, **fields: object) -> EventOutcome:
    error = NOT_FOUND if fate in (Fate.FAILED, Fate.UNMERGED) else None
    return EventOutcome(event, fate, ref, error, **fields)  # type: ignore[arg-type]


def test_an_applied_bundle_judges_each_operation_once_whatever_its_events() -> None:
    outcomes = Outcomes((
        outcome("e1", Fate.COALESCED, op(0)),
        outcome("e2", Fate.APPLIED, op(0)),
        outcome("e3", Fate.APPLIED, op(0, Target.RELATIONSHIP)),
    ))  # fmt: skip

    assert observe(outcomes) == Observation(failures=0, judged=2)


def test_a_refusal_judges_its_failure_and_not_the_operations_it_cancelled() -> None:
    outcomes = Outcomes((
        outcome("e1", Fate.CANCELLED, op(0)),
        outcome("e2", Fate.FAILED, op(1)),
        outcome("e3", Fate.CANCELLED, op(0, Target.RELATIONSHIP)),
    ))  # fmt: skip

    seen = observe(outcomes)

    assert seen == Observation(failures=1, judged=1)
    assert not seen.every


def test_failures_bound_to_another_or_unmerged_for_a_neighbour_are_not_refusals() -> None:
    outcomes = Outcomes((
        outcome("e1", Fate.FAILED, op(0)),
        outcome("e2", Fate.FAILED, op(0, Target.RELATIONSHIP), bound_to="e1"),
        outcome("e3", Fate.UNMERGED, op(1), reason=UNMERGED_WHEN_CANCELLED),
        outcome("e4", Fate.UNMERGED, op(2)),
        outcome("e5", Fate.UNMERGED, op(2)),
    ))  # fmt: skip

    seen = observe(outcomes)

    assert seen.failures == 2  # e1's operation and the merged one of e4 and e5
    assert seen.every


def test_a_bulk_answer_with_several_failures_says_nothing_of_how_bundles_are_refused() -> None:
    outcomes = Outcomes((outcome("e1", Fate.FAILED, op(0)), outcome("e2", Fate.FAILED, op(1))))

    seen = observe(outcomes, atomic=False)

    assert seen == Observation(failures=2, judged=2, atomic=False)
    assert not seen.every


def test_the_rate_decays_by_half_over_each_half_life_of_operations_judged() -> None:
    assert decay_factor(0, 100) == 1.0
    assert decay_factor(100, 100) == pytest.approx(0.5)
    state = fold(RefusalState(), Observation(4, 10), halflife_ops=100)
    assert state.rate == pytest.approx(0.4)

    later = fold(state, Observation(0, 200), halflife_ops=100)

    assert later.failures == pytest.approx(1.0)
    assert later.judged == pytest.approx(202.5)
    assert later.rate == pytest.approx(1.0 / 202.5)


def test_a_source_that_stops_refusing_drops_below_any_threshold() -> None:
    state = RefusalState(failures=50, judged=1000)
    policy = RefusalPolicy()
    for _ in range(20):
        state = fold(state, Observation(0, 500), halflife_ops=policy.halflife_ops)
    seen = Observation(1, 1)

    assert not rest_goes_bulk(state, seen, rest=[None] * 500, policy=policy)


@pytest.mark.parametrize(
    ("state", "seen", "rest", "bulk"),
    [
        # trusted rate, one failure named, 0.05 x 200 = 10 expected: bulk
        (RefusalState(10, 200), Observation(1, 1), 200, True),
        # the same rest, 3 expected: a bundle again costs fewer requests
        (RefusalState(3, 200), Observation(1, 1), 200, False),
        # a lone refusal is no rate
        (RefusalState(1, 1), Observation(1, 1), 500, False),
        # the refusal named two failures: this Registry names them all, the rest is clean
        (RefusalState(10, 200), Observation(2, 2), 200, False),
        # it did so before
        (RefusalState(10, 200, every=True), Observation(1, 1), 200, False),
        # nothing refused in this answer (a transient error sent it back)
        (RefusalState(10, 200), Observation(0, 0), 200, False),
    ],
)
def test_the_rest_goes_as_bulk_requests_only_when_it_is_expected_to_hold_several_failures(
    state: RefusalState, seen: Observation, rest: int, bulk: bool
) -> None:
    assert rest_goes_bulk(state, seen, rest=[None] * rest, policy=RefusalPolicy()) is bulk


def test_a_rest_of_foreseen_failures_goes_bulk_before_any_rate_is_trusted() -> None:
    state = RefusalState(1, 1)  # one refusal: no rate yet
    seen = Observation(1, 1)
    foresight = ForesightPolicy()
    foreseen = [Prior.KNOWN] * 3 + [Prior.GUESS] * 6  # 3 x 1.0 + 6 x 0.5
    assert rest_goes_bulk(state, seen, rest=foreseen, policy=RefusalPolicy(), foresight=foresight)
    assert not rest_goes_bulk(
        state, seen, rest=foreseen[:5], policy=RefusalPolicy(), foresight=foresight
    )
    # without foresight's policy, or with guesses that keep applying, they count as any other
    assert not rest_goes_bulk(state, seen, rest=foreseen, policy=RefusalPolicy())
    wrong = RefusalState(1, 1, foresight=ForesightCounts(guess_misses=20.0))
    assert not rest_goes_bulk(wrong, seen, rest=foreseen, policy=RefusalPolicy(),
                              foresight=foresight)  # fmt: skip


def test_bulk_for_the_rest_can_be_turned_off() -> None:
    policy = RefusalPolicy(enabled=False)

    assert not rest_goes_bulk(RefusalState(10, 20), Observation(1, 1), rest=[None] * 500,
                              policy=policy)  # fmt: skip


def test_the_policy_refuses_values_that_mean_nothing() -> None:
    with pytest.raises(ValueError, match="halflife"):
        RefusalPolicy(halflife_ops=0)
    with pytest.raises(ValueError, match="bulk_expected"):
        RefusalPolicy(bulk_expected=0)

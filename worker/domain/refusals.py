"""A source's refusal rate, and whether the rest of a refused bundle goes as bulk requests.

Why: a bundle is atomic, and a Registry that names only the first failing operation of a refused
bundle (the documentation's example) makes a bundle holding k operations that fail on their own
(ALREADY_EXISTS, NOT_FOUND, a missing end: what only the Registry can know) cost k refusals in a
row, each a full round trip and a re-planning of the whole remaining bundle. In a bulk request,
each operation is atomic on its own and a failing one cancels nothing, so every failure in it is
reported at once and costs no extra request. A bulk request costs more than a bundle when
nothing fails (it is answered with a task to poll, and holds one kind of operation), so the rest
of a refused bundle goes as bulk requests only when it is expected to hold several more failures:

    expected = foreseen + rate * other operations left,
    bulk when expected >= `RefusalPolicy.bulk_expected`

where `foreseen` sums, over the operations left that foresight expected to fail
(`domain.foresight`, a kind it trusts), that kind's precision: a bundle of a round's expected
failures (`plan.foreseen`) refused for its first one goes again as bulk requests at once.

The rate is the source's operations refused on their own per operation recorded for good
(applied, coalesced or dead-lettered: each operation counts once, when its fate is final, not
each time a neighbour's refusal sends it again), exponentially weighted over the operations
recorded (half-life `halflife_ops`), so a source that stops refusing goes back to plain bundles
after a few thousand operations.

A Registry that reports every failing operation (a refusal that names two or more) leaves no
failure unreported in the rest, so the rest then stays a bundle whatever the rate (`every`).
Pure: no Redis, no Celery, no HTTP (the state lives in `worker.store.refusals`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from worker.domain.foresight import ForesightCounts, ForesightPolicy, Prior
from worker.domain.outcomes import OpRef, Outcomes, refused_on_its_own

__all__ = [
    "Observation",
    "RefusalPolicy",
    "RefusalState",
    "decay_factor",
    "fold",
    "observe",
    "rest_goes_bulk",
]


@dataclass(frozen=True)
class RefusalPolicy:
    """When the rest of a refused bundle goes as bulk requests (all settings)."""

    halflife_ops: float = 2000.0
    """Operations judged after which an old refusal weighs half."""
    min_failures: float = 1.5
    """Weighted refusals needed before the rate is trusted: more than one (a lone refusal is no
    rate; older ones weigh less, so two recent ones weigh a little under 2)."""
    bulk_expected: float = 6.0
    """Failures expected in the rest at or above which it goes as bulk requests; about the
    requests a bulk pair costs more than a bundle (two tasks of three requests each, against one
    bundle), so bulk is chosen where it saves requests, not only round trips."""
    enabled: bool = True

    def __post_init__(self) -> None:
        if self.halflife_ops <= 0:
            raise ValueError("RefusalPolicy.halflife_ops: must be positive")
        if self.min_failures < 0 or self.bulk_expected <= 0:
            raise ValueError("RefusalPolicy: min_failures >= 0 and bulk_expected > 0")


@dataclass(frozen=True)
class RefusalState:
    """A source's weighted counts: refusals, operations judged, and whether its Registry has
    shown that it reports every failing operation of a refused bundle; and foresight's."""

    failures: float = 0.0
    judged: float = 0.0
    every: bool = False
    foresight: ForesightCounts = field(default_factory=ForesightCounts)

    @property
    def rate(self) -> float:
        """Refusals per operation judged; 0 before anything was judged."""
        return self.failures / self.judged if self.judged > 0 else 0.0


@dataclass(frozen=True)
class Observation:
    """What one recorded answer says: operations refused on their own, operations judged."""

    failures: int
    judged: int
    atomic: bool = True
    """The answer is a bundle's (a bulk request reports every failure whatever the Registry)."""

    @property
    def every(self) -> bool:
        """Two refusals or more in one refused bundle: the Registry reports every failing
        operation of a refused bundle."""
        return self.atomic and self.failures >= 2


def decay_factor(judged: float, halflife_ops: float) -> float:
    """How much older counts weigh after `judged` more operations: 1/2 per half-life."""
    return float(0.5 ** (max(0.0, judged) / halflife_ops))


def fold(state: RefusalState, seen: Observation, halflife_ops: float) -> RefusalState:
    """The state after one observation (the store applies the same arithmetic atomically)."""
    factor = decay_factor(seen.judged, halflife_ops)
    return RefusalState(
        failures=state.failures * factor + seen.failures,
        judged=state.judged * factor + seen.judged,
        every=state.every or seen.every,
    )


def observe(outcomes: Outcomes, *, atomic: bool = True) -> Observation:
    """The refusals and the operations judged for good in one answer.

    An operation counts as refused on its own when its receipt is a FAILURE (its events FAILED
    or UNMERGED with the error), not when its failure is bound to another's (an atomic batch, a
    relationship to a failed create) or when it was unmerged for a neighbour's failure. It
    counts as judged when every one of its events is final (applied, coalesced, dead-lettered):
    an operation cancelled by a neighbour is judged later, once, when it is sent again.
    """
    failing: set[OpRef] = set()
    final: dict[OpRef, bool] = {}
    for outcome in outcomes.outcomes:
        ref = outcome.op
        if ref is None:
            continue
        final[ref] = final.get(ref, True) and outcome.is_final
        if refused_on_its_own(outcome):
            failing.add(ref)
    judged = sum(1 for ref, done in final.items() if done or ref in failing)
    return Observation(len(failing), judged, atomic)


def rest_goes_bulk(
    state: RefusalState,
    seen: Observation,
    *,
    rest: Sequence[Prior | None],
    policy: RefusalPolicy,
    foresight: ForesightPolicy | None = None,
) -> bool:
    """Whether the rest of a refused bundle (`rest`: what foresight expected of each operation
    left to send) goes as bulk requests: the refusal named one failure, the Registry has not
    shown that it names them all, and the rest is expected to hold `bulk_expected` failures or
    more (the rate counts only once trusted)."""
    if not policy.enabled or seen.failures != 1 or state.every:
        return False
    expected = 0.0
    plain = 0
    for prior in rest:
        if prior is not None and foresight and state.foresight.isolates(prior, foresight):
            expected += state.foresight.precision(prior)
        else:
            plain += 1
    if state.failures >= policy.min_failures:
        expected += state.rate * plain
    return expected >= policy.bulk_expected

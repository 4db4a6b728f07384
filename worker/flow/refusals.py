"""Refusals in the flow: fold each recorded answer into the source's refusal rate and into what
foresight knows (`domain.lessons`), and say whether the rest of a refused bundle goes as bulk
requests.

The rule is `worker.domain.refusals`; the shared state is `worker.store.refusals` (one call per
recorded answer that judged something, in the round trip of its record unless some of its
events go again). Why bulk for the rest: with a Registry that
names one failure per refused bundle, a bundle holding k failures is refused k times in a row,
each time re-planned whole; as bulk requests the rest's failures are all reported at once and
cancel nothing (docs/pipeline.md, "Refusals").
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import structlog

from worker.domain.bulk import BulkRequestPlan
from worker.domain.events import Target
from worker.domain.lessons import lesson_of
from worker.domain.ops import PlannedOp
from worker.domain.outcomes import OpRef, Outcomes
from worker.domain.plan import BundlePlan
from worker.domain.refusals import observe, rest_goes_bulk
from worker.flow.deps import Deps
from worker.flow.layout import Sendable
from worker.store.refusals import fold_arguments

__all__ = ["Noted", "Rest", "note_answer"]

_log = structlog.get_logger("worker.pipeline")


def _op_at(plan: Sendable, ref: OpRef) -> PlannedOp:
    ops = plan.resource_ops if ref.target is Target.RESOURCE else plan.relationship_ops
    return ops[ref.index]


class Rest(Enum):
    """How the events a refused bundle sends again are planned again."""

    BUNDLE = "bundle"
    """As bundles, as they were planned (`planning.plan_rest`)."""
    BULK = "bulk"
    """As bulk requests (`rest_goes_bulk`)."""
    APART = "apart"
    """Each operation in a bundle of its own (`expected_apart`)."""


@dataclass(frozen=True)
class Noted:
    """What an answer's fold decided, and the fold itself when it can wait for the record."""

    rest: Rest = Rest.BUNDLE
    """How the events it sends again go."""
    fold: list[str] | None = None
    """refusals.lua's arguments, to run with record.lua in one round trip (nothing goes again,
    so nothing waits for the state after it)."""


def expected_apart(plan: Sendable) -> bool:
    """Whether a bundle holds only operations set apart as expected failures (new guesses that
    share a bundle: `plan.foreseen`). Refused where the Registry names one failure per refusal,
    its rest goes each in a bundle of its own, side by side: the rest is expected to fail too,
    so in one bundle it would be refused once per failure in a row, and as bulk requests its
    polls would hold its entities, and everything planned behind them, for at least the first
    poll's wait."""
    return (
        isinstance(plan, BundlePlan) and len(plan.ops) > 1 and all(op.set_apart for op in plan.ops)
    )


def note_answer(
    deps: Deps, source: str, bundle_id: str, plan: Sendable, outcomes: Outcomes
) -> Noted:
    """Fold this answer into the source's rate and into foresight: now when some of its events
    go again (whether they go as bulk requests depends on the state after it), else with its
    record (see the module docstring)."""
    bulk_request = isinstance(plan, BulkRequestPlan)
    seen = observe(outcomes, atomic=not bulk_request)
    if not seen.judged:
        return Noted()
    settings = deps.settings
    policy = settings.refusal_policy()
    learn = settings.foresight
    fold = fold_arguments(
        seen,
        halflife_ops=policy.halflife_ops,
        ttl_ms=settings.results_ttl_s * 1000,
        lesson=lesson_of(plan.ops, outcomes) if learn else None,
        known_cap=settings.foresight_known_max if learn else 0,
    )
    left = {o.op for o in outcomes.outcomes if not o.is_final and o.op is not None}
    if bulk_request or not left:
        return Noted(fold=fold)
    state = deps.store.fold_refusals(source, fold)
    if seen.failures == 1 and not state.every and expected_apart(plan):
        return Noted(rest=Rest.APART)
    rest = [_op_at(plan, ref).prior for ref in left]
    bulk = rest_goes_bulk(
        state, seen, rest=rest, policy=policy, foresight=settings.foresight_policy()
    )
    if bulk:
        _log.info(
            "bundle.rest_as_bulk",
            source=source,
            bundle=bundle_id,
            operations=len(rest),
            rate=round(state.rate, 5),
        )
    return Noted(rest=Rest.BULK if bulk else Rest.BUNDLE)

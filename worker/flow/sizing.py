"""Bundle sizes in the flow: shrink a source's bundles when the Registry refused one as a whole or
timed out on it, and give the planner the cap in effect.

The rule is `worker.domain.sizing`; the shared state is `worker.store.sizing`. A shrink is a
compare-and-set, tried again from what another worker wrote when it lost a race: each refusal or
timeout halves once, and a bundle larger than the cap in effect (planned before an earlier shrink)
halves nothing, so a plan of several oversized bundles costs one halving, not one per bundle.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Final

import structlog

from worker.domain.plan import PlanCaps
from worker.domain.sizing import (
    BundleSizing,
    SizingPolicy,
    effective_cap,
    recovered_at_ms,
    shrink,
)
from worker.flow.deps import Deps
from worker.store.records import ReadRound

__all__ = ["plan_caps_for", "shrink_bundles", "sizing_policy"]

_log = structlog.get_logger("worker.pipeline")

_MAX_SWAPS: Final = 8
"""Compare-and-set attempts; each lost one means another worker shrank meanwhile."""


def sizing_policy(deps: Deps) -> SizingPolicy:
    """The configured cap and recovery time."""
    settings = deps.settings
    return SizingPolicy(settings.max_bundle_ops, settings.shrink_recovery_ms)


def plan_caps_for(deps: Deps, source: str, snapshot: ReadRound | None = None) -> PlanCaps:
    """The plan caps of the source now: the configured ones, closing bundles at the shrunk cap.

    Args:
        deps: the process's dependencies.
        source: the source key.
        snapshot: a planning round just read; its state is used (no round trip).
            Without one, the state is read (one round trip).
    """
    state = snapshot.sizing if snapshot is not None else deps.store.sizing(source)
    caps = deps.settings.plan_caps()
    cap = effective_cap(state, now_ms=deps.now_ms(), policy=sizing_policy(deps))
    if cap >= caps.max_operations:
        return caps
    return replace(caps, target_operations=cap)


def shrink_bundles(
    deps: Deps, source: str, why: str, *, sent_ops: int | None = None
) -> BundleSizing | None:
    """Halve the source's bundles (a request refused as a whole, or timed out); the state now.

    Args:
        deps: the process's dependencies.
        source: the source key.
        why: what happened, safe to log (a status or an error class, never a payload).
        sent_ops: operations of the failed request, when known: one larger than the cap in
            effect shrinks nothing (an earlier shrink already answered it).
    """
    policy = sizing_policy(deps)
    store = deps.store
    current = store.sizing(source)
    for _ in range(_MAX_SWAPS):
        now = deps.now_ms()
        new = shrink(current, now_ms=now, policy=policy, sent_ops=sent_ops)
        if new is None or new == current:
            return current
        recovered_at = recovered_at_ms(new, policy=policy)
        if recovered_at <= now:
            return current  # max_bundle_ops is 1: there is nothing to shrink
        swap = store.swap_sizing(source, expected=current, new=new, ttl_ms=recovered_at - now)
        if swap.done:
            _log.warning(
                "bundle.shrunk",
                source=source,
                cap=new.cap,
                max_ops=policy.max_ops,
                why=why,
                recovery_ms=policy.recovery_ms,
            )
            return new
        current = swap.current
    _log.warning("bundle.shrink_contended", source=source, why=why, attempts=_MAX_SWAPS)
    return current

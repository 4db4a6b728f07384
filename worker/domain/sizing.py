"""How many operations a source's bundles carry after the Registry refused or timed out on one.

A request refused as a whole (400/413 without receipts) or timed out may simply be too big for the
Registry right now. The source's bundles then close at half the cap in effect, and the cap
doubles back every `recovery_ms` up to the configured `max_ops`: one refusal costs a while of
smaller bundles, never a permanent slowdown. Ordinary per-operation failures say nothing about
size and never shrink anything.

The state is the cap right after the last shrink and when it happened; everything else is derived
from it at the time of asking, so the state needs no timer to grow back.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BundleSizing", "SizingPolicy", "effective_cap", "recovered_at_ms", "shrink"]


@dataclass(frozen=True)
class SizingPolicy:
    """The configured cap (`max_bundle_ops`) and how fast a shrunk cap doubles back."""

    max_ops: int
    recovery_ms: int

    def __post_init__(self) -> None:
        if self.max_ops < 1:
            raise ValueError("SizingPolicy.max_ops: must be at least 1")
        if self.recovery_ms < 1:
            raise ValueError("SizingPolicy.recovery_ms: must be at least 1")


@dataclass(frozen=True)
class BundleSizing:
    """A source's shrunk operation cap and when it was shrunk (ms, the pipeline's clock)."""

    cap: int
    shrunk_at_ms: int

    def __post_init__(self) -> None:
        if self.cap < 1:
            raise ValueError("BundleSizing.cap: must be at least 1")


def effective_cap(state: BundleSizing | None, *, now_ms: int, policy: SizingPolicy) -> int:
    """The operations a bundle closes at, at `now_ms`: the shrunk cap doubled once per
    `recovery_ms` elapsed since the shrink, never above `max_ops` (a clock that went back counts
    as no time elapsed)."""
    if state is None:
        return policy.max_ops
    doublings = max(0, now_ms - state.shrunk_at_ms) // policy.recovery_ms
    if doublings >= policy.max_ops.bit_length():
        return policy.max_ops  # any cap of at least 1 is past max_ops by now
    return min(policy.max_ops, state.cap << doublings)


def shrink(
    state: BundleSizing | None,
    *,
    now_ms: int,
    policy: SizingPolicy,
    sent_ops: int | None = None,
) -> BundleSizing | None:
    """The state after a refusal or timeout at `now_ms`: half the failed request's size (the
    effective cap when unknown), never below 1, so the next bundles are smaller than it.

    `sent_ops` is the size of the request that failed, when known. A request larger than the cap
    in effect was planned before an earlier shrink that already answered it (several bundles of
    one plan refused one after the other): the state is returned unchanged, so one oversized plan
    halves the cap once, not once per bundle.
    """
    current = effective_cap(state, now_ms=now_ms, policy=policy)
    if sent_ops is not None and sent_ops > current:
        return state
    failed = current if sent_ops is None else sent_ops
    return BundleSizing(max(1, failed // 2), now_ms)


def recovered_at_ms(state: BundleSizing, *, policy: SizingPolicy) -> int:
    """When the cap is back to `max_ops`: from then on the state says nothing (it may expire)."""
    doublings = 0
    while (state.cap << doublings) < policy.max_ops:
        doublings += 1
    return state.shrunk_at_ms + doublings * policy.recovery_ms

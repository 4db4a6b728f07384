"""Bundle sizing: the shrunk cap doubles back over time; a shrink halves the cap in effect."""

from __future__ import annotations

import pytest

from worker.domain.sizing import (
    BundleSizing,
    SizingPolicy,
    effective_cap,
    recovered_at_ms,
    shrink,
)

POLICY = SizingPolicy(max_ops=500, recovery_ms=1000)
T0 = 1_700_000_000_000


@pytest.mark.parametrize(
    ("state", "now", "cap"),
    [
        (None, T0, 500),
        (BundleSizing(250, T0), T0, 250),
        (BundleSizing(250, T0), T0 + 999, 250),
        (BundleSizing(250, T0), T0 + 1000, 500),
        (BundleSizing(100, T0), T0 + 1000, 200),
        (BundleSizing(100, T0), T0 + 2999, 400),
        (BundleSizing(100, T0), T0 + 3000, 500),
        (BundleSizing(1, T0), T0 + 4000, 16),
        (BundleSizing(1, T0), T0 + 9000, 500),
        (BundleSizing(1, T0), T0 + 10**15, 500),
        (BundleSizing(250, T0), T0 - 5000, 250),
        (BundleSizing(800, T0), T0, 500),
    ],
    ids=[
        "none",
        "at-shrink",
        "just-before-doubling",
        "one-doubling-reaches-max",
        "one-doubling",
        "two-doublings",
        "capped-at-max",
        "four-doublings",
        "from-1-to-max",
        "far-future",
        "clock-went-back",
        "state-above-a-lowered-max",
    ],
)
def test_effective_cap_doubles_every_recovery_period_up_to_max(state, now, cap):
    assert effective_cap(state, now_ms=now, policy=POLICY) == cap


@pytest.mark.parametrize(
    ("state", "now", "sent", "after"),
    [
        (None, T0, None, BundleSizing(250, T0)),
        (BundleSizing(250, T0), T0 + 10, None, BundleSizing(125, T0 + 10)),
        (BundleSizing(100, T0), T0 + 1500, None, BundleSizing(100, T0 + 1500)),
        (BundleSizing(3, T0), T0, None, BundleSizing(1, T0)),
        (BundleSizing(1, T0), T0 + 5, None, BundleSizing(1, T0 + 5)),
        (BundleSizing(250, T0), T0 + 10**9, None, BundleSizing(250, T0 + 10**9)),
        (None, T0, 500, BundleSizing(250, T0)),
        (BundleSizing(250, T0), T0 + 10, 250, BundleSizing(125, T0 + 10)),
        (BundleSizing(250, T0), T0 + 10, 40, BundleSizing(20, T0 + 10)),
        (BundleSizing(250, T0), T0 + 10, 500, BundleSizing(250, T0)),
    ],
    ids=[
        "first-shrink",
        "again",
        "half-the-grown-cap",
        "odd-rounds-down",
        "never-below-1",
        "recovered-then-shrunk",
        "sent-at-the-cap",
        "sent-at-the-shrunk-cap",
        "sent-below-the-cap",
        "sent-above-the-cap-planned-before-a-shrink",
    ],
)
def test_shrink_halves_the_failed_request_or_the_cap_in_effect(state, now, sent, after):
    assert shrink(state, now_ms=now, policy=POLICY, sent_ops=sent) == after


def test_shrink_two_bundles_of_one_plan_halve_once_and_a_later_one_halves_again():
    first = shrink(None, now_ms=T0, policy=POLICY, sent_ops=500)
    second = shrink(first, now_ms=T0 + 1, policy=POLICY, sent_ops=500)
    assert first == second == BundleSizing(250, T0)
    third = shrink(second, now_ms=T0 + 2, policy=POLICY, sent_ops=250)
    assert third == BundleSizing(125, T0 + 2)


@pytest.mark.parametrize(
    ("state", "at"),
    [
        (BundleSizing(250, T0), T0 + 1000),
        (BundleSizing(251, T0), T0 + 1000),
        (BundleSizing(249, T0), T0 + 2000),
        (BundleSizing(1, T0), T0 + 9000),
        (BundleSizing(500, T0), T0),
    ],
)
def test_recovered_at_is_when_the_effective_cap_reaches_max(state, at):
    assert recovered_at_ms(state, policy=POLICY) == at
    assert effective_cap(state, now_ms=at, policy=POLICY) == POLICY.max_ops
    if at > state.shrunk_at_ms:
        assert effective_cap(state, now_ms=at - 1, policy=POLICY) < POLICY.max_ops


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: SizingPolicy(max_ops=0, recovery_ms=1), "max_ops"),
        (lambda: SizingPolicy(max_ops=1, recovery_ms=0), "recovery_ms"),
        (lambda: BundleSizing(0, T0), "cap"),
    ],
)
def test_sizing_values_refuse_nonsense(build, match):
    with pytest.raises(ValueError, match=match):
        build()

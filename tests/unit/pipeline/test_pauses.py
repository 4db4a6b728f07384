"""The pause decision table: which client errors pause a source, of which kind, for how long."""

from __future__ import annotations

import random

import pytest

from api_client import (
    AlreadyExistsError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    ServiceUnavailableError,
    TransportError,
    UnauthenticatedError,
)
from worker.pauses import PauseKind, PausePolicy, backoff_ms, decide_pause

POLICY = PausePolicy(base_ms=100, cap_ms=1000)


def decide(error, strikes=0, seed=1):
    return decide_pause(error, strikes=strikes, policy=POLICY, rng=random.Random(seed))


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (UnauthenticatedError("no", status=401), PauseKind.AUTH),
        (PermissionDeniedError("no", status=403), PauseKind.AUTH),
        (TransportError("connection refused"), PauseKind.UNREACHABLE),
        (RateLimitedError("slow", status=429, retry_after_s=0.5), PauseKind.THROTTLED),
        (ServiceUnavailableError("busy", status=503, retry_after_s=0.5), PauseKind.THROTTLED),
    ],
    ids=["401", "403", "refused", "429", "503"],
)
def test_decide_pause_kind_by_error(error, kind):
    decision = decide(error)
    assert decision is not None
    assert decision.kind is kind


@pytest.mark.parametrize(
    "error",
    [InvalidRequestError("bad", status=400), AlreadyExistsError("dup", status=409), ValueError()],
    ids=["400", "409", "not-a-client-error"],
)
def test_decide_pause_data_errors_do_not_pause(error):
    assert decide(error) is None


def test_decide_pause_404_on_a_write_route_is_a_configuration_pause():
    error = NotFoundError("no such route", status=404)

    on_write = decide_pause(error, strikes=1, policy=POLICY, rng=random.Random(1), write=True)

    assert on_write is not None
    assert on_write.kind is PauseKind.CONFIG
    assert on_write.reason == "NotFoundError 404"
    assert 100 <= on_write.duration_ms <= 200  # the backoff, as for a refused key
    assert decide(error) is None  # a read's 404 is an entity that is not there


def test_decide_pause_only_auth_stops_polls():
    assert [k for k in PauseKind if k.stops_polls] == [PauseKind.AUTH]


def test_decide_pause_retry_after_sets_the_length_capped():
    short = decide(RateLimitedError("slow", status=429, retry_after_s=0.25))
    long = decide(RateLimitedError("slow", status=429, retry_after_s=30))
    assert short is not None
    assert short.duration_ms == 250
    assert long is not None
    assert long.duration_ms == POLICY.cap_ms


def test_decide_pause_throttle_without_hint_backs_off():
    decision = decide(ServiceUnavailableError("busy", status=503), strikes=2)
    assert decision is not None
    assert 200 <= decision.duration_ms <= 400


def test_decide_pause_reason_names_status_never_the_message():
    error = UnauthenticatedError("key sk-secret-123 refused", status=401)
    decision = decide(error)
    assert decision is not None
    assert "401" in decision.reason
    assert "UnauthenticatedError" in decision.reason
    assert "sk-secret" not in decision.reason


@pytest.mark.parametrize(("strikes", "low", "high"), [(0, 50, 100), (1, 100, 200), (3, 400, 800),
                                                      (4, 500, 1000), (40, 500, 1000)])  # fmt: skip
def test_backoff_ms_grows_then_caps(strikes, low, high):
    draws = [backoff_ms(POLICY, strikes, random.Random(seed)) for seed in range(50)]
    assert all(low <= d <= high for d in draws)
    assert len(set(draws)) > 1, "jittered"


def test_backoff_ms_refuses_negative_strikes():
    with pytest.raises(ValueError, match="strikes"):
        backoff_ms(POLICY, -1, random.Random(0))


@pytest.mark.parametrize(("base", "cap", "field"), [(0, 10, "base_ms"), (10, 5, "cap_ms")])
def test_pause_policy_refuses_bad_durations(base, cap, field):
    with pytest.raises(ValueError, match=field):
        PausePolicy(base, cap)

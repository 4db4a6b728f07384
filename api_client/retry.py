"""Whether to send a failed request again, and after how long: pure functions of a frozen policy.

A request is retried only when sending it again is harmless:

| failure                                       | read            | write                 |
|-----------------------------------------------|-----------------|-----------------------|
| certainly not processed: connect refused,     | retry           | retry                 |
| connect or pool timeout                       |                 |                       |
| throttled: 429, 503 (`RateLimitedError`)      | retry after `Retry-After` (capped), |
|                                               | or raise at once if on_throttle="return" |
| maybe applied: read / write timeout, dropped  | retry           | raise                 |
| connection, 500, 502, 504                     |                 | `OutcomeUnknownError` |
| refused: other 4xx, 401, 403, 501, contract   | raise           | raise                 |

A retry waits `backoff_s` (exponential, full jitter, capped) unless the server said how long.
It is given up when `max_attempts` is reached, or when the wait would end past `deadline_s`
(counted from the first attempt, waits included): then the last failure is raised as it is.
"""

from __future__ import annotations

import email.utils
import math
import re
from dataclasses import dataclass
from datetime import UTC
from enum import StrEnum
from typing import Final, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from api_client.errors import RateLimitedError, RegistryError

__all__ = [
    "RandomSource",
    "RetryDecision",
    "RetryPolicy",
    "Verdict",
    "backoff_s",
    "decide",
    "parse_retry_after",
]

_MAX_EXPONENT: Final = 64
"""2**64 seconds is past any cap; bounding the exponent keeps the float arithmetic finite."""

_DELAY_SECONDS: Final = re.compile(r"\d+(?:\.\d+)?", re.ASCII)


class RandomSource(Protocol):
    """The one method of `random.Random` jitter needs, so a seeded generator can be injected."""

    def uniform(self, a: float, b: float) -> float:
        """A float drawn uniformly from [a, b]."""
        ...


class RetryPolicy(BaseModel):
    """How hard one request tries: backoff, attempts, deadline, and what a throttle does."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_s: float = Field(default=0.5, gt=0, allow_inf_nan=False)
    """The ceiling of the first backoff; it doubles with every attempt."""
    cap_s: float = Field(default=20.0, gt=0, allow_inf_nan=False)
    """The largest ceiling a backoff draws from."""
    max_attempts: int = Field(default=5, ge=1)
    """Attempts in all, the first included; 1 disables retries."""
    deadline_s: float = Field(default=60.0, gt=0, allow_inf_nan=False)
    """Wall-clock budget of one request, from its first attempt, waits included."""
    retry_after_cap_s: float = Field(default=60.0, ge=0, allow_inf_nan=False)
    """The longest a `Retry-After` hint makes the client sleep."""
    on_throttle: Literal["sleep", "return"] = "sleep"
    """On 429 / 503: "sleep" waits and retries; "return" raises `RateLimitedError` at once, so
    that the caller can pause every worker of the source."""


class Verdict(StrEnum):
    """What the caller of `decide` does next."""

    RETRY = "retry"
    """Sleep `wait_s`, then send the same request again."""
    RAISE = "raise"
    """Raise the failure as it is."""
    OUTCOME_UNKNOWN = "outcome_unknown"
    """Raise `OutcomeUnknownError` carrying what was sent: the write may have been applied."""


@dataclass(frozen=True)
class RetryDecision:
    """The verdict on one failed attempt, the wait before the next one, and why (for the log)."""

    verdict: Verdict
    wait_s: float = 0.0
    reason: str = ""


def backoff_s(attempt: int, policy: RetryPolicy, rng: RandomSource) -> float:
    """Full-jitter exponential backoff after failed attempt number `attempt` (0 for the first).

    Uniform in [0, min(cap_s, base_s * 2**attempt)]: spreading retries over the whole interval keeps
    many clients that failed together from coming back together.
    """
    if attempt < 0:
        raise ValueError(f"attempt must be >= 0, got {attempt}")
    ceiling = min(policy.cap_s, policy.base_s * 2.0 ** min(attempt, _MAX_EXPONENT))
    return rng.uniform(0.0, ceiling)


def parse_retry_after(value: str | None, *, now_s: float) -> float | None:
    """Seconds to wait according to a `Retry-After` header, or None when absent or unreadable.

    Both forms of RFC 9110 are read: delay seconds ("3"; a decimal is tolerated) and an HTTP date,
    taken relative to `now_s` (seconds since the epoch, from the caller's injected clock). A date in
    the past means 0. Anything else (negative, "inf", free text) is ignored, never an error.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if _DELAY_SECONDS.fullmatch(text):
        seconds = float(text)
        return seconds if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000" parses naive; RFC 9110 dates are always GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now_s)


def decide(
    failure: RegistryError,
    *,
    is_write: bool,
    attempt: int,
    elapsed_s: float,
    policy: RetryPolicy,
    rng: RandomSource,
) -> RetryDecision:
    """Decides what follows failed attempt number `attempt` (0 for the first) of one request.

    Args:
        failure: what the attempt raised, already one of our errors.
        is_write: whether the request changes the Registry (anything but GET).
        attempt: the index of the attempt that failed, 0 for the first.
        elapsed_s: seconds since the first attempt started, waits included.
        policy: the request's retry policy.
        rng: the jitter source (a seeded `random.Random` in tests).

    Returns:
        RETRY with the wait in seconds, RAISE, or OUTCOME_UNKNOWN (see the module table).
    """
    if isinstance(failure, RateLimitedError):
        if policy.on_throttle == "return":
            return RetryDecision(Verdict.RAISE, reason="throttled: returned to the caller")
        if failure.retry_after_s is not None:
            wait_s = min(failure.retry_after_s, policy.retry_after_cap_s)
            reason = "throttled: waiting as the server asked"
        else:
            wait_s = backoff_s(attempt, policy, rng)
            reason = "throttled: backing off"
    elif not failure.retryable:
        return RetryDecision(Verdict.RAISE, reason="not retryable")
    elif failure.maybe_applied:
        if is_write:
            return RetryDecision(Verdict.OUTCOME_UNKNOWN, reason="a write may have been applied")
        wait_s = backoff_s(attempt, policy, rng)
        reason = "a read failed: backing off"
    else:
        wait_s = backoff_s(attempt, policy, rng)
        reason = "certainly not processed: backing off"
    if attempt + 1 >= policy.max_attempts:
        return RetryDecision(Verdict.RAISE, reason=f"{policy.max_attempts} attempts made")
    if elapsed_s + wait_s > policy.deadline_s:
        return RetryDecision(Verdict.RAISE, reason=f"a retry would end past {policy.deadline_s} s")
    return RetryDecision(Verdict.RETRY, wait_s=wait_s, reason=reason)

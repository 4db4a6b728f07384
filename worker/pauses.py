"""Which Registry answers pause a whole source, for how long, and what a pause holds back.

A configuration error (401, 403, connection refused, a bad base URL, a 404 on a write route) is no
fault of the data: it
pauses submission for the source, with backoff, and dead-letters nothing (invariant 7).
A 429 or 503 pauses every worker of the source until the server's `Retry-After` (invariant 10).
Pure decisions only: the pause lives in Redis (`worker/store/pauses.py`), the flow applies it.

| answer                              | kind          | how long              | polls go on |
|-------------------------------------|---------------|-----------------------|-------------|
| 401, 403 (`AuthError`)              | `auth`        | backoff               | no          |
| `TransportError` (refused, bad URL) | `unreachable` | backoff               | yes         |
| 404 on a write route (`NotFoundError`) | `config`   | backoff               | yes         |
| 429, 503 with `Retry-After`         | `throttled`   | `Retry-After`, capped | yes         |
| 429, 503 without it                 | `throttled`   | backoff               | yes         |
| anything else                       | no pause      |                       |             |

Backoff: `base_ms * 2**strikes` capped at `cap_ms`, drawn (full jitter) in its upper half, where
`strikes` counts the pauses since the Registry last accepted a submission of the source.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import Enum

from api_client import AuthError, NotFoundError, RateLimitedError, TransportError

__all__ = ["PauseDecision", "PauseKind", "PausePolicy", "backoff_ms", "decide_pause"]


class PauseKind(Enum):
    """Why a source is paused; decides whether polls of accepted tasks go on."""

    AUTH = "auth"
    """The key is refused (401, 403): nothing can reach the Registry, polls stop too."""
    UNREACHABLE = "unreachable"
    """The Registry cannot be reached (connection refused, bad base URL)."""
    THROTTLED = "throttled"
    """The Registry asked to slow down (429, 503)."""
    CONFIG = "config"
    """The Registry does not serve the write route (404): a base URL with a wrong path, or a
    source it does not know. Submissions wait; polls go on (a poll's own 404 is only retried)."""

    @property
    def stops_polls(self) -> bool:
        """Whether polls of tasks already accepted wait for the pause too."""
        return self is PauseKind.AUTH


@dataclass(frozen=True)
class PausePolicy:
    """The durations a pause is drawn from (settings `pause_base_ms`, `pause_cap_ms`)."""

    base_ms: int
    cap_ms: int

    def __post_init__(self) -> None:
        if self.base_ms < 1:
            raise ValueError("base_ms: must be at least 1")
        if self.cap_ms < self.base_ms:
            raise ValueError("cap_ms: must be at least base_ms")


@dataclass(frozen=True)
class PauseDecision:
    """A pause to record: its kind, a reason safe to log (no secret, no payload), its length."""

    kind: PauseKind
    reason: str
    duration_ms: int


def backoff_ms(policy: PausePolicy, strikes: int, rng: random.Random) -> int:
    """The length of a pause after `strikes` earlier ones: exponential, capped, jittered into
    its upper half so that workers do not probe in step."""
    if strikes < 0:
        raise ValueError("strikes: must not be negative")
    ceiling = min(policy.cap_ms, policy.base_ms * 2 ** min(strikes, 30))
    return max(1, int(rng.uniform(ceiling / 2, ceiling)))


def _reason(error: BaseException) -> str:
    """The status and error type only: a server message or URL is never copied into a reason."""
    status = getattr(error, "status", None)
    error_type = getattr(error, "error_type", None)
    parts = [type(error).__name__]
    if status is not None:
        parts.append(str(status))
    if error_type is not None:
        parts.append(str(error_type))
    return " ".join(parts)


def decide_pause(
    error: BaseException,
    *,
    strikes: int,
    policy: PausePolicy,
    rng: random.Random,
    write: bool = False,
) -> PauseDecision | None:
    """Whether this failed request pauses its source, and for how long (the table above).

    Args:
        error: what the client raised.
        strikes: pauses of the source since the Registry last accepted one of its submissions.
        policy: base and cap of the backoff; the cap also bounds a `Retry-After`.
        rng: the jitter source.
        write: the request was a write (a bundle or a bulk request): a 404 then means the route
            is wrong, not that an entity is missing, as it does for a read.
    """
    if isinstance(error, AuthError):
        return PauseDecision(PauseKind.AUTH, _reason(error), backoff_ms(policy, strikes, rng))
    if isinstance(error, TransportError):
        duration = backoff_ms(policy, strikes, rng)
        return PauseDecision(PauseKind.UNREACHABLE, _reason(error), duration)
    if write and isinstance(error, NotFoundError):
        return PauseDecision(PauseKind.CONFIG, _reason(error), backoff_ms(policy, strikes, rng))
    if isinstance(error, RateLimitedError):
        hint = error.retry_after_s
        if hint is None:
            duration = backoff_ms(policy, strikes, rng)
        else:
            duration = min(policy.cap_ms, max(0, int(hint * 1000)))
        return PauseDecision(PauseKind.THROTTLED, _reason(error), duration)
    return None

"""Waiting for a task: poll without receipts, backing off, then read the receipts once.

Receipts can be large (a bulk request may hold millions of operations), so every poll asks for the
status alone and only the final read asks `withReceipts=true`. A task may stay PENDING for days in
manual review: reaching the deadline raises `TaskStillPendingError`, which is not a failure.
For a synchronous caller (scripts, the demo); the worker keeps its poll schedule in Redis instead.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Final, Protocol

from pydantic import BaseModel, ConfigDict, Field

from api_client.errors import TaskStillPendingError
from api_client.models import TaskState
from api_client.retry import RandomSource
from api_client.tasks import TaskRef

__all__ = ["PollPolicy", "TaskStateSource", "poll_wait_s", "wait_for_task"]

_MAX_EXPONENT: Final = 64


class PollPolicy(BaseModel):
    """How often a wait polls: waits grow from `first_wait_s` by `multiplier` up to `cap_s`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    first_wait_s: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    """The wait after the first poll."""
    multiplier: float = Field(default=2.0, ge=1, allow_inf_nan=False)
    """Each wait is this many times the previous one (before jitter), up to the cap."""
    cap_s: float = Field(default=60.0, gt=0, allow_inf_nan=False)
    """The longest wait between two polls."""
    jitter: float = Field(default=0.2, ge=0, le=1, allow_inf_nan=False)
    """The share of each wait drawn at random (0: exact waits; 1: full jitter), so that many
    waiters started together spread out."""


class TaskStateSource(Protocol):
    """What a wait needs from a client: a task's state on its poll route."""

    def get_task_state(self, ref: TaskRef, *, with_receipts: bool = False) -> TaskState:
        """The current state of `ref`, with its receipts when asked."""
        ...


def poll_wait_s(poll: int, policy: PollPolicy, rng: RandomSource) -> float:
    """The wait after poll number `poll` (0 for the first): grows geometrically to the cap."""
    if poll < 0:
        raise ValueError(f"poll must be >= 0, got {poll}")
    try:
        grown = policy.first_wait_s * policy.multiplier ** min(poll, _MAX_EXPONENT)
    except OverflowError:
        grown = policy.cap_s
    ceiling = min(policy.cap_s, grown)
    return ceiling - rng.uniform(0.0, ceiling * policy.jitter)


def wait_for_task(
    client: TaskStateSource,
    ref: TaskRef,
    *,
    deadline_s: float,
    policy: PollPolicy | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    rng: RandomSource | None = None,
) -> TaskState:
    """Polls `ref` until its status is terminal, then returns its state with the receipts.

    Polls ask for the status only; once it is terminal, one more GET with `withReceipts=true`
    gives the state returned (a purge has no receipts: its terminal state is returned as is).
    The last wait is shortened so that one poll happens right at the deadline.

    Args:
        client: usually a `RegistryClient`.
        ref: the task, with its source key.
        deadline_s: seconds to keep polling, from the first poll.
        policy: the waits between polls (`PollPolicy()` when None).
        clock: monotonic seconds.
        sleep: waits between polls.
        rng: jitter source.

    Raises:
        TaskStillPendingError: the deadline passed before the task ended (not a failure).
        RegistryError: a poll failed after its own retries.
    """
    if deadline_s < 0:
        raise ValueError(f"deadline_s must be >= 0, got {deadline_s}")
    policy = PollPolicy() if policy is None else policy
    rng = random.Random() if rng is None else rng  # noqa: S311 - jitter, not security
    started = clock()
    polls = 0
    while True:
        state = client.get_task_state(ref, with_receipts=False)
        polls += 1
        if state.is_terminal:
            if not ref.has_receipts:
                return state
            return client.get_task_state(ref, with_receipts=True)
        elapsed_s = clock() - started
        remaining_s = deadline_s - elapsed_s
        if remaining_s <= 0:
            raise TaskStillPendingError(
                ref, last_status=str(state.status), elapsed_s=elapsed_s, polls=polls
            )
        sleep(min(poll_wait_s(polls - 1, policy, rng), remaining_s))

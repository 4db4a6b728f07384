"""Comparing the core's final outcomes with the one-by-one outcomes of the oracle (invariant 4).

APPLIED alone matches APPLIED or COALESCED (merged into an operation that applied). FAILED alone
matches FAILED with the same error type, or FAILED bound to another failure (an atomic batch, a
relationship to a worker-id CREATE that failed), whose error is the cause's. The one documented
exception (docs/coalescing.md, SUPERSEDE mode only): a superseded event whose own payload the
Registry refuses is COALESCED, where alone it would have FAILED on that payload. STRICT mode merges
nothing, so there an event applied alone must be APPLIED, never COALESCED.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Final

from tests.property.oracle import Expected
from worker.domain.coalesce import CoalesceMode, Fate
from worker.domain.events import ChangeEvent
from worker.domain.outcomes import EventOutcome

STRICT: Final = CoalesceMode.STRICT

PAYLOAD_ERRORS: Final = frozenset({"FAILED_PRECONDITION", "INVALID_ARGUMENT"})
"""What the emulator answers for content off its profile (schema) or meta off the rules."""


def mismatch(
    event: ChangeEvent,
    expected: Expected,
    got: EventOutcome,
    *,
    mode: CoalesceMode,
    invalid: Collection[str],
) -> str | None:
    """Why `got` is not the one-by-one outcome `expected`; None when they agree."""
    if expected.applied:
        if got.fate is Fate.APPLIED or (got.fate is Fate.COALESCED and mode is not STRICT):
            return None
        return f"applied alone, but {got.fate} ({got.error})"
    if got.fate is Fate.FAILED:
        if expected.batch_failed or got.bound_to is not None:
            return None
        error_type = None if got.error is None else got.error.type
        if error_type == expected.error_type:
            return None
        return f"failed alone with {expected.error_type}, but here with {error_type}"
    superseded_bad_payload = (
        mode is CoalesceMode.SUPERSEDE
        and got.fate is Fate.COALESCED
        and event.event_id in invalid
        and expected.error_type in PAYLOAD_ERRORS
    )
    if superseded_bad_payload:
        return None
    return f"failed alone with {expected.error_type}, but {got.fate}"


def assert_same_outcomes(
    events: Sequence[ChangeEvent],
    expected: Mapping[str, Expected],
    final: Mapping[str, EventOutcome],
    *,
    mode: CoalesceMode,
    invalid: Collection[str] = frozenset(),
) -> None:
    """Every event's final outcome agrees with its one-by-one outcome."""
    problems = []
    for event in events:
        got = final[event.event_id]
        why = mismatch(event, expected[event.event_id], got, mode=mode, invalid=invalid)
        if why is not None:
            problems.append(f"{event.event_id} {event.action} {event.target} {event.type}: {why}")
    assert not problems, problems

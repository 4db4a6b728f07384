"""The coalescing table: when two pending changes to one entity may travel as one operation.

The rule kept (invariant 4): applying the coalesced operations leaves the Registry in the
same state, and gives every event the same outcome, as applying the events one by one in order,
including when single events fail on their own. `docs/coalescing.md` holds the table with the
reasoning for every row; `RULES` below is that table, and the tests check one against the other.

The shape of the argument, in short:
- A merged operation carries the payload of its latest event (the CARRIER); the earlier events
  are SUPERSEDED. When it is applied, the carrier is APPLIED and the others are COALESCED.
- A pair is merged only when success of the merged operation proves the outcome every event would
  have had alone (for CREATE+UPSERT, success proves the entity was absent, so the CREATE alone
  would have applied). Where success would leave an event's outcome unknown, or where we would have
  to invent an error the Registry never gave (the second of two CREATEs), the pair is SPLIT: the
  new event starts a new operation, in a later bundle.
- When a merged operation is refused, nothing of it was applied (a bundle is atomic; a bulk
  operation is atomic on its own), so the state is exactly the state before its first event. Its
  events are then UNMERGED: re-planned one operation each, in order, which is the one-by-one
  application itself. Whatever made the merged operation fail, each event then meets its own fate.
- The table speaks of actions; one rule on payloads cuts a MERGE short: a CREATE or UPSERT never
  supersedes an event that names meta it does not name itself (`meta_carried`), since the
  Registry may keep a stored createdAt where a write names none.
- One exception is chosen and documented, in `CoalesceMode.SUPERSEDE` only: the Registry never
  judges a superseded event's own payload, so a superseded event whose payload alone would have
  been refused is reported COALESCED. `CoalesceMode.STRICT` merges nothing and has no exception.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from api_client.models import Action, ErrorType, ReceiptStatus

C, U, D = Action.CREATE, Action.UPSERT, Action.DELETE


class CoalesceMode(StrEnum):
    """How far coalescing goes; a setting, so an operator can trade requests for strictness."""

    SUPERSEDE = "supersede"
    """Merge where the table says MERGE (fewer operations; see the one documented exception)."""
    STRICT = "strict"
    """Never merge: every event is its own operation, so the Registry judges every payload."""


class Decision(StrEnum):
    """What happens to a new event on an entity that already has a pending operation."""

    MERGE = "merge"
    """The new event joins the pending operation, whose action becomes `PairRule.sent`."""
    SPLIT = "split"
    """The new event starts a new operation, in a strictly later bundle."""


class Role(StrEnum):
    """An event's part in the operation that carries its fate."""

    CARRIER = "carrier"
    """Its payload is the one sent (always the latest event of the operation)."""
    SUPERSEDED = "superseded"
    """Merged into the operation; COALESCED when it is applied, UNMERGED when it is refused."""


class Fate(StrEnum):
    """What became of one event once its operation's receipt is read."""

    APPLIED = "APPLIED"
    """The Registry applied the event's own operation."""
    COALESCED = "COALESCED"
    """Merged into an operation that was applied; it shares that fate."""
    FAILED = "FAILED"
    """Refused for what it is; dead-lettered with the error (replayable)."""
    CANCELLED = "CANCELLED"
    """Innocent: a neighbour in its atomic bundle failed. Resubmit (with a cap)."""
    UNMERGED = "UNMERGED"
    """Its merged operation was refused: re-plan it alone, in order, to learn its own fate."""
    RETRY = "RETRY"
    """Its operation failed for a reason that is not the data's (INTERNAL, auth...): resubmit."""


@dataclass(frozen=True)
class PairRule:
    """One row of the table: a pending operation's action, then a new event's action."""

    pending: Action
    new: Action
    decision: Decision
    sent: Action | None
    """The merged operation's action (MERGE only)."""
    expected_error: ErrorType | None
    """For a SPLIT: the error the new event meets when the pending operation applied."""


def _merge(pending: Action, new: Action, sent: Action) -> PairRule:
    return PairRule(pending, new, Decision.MERGE, sent, None)


def _split(pending: Action, new: Action, expected: ErrorType | None = None) -> PairRule:
    return PairRule(pending, new, Decision.SPLIT, None, expected)


RULES: Final[Mapping[tuple[Action, Action], PairRule]] = {
    (C, C): _split(C, C, ErrorType.ALREADY_EXISTS),
    (C, U): _merge(C, U, C),
    (C, D): _split(C, D),
    (U, C): _split(U, C, ErrorType.ALREADY_EXISTS),
    (U, U): _merge(U, U, U),
    (U, D): _merge(U, D, D),
    (D, C): _split(D, C),
    (D, U): _split(D, U),
    (D, D): _split(D, D, ErrorType.NOT_FOUND),
}
"""The table, for resources and relationships alike (docs/coalescing.md says why they agree)."""


def pair_rule(pending: Action, new: Action) -> PairRule:
    """The row for a pending operation's action followed by a new event's action."""
    return RULES[(pending, new)]


def merged_action(pending: Action, new: Action, *, mode: CoalesceMode) -> Action | None:
    """The action of the merged operation, or None when the new event must start a new one.

    Args:
        pending: the action of the entity's open operation.
        new: the action of the new event.
        mode: STRICT never merges.
    """
    if mode is CoalesceMode.STRICT:
        return None
    rule = RULES[(pending, new)]
    return rule.sent if rule.decision is Decision.MERGE else None


def meta_carried(
    superseded: Iterable[Mapping[str, Any] | None], carrier: Mapping[str, Any] | None
) -> bool:
    """Whether a carrier names every meta field its superseded events name, so merging is safe.

    The table assumes a write replaces `meta` in full, which the documentation does not promise:
    a Registry that keeps a stored `createdAt` when a write names none (as the emulator does)
    would keep, one by one, a time that only a superseded event named, while the merged operation
    never sends it. A write that would leave such a field behind therefore starts a new operation
    (docs/coalescing.md, "Meta"). A DELETE carrier removes the record, meta and all; this check
    is for CREATE and UPSERT carriers.
    """
    carried = set(carrier or ())
    return all(set(meta or ()) <= carried for meta in superseded)


@dataclass(frozen=True)
class Segment:
    """Consecutive events on one entity that travel as one operation (a test and doc aid)."""

    action: Action
    actions: tuple[Action, ...]

    @property
    def roles(self) -> tuple[Role, ...]:
        """The latest event carries the payload; the others are superseded."""
        return tuple(
            Role.CARRIER if i == len(self.actions) - 1 else Role.SUPERSEDED
            for i in range(len(self.actions))
        )


def coalesce_actions(actions: Sequence[Action], *, mode: CoalesceMode) -> tuple[Segment, ...]:
    """Cut a chain of actions on one entity (no barriers) into operations, in order."""
    segments: list[Segment] = []
    for action in actions:
        if segments:
            last = segments[-1]
            merged = merged_action(last.action, action, mode=mode)
            if merged is not None:
                segments[-1] = Segment(merged, (*last.actions, action))
                continue
        segments.append(Segment(action, (action,)))
    return tuple(segments)


DATA_ERRORS: Final = frozenset(
    {
        ErrorType.ALREADY_EXISTS,
        ErrorType.FAILED_PRECONDITION,
        ErrorType.INVALID_ARGUMENT,
        ErrorType.NOT_FOUND,
        ErrorType.OUT_OF_RANGE,
        ErrorType.UNIMPLEMENTED,
        ErrorType.CONTENT_TOO_LARGE,
    }
)
"""Errors about the operation itself: the event is refused (after unmerging, if merged)."""

TRANSIENT_ERRORS: Final = frozenset(
    {
        ErrorType.INTERNAL,
        ErrorType.UNAVAILABLE,
        ErrorType.RESOURCE_EXHAUSTED,
        ErrorType.PERMISSION_DENIED,
        ErrorType.UNAUTHENTICATED,
    }
)
"""Errors that say nothing about the data (invariant 7): the operation is resubmitted as is."""


def is_transient(error_type: ErrorType | str | None) -> bool:
    """Whether a receipt's error should be retried rather than dead-lettered.

    An unknown or missing type counts as a data error: the event goes to the dead-letter queue,
    from which it can be replayed, rather than looping.
    """
    return error_type in TRANSIENT_ERRORS


def fates_for(
    roles: Sequence[Role], status: ReceiptStatus | str, error_type: ErrorType | str | None
) -> tuple[Fate, ...]:
    """The fate of each event of one operation, from the operation's own receipt.

    A merged operation that is refused for a data reason unmerges; a single event is FAILED.

    Raises:
        ValueError: the receipt is PENDING or of an unknown status (not a terminal answer).
    """
    if status == ReceiptStatus.SUCCESS:
        return tuple(Fate.APPLIED if r is Role.CARRIER else Fate.COALESCED for r in roles)
    if status == ReceiptStatus.CANCELLED:
        return tuple(Fate.CANCELLED for _ in roles)
    if status == ReceiptStatus.FAILURE:
        if is_transient(error_type):
            return tuple(Fate.RETRY for _ in roles)
        if len(roles) > 1:
            return tuple(Fate.UNMERGED for _ in roles)
        return (Fate.FAILED,)
    raise ValueError(f"status: {status!s} is not a terminal receipt status")

"""Resolving an outcome unknown by reading the entities back (invariant 10).

A request that timed out, or whose worker died before it recorded the answer, may or may not have
been applied. Every id it carries was fixed at publish, so the Registry can be asked. An operation
is *applied* when the entity shows what was sent: a DELETE when the entity is gone; a CREATE or an
UPSERT when the entity exists and every top-level field of the `data` (and `contained`) that was
sent has the value sent. What the server adds (`meta`, fields we did not send) is ignored.

A lost answer may still apply later (the request was held on the way, or queued as an ACCEPTED
task), so until a settle time has passed since the request left, anything short of "all applied"
means "read again later". Once settled, what applied is recorded APPLIED (COALESCED for the events
merged into it) and the rest is sent again, flagged: for a flagged event, a DELETE answered
NOT_FOUND or a CREATE answered ALREADY_EXISTS for an entity that matches counts as applied
(`answered_as_applied`), because the first, lost request may have landed after the read-back.

An operation that happens to show what was sent although its request was not applied (an UPSERT
of the data already there, a DELETE of an entity that was never there) is recorded APPLIED: the
Registry holds exactly what the one-by-one application would have left, which is what counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from api_client.models import (
    Action,
    BundleReceipts,
    ErrorBody,
    ErrorType,
    Receipt,
    ReceiptStatus,
)
from worker.domain.coalesce import Fate, fates_for
from worker.domain.keys import EntityKey
from worker.domain.ops import PlannedOp
from worker.domain.outcomes import EventOutcome, Outcomes
from worker.domain.receipts import Answer, Submission, aligned_receipts

__all__ = [
    "NOT_APPLIED",
    "POISON",
    "Resolution",
    "answered_as_applied",
    "given_up",
    "op_applied",
    "resolve",
    "submission_ops",
]

Seen = Mapping[str, Any] | None
"""An entity as read back (its JSON, aliases as the Registry names them), or None when absent."""

POISON: Final = "POISON"
"""The error type of events dead-lettered because their work kept killing its workers."""

NOT_APPLIED: Final = "not in the Registry on read-back after an outcome unknown; sent again"
"""The reason recorded with an event sent again after a read-back."""

_COMPARED: Final = ("data", "contained")


def submission_ops(submission: Submission) -> tuple[PlannedOp, ...]:
    """Every operation of a submission, in request order."""
    return submission.resource_ops + submission.relationship_ops


def _sent_body(op: PlannedOp) -> Mapping[str, Any]:
    if op.action is Action.DELETE:
        return {}
    return op.payload


def op_applied(op: PlannedOp, seen: Seen) -> bool:
    """Whether the entity as read back shows what this operation sent."""
    if op.action is Action.DELETE:
        return seen is None
    if seen is None:
        return False
    sent = _sent_body(op)
    for part in _COMPARED:
        wanted = sent.get(part) or {}
        found = seen.get(part) or {}
        if not isinstance(found, Mapping):
            return False
        if any(name not in found or found[name] != value for name, value in wanted.items()):
            return False
    return True


@dataclass(frozen=True)
class Resolution:
    """What a read-back decided: the outcomes to record, and which events are sent again."""

    outcomes: Outcomes
    resent: frozenset[str]
    """Events sent again (RETRY, flagged so that their next answer is read as above)."""


def _applied(op: PlannedOp) -> list[EventOutcome]:
    fates = fates_for([e.role for e in op.events], ReceiptStatus.SUCCESS, None)
    return [
        EventOutcome(planned.event_id, fate, reason="found applied on read-back")
        for planned, fate in zip(op.events, fates, strict=True)
    ]


def _sent_again(op: PlannedOp, reason: str) -> list[EventOutcome]:
    return [EventOutcome(planned.event_id, Fate.RETRY, reason=reason) for planned in op.events]


def given_up(ops: Sequence[PlannedOp], reason: str) -> list[EventOutcome]:
    """FAILED outcomes (type POISON) for the events of operations no worker gets through."""
    error = ErrorBody(type=POISON, message=reason)
    return [
        EventOutcome(planned.event_id, Fate.FAILED, error=error, reason=reason)
        for op in ops
        for planned in op.events
    ]


def resolve(
    ops: Sequence[PlannedOp],
    seen: Mapping[EntityKey, Seen],
    *,
    settled: bool,
    give_up: str | None = None,
) -> Resolution | None:
    """The outcomes of an operation set whose answer was lost, from what was read back.

    Args:
        ops: the operations sent, in request order.
        seen: each operation's entity as read back (every key of `ops` must be present).
        settled: whether the settle time has passed (nothing sent can still land).
        give_up: when set, operations not applied are FAILED with this reason at once instead
            of sent again (poison work past its cap: waiting would not help).

    Returns:
        None while something is not applied, the settle time has not passed and nothing is
        given up (read again later); else one outcome per event.
    """
    applied = {op.key for op in ops if op_applied(op, seen[op.key])}
    if len(applied) < len(ops) and not settled and give_up is None:
        return None
    outcomes: list[EventOutcome] = []
    resent: set[str] = set()
    for op in ops:
        if op.key in applied:
            outcomes += _applied(op)
        elif give_up is not None:
            outcomes += given_up([op], give_up)
        else:
            outcomes += _sent_again(op, NOT_APPLIED)
            resent.update(op.event_ids)
    return Resolution(Outcomes(tuple(outcomes)), frozenset(resent))


_AS_APPLIED: Final = {
    Action.DELETE: ErrorType.NOT_FOUND,
    Action.CREATE: ErrorType.ALREADY_EXISTS,
}


def answered_as_applied(submission: Submission, answer: Answer) -> tuple[PlannedOp, ...]:
    """Operations whose refusal may mean "already applied" when their events were sent again
    after a read-back: a DELETE answered NOT_FOUND, a CREATE answered ALREADY_EXISTS (the latter
    counts only when the entity matches what was sent, which takes another read)."""
    if not any(r.status == ReceiptStatus.FAILURE for r in _raw_receipts(answer)):
        return ()  # the common answer: nothing to align a second time on the hot path
    found: list[PlannedOp] = []
    receipts = aligned_receipts(submission, answer)
    for op, receipt in zip(submission_ops(submission), receipts, strict=True):
        error_type = receipt.error.type if receipt.error is not None else None
        if receipt.status == ReceiptStatus.FAILURE and error_type == _AS_APPLIED.get(op.action):
            found.append(op)
    return tuple(found)


def _raw_receipts(answer: Answer) -> list[Receipt]:
    if isinstance(answer, BundleReceipts):
        return [*answer.resource_operation_receipts, *answer.relationship_operation_receipts]
    return list(answer.receipts or ())

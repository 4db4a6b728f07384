"""From receipts to one outcome per event: what happened, and what to do next.

Each event's fate comes from its own operation's receipt (never from the task's overall status):
`coalesce.fates_for` reads APPLIED / COALESCED / FAILED / CANCELLED / UNMERGED / RETRY. So a
refused bundle may report one failing operation or several: each is dead-lettered with its own
error (or unmerged, or retried), and the CANCELLED rest is sent again. Then the
dependency closure of invariant 5 turns innocent-looking events into bound failures where the
one-by-one application would have failed them too:

- an atomic publish batch fails together: when one of its events FAILED, the others are FAILED,
  bound to it (to the first, in request order, when several failed: each of those keeps its
  own error);
- a relationship to a resource whose CREATE failed is bound to it, when that is certain: the
  resource's id was assigned by the worker at publish (it cannot have existed before) and the
  CREATE did not fail with ALREADY_EXISTS. Elsewhere the relationship is resubmitted and meets
  its own fate.

A whole request refused without receipts (a 400 or 413 that names no operation) is bisected by
`bisect_refused`, to a bounded depth, before anything is dead-lettered.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Final

from api_client.models import Action, ErrorBody, ErrorType, Receipt, ReceiptStatus
from worker.domain.coalesce import Fate, Role, fates_for
from worker.domain.events import ChangeEvent, Target
from worker.domain.keys import EntityKey, RelationshipKey, ResourceKey, key_of
from worker.domain.ops import PlannedOp, is_merged_delete, relationship_ends
from worker.domain.plan import Plan
from worker.domain.receipts import Answer, ReceiptMismatchError, Submission, aligned_receipts

_UNTOLD: Final = ErrorBody(
    code=503,
    type=ErrorType.UNAVAILABLE,
    message="refused as already applied, but the entity could not be read to tell",
)
"""The error an operation is retried with when its refusal could not be told apart."""

FINAL_FATES: Final = frozenset({Fate.APPLIED, Fate.COALESCED, Fate.FAILED})
"""Fates that end an event's story; the others send it back to planning."""


@dataclass(frozen=True)
class OpRef:
    """The operation that carries an event's fate: submission, target list, position in it."""

    submission: int
    target: Target
    index: int


@dataclass(frozen=True)
class EventOutcome:
    """One event's outcome, linked to the operation that decided it."""

    event_id: str
    fate: Fate
    op: OpRef | None = None
    error: ErrorBody | None = None
    bound_to: str | None = None
    """The event whose failure this one shares (atomic batch, relationship to a failed create)."""
    reason: str = ""

    @property
    def is_final(self) -> bool:
        """Whether the event is done (recorded, or dead-lettered when FAILED)."""
        return self.fate in FINAL_FATES


@dataclass(frozen=True)
class Outcomes:
    """The outcomes of one submission, and what must be planned again."""

    outcomes: tuple[EventOutcome, ...]

    @cached_property
    def _by_event(self) -> dict[str, EventOutcome]:
        return {outcome.event_id: outcome for outcome in self.outcomes}

    def of(self, event_id: str) -> EventOutcome:
        """The outcome of one event.

        Raises:
            KeyError: the event was not in this submission.
        """
        return self._by_event[event_id]

    @property
    def to_replan(self) -> tuple[str, ...]:
        """Events to put back in their publish positions and plan again (rule F)."""
        return tuple(o.event_id for o in self.outcomes if not o.is_final)

    @property
    def no_merge(self) -> frozenset[str]:
        """Events that must travel alone from now on (their merged operation was refused)."""
        return frozenset(o.event_id for o in self.outcomes if o.fate is Fate.UNMERGED)

    @property
    def failed(self) -> tuple[EventOutcome, ...]:
        """Events to dead-letter, with their errors."""
        return tuple(o for o in self.outcomes if o.fate is Fate.FAILED)


def _op_refs(submission: Submission) -> list[tuple[PlannedOp, OpRef]]:
    refs = [
        (op, OpRef(submission.index, Target.RESOURCE, i))
        for i, op in enumerate(submission.resource_ops)
    ]
    refs += [
        (op, OpRef(submission.index, Target.RELATIONSHIP, i))
        for i, op in enumerate(submission.relationship_ops)
    ]
    return refs


_SUCCESS_FATES: Final = {Role.CARRIER: Fate.APPLIED, Role.SUPERSEDED: Fate.COALESCED}
"""What a SUCCESS receipt makes of each role (`coalesce.fates_for`, without its checks)."""

UNMERGED_WHEN_CANCELLED: Final = "a merged DELETE cancelled by a neighbour: replayed unmerged"


def _read(op: PlannedOp, ref: OpRef, receipt: Receipt) -> list[EventOutcome]:
    if receipt.status == ReceiptStatus.SUCCESS:  # most receipts: no error, no reason
        return [EventOutcome(e.event_id, _SUCCESS_FATES[e.role], ref) for e in op.events]
    error_type = receipt.error.type if receipt.error is not None else None
    try:
        fates = fates_for([e.role for e in op.events], receipt.status, error_type)
    except ValueError as exc:
        raise ReceiptMismatchError(f"{op.key}: {exc} in a terminal answer") from exc
    reason = ""
    if receipt.status == ReceiptStatus.CANCELLED and is_merged_delete(op):
        # Its neighbours are merged DELETEs too (plan.may_fail): sent again merged, the next
        # one to meet an absent entity would cancel it again, one refusal per round trip.
        # Alone, each event meets its own fate at once (the one-by-one reference).
        fates = tuple(Fate.UNMERGED for _ in fates)
        reason = UNMERGED_WHEN_CANCELLED
    return [
        EventOutcome(
            event_id=planned.event_id,
            fate=fate,
            op=ref,
            error=receipt.error if fate in (Fate.FAILED, Fate.UNMERGED, Fate.RETRY) else None,
            reason=reason,
        )
        for planned, fate in zip(op.events, fates, strict=True)
    ]


def refused_on_its_own(outcome: EventOutcome) -> bool:
    """Whether the event's operation got a FAILURE receipt of its own: not a failure bound to
    another's (an atomic batch, a relationship to a failed create), not a merged DELETE unmerged
    because a neighbour failed."""
    return (
        outcome.fate in (Fate.FAILED, Fate.UNMERGED)
        and outcome.error is not None
        and outcome.bound_to is None
        and outcome.reason != UNMERGED_WHEN_CANCELLED
    )


def _bound(outcome: EventOutcome, to: EventOutcome, reason: str) -> EventOutcome:
    return EventOutcome(outcome.event_id, Fate.FAILED, outcome.op, to.error, to.event_id, reason)


def _never_created(op: PlannedOp, outcome: EventOutcome) -> bool:
    """A CREATE under a worker-assigned id that failed, so its resource certainly does not exist.

    It failed on its own for a reason other than ALREADY_EXISTS, or it was bound to another
    failure (it was never applied); the id was generated at publish, so nothing held it before.
    """
    return (
        isinstance(op.key, ResourceKey)
        and op.action is Action.CREATE
        and len(op.events) == 1
        and op.carrier.event.generated_id
        and outcome.fate is Fate.FAILED
        and (
            outcome.bound_to is not None
            or outcome.error is None
            or outcome.error.type != ErrorType.ALREADY_EXISTS
        )
    )


def _cause(
    op: PlannedOp,
    batch_failure: dict[str, EventOutcome],
    failed_ends: dict[ResourceKey, EventOutcome],
) -> tuple[EventOutcome, str] | None:
    if op.atomic_batch is not None and op.atomic_batch in batch_failure:
        cause = batch_failure[op.atomic_batch]
        return cause, f"atomic batch {op.atomic_batch} failed with event {cause.event_id}"
    if isinstance(op.key, RelationshipKey):
        for end in op.key.endpoints:
            if end in failed_ends:
                cause = failed_ends[end]
                return cause, f"its end {end} was never created (event {cause.event_id})"
    return None


def _close_dependencies(
    ops: Sequence[PlannedOp], outcomes: dict[str, EventOutcome]
) -> dict[str, EventOutcome]:
    """Bind atomic batches and relationships to failed creates, until nothing changes.

    Only events that are not already done are bound (an APPLIED event stays APPLIED).
    """
    changed = True
    while changed:
        changed = False
        failed_ends = {
            op.key: outcomes[op.carrier.event_id]
            for op in ops
            if isinstance(op.key, ResourceKey) and _never_created(op, outcomes[op.carrier.event_id])
        }
        batch_failure: dict[str, EventOutcome] = {}
        for op in ops:
            outcome = outcomes[op.carrier.event_id]
            if op.atomic_batch is not None and outcome.fate is Fate.FAILED:
                batch_failure.setdefault(op.atomic_batch, outcome)
        for op in ops:
            found = _cause(op, batch_failure, failed_ends)
            if found is None:
                continue
            cause, reason = found
            for planned in op.events:
                current = outcomes[planned.event_id]
                if not current.is_final:
                    outcomes[planned.event_id] = _bound(current, cause, reason)
                    changed = True
    return outcomes


def outcomes_from_receipts(
    submission: Submission,
    answer: Answer,
    *,
    applied_anyway: Collection[EntityKey] = frozenset(),
    retry_anyway: Collection[EntityKey] = frozenset(),
) -> Outcomes:
    """One outcome per event of a submission, from its terminal answer.

    Args:
        submission: a `BundlePlan` or a `BulkPlan`, as sent.
        answer: the synchronous `BundleReceipts`, a terminal `TaskState` fetched with receipts, or
            a legacy `BulkRejected`.
        applied_anyway: operations whose refusal is read as SUCCESS (sent again after a
            read-back, and found already applied: `readback.answered_as_applied`).
        retry_anyway: operations whose refusal is read as RETRY (that could not be told).

    Raises:
        ReceiptMismatchError: the receipts do not match the operations sent (a contract error).
        ValueError: the task is not terminal, or was fetched without receipts.
    """
    refs = _op_refs(submission)
    receipts = aligned_receipts(submission, answer)
    outcomes: dict[str, EventOutcome] = {}
    told = applied_anyway or retry_anyway
    for (op, ref), receipt in zip(refs, receipts, strict=True):
        if told and op.key in applied_anyway:
            receipt = Receipt(status=ReceiptStatus.SUCCESS)
        elif told and op.key in retry_anyway:
            receipt = Receipt(status=ReceiptStatus.FAILURE, error=_UNTOLD)
        for outcome in _read(op, ref, receipt):
            outcomes[outcome.event_id] = outcome
    if any(outcome.fate is Fate.FAILED for outcome in outcomes.values()):
        ops = [op for op, _ in refs]
        while True:  # each pass only turns refusals into CANCELLED: it ends
            closed = _close_dependencies(ops, dict(outcomes))  # nothing to bind without a failure
            if not _distrust_refusals(refs, receipts, outcomes, closed):
                outcomes = closed
                break
    return Outcomes(tuple(outcomes.values()))


JUDGED_ON_OTHER_STATE: Final = "refused after an operation that ran otherwise than one by one"


def _distrust_refusals(
    refs: Sequence[tuple[PlannedOp, OpRef]],
    receipts: Sequence[Receipt],
    raw: dict[str, EventOutcome],
    closed: dict[str, EventOutcome],
) -> bool:
    """Turn into CANCELLED (sent again) the refusals judged on a state one by one never has;
    True when any was turned.

    A Registry that reports every failing operation of a refused bundle judged each one after
    the operations before it in the request. That is the one-by-one state only where each of
    those had the effect it has one by one. Some resource operations did not, and they taint
    their resource for every later operation that touches it (writes it, or links to it; a
    relationship operation changes nothing a later one in the request reads: resources go
    first, and one operation per id):
    - one that ran, yet fails one by one (bound: a member of a failed atomic batch, a
      relationship to a CREATE that failed): a relationship to an office the batch deleted is
      refused, though one by one the office stays. Inside that batch a refusal stays its own (one
      by one the batch runs whole too);
    - one refused that is sent again (a merged operation unmerged, a transient error, a refusal
      turned here): one by one it, or part of it, may apply; a link to the provider its merged
      CREATE would have made is refused in the bundle;
    - one that ran on a tainted entity: one by one it may fail.
    A refusal on an untainted entity is its own. A Registry that reports only the first failure
    never reports one after another.
    """
    tainted: dict[EntityKey, set[object]] = {}  # entity -> batches that ran there, or _ANY
    changed = False
    for (op, ref), receipt in zip(refs, receipts, strict=True):
        touched = (op.key, *relationship_ends(op.key))
        suspect = any(
            taint is _ANY or taint != op.atomic_batch
            for key in touched
            for taint in tainted.get(key, ())
        )
        refused = receipt.status == ReceiptStatus.FAILURE
        if refused and suspect:
            for event_id in op.event_ids:
                outcome = raw[event_id]
                if outcome.fate is Fate.FAILED and outcome.bound_to is None:
                    raw[event_id] = closed[event_id] = EventOutcome(
                        event_id, Fate.CANCELLED, ref, outcome.error, reason=JUDGED_ON_OTHER_STATE
                    )
                    changed = True
        fates = {closed[event_id].fate for event_id in op.event_ids}
        taint: object | None = None
        if not refused and Fate.FAILED in fates:
            taint = op.atomic_batch or _ANY  # ran, but fails one by one
        elif (refused and fates != {Fate.FAILED}) or (not refused and suspect):
            taint = _ANY  # may apply one by one / may fail one by one
        if taint is not None and isinstance(op.key, ResourceKey):
            tainted.setdefault(op.key, set()).add(taint)
    return changed


_ANY: Final = object()
"""A taint no atomic batch is exempt from."""


def outcomes_for_rejections(plan: Plan) -> Outcomes:
    """FAILED outcomes for the events no bundle can carry (over the caps)."""
    outcomes = [
        EventOutcome(
            event_id=planned.event_id,
            fate=Fate.FAILED,
            error=ErrorBody(code=413, type=rejection.error_type, message=rejection.reason),
            reason="refused by the planner: " + rejection.reason,
        )
        for rejection in plan.rejected
        for planned in rejection.events
    ]
    return Outcomes(tuple(outcomes))


def bound_by_failed_creates(
    failed: Iterable[ChangeEvent], later: Sequence[ChangeEvent]
) -> dict[str, str]:
    """Later relationship events bound to a failed worker-id CREATE of one of their ends.

    For the events still buffered after a CREATE failed (not with ALREADY_EXISTS): a relationship
    event on its end is bound to it, unless an event published in between writes that end (then
    the relationship meets its own fate).

    Args:
        failed: the failed CREATE events.
        later: events published after them, in publish order.

    Returns:
        event id -> the id of the failed CREATE it is bound to.
    """
    gone: dict[ResourceKey, str] = {}
    for event in failed:
        key = key_of(event)
        if isinstance(key, ResourceKey) and event.action is Action.CREATE and event.generated_id:
            gone[key] = event.event_id
    bound: dict[str, str] = {}
    for event in later:
        key = key_of(event)
        if isinstance(key, ResourceKey):
            gone.pop(key, None)
            continue
        for end in key.endpoints:
            if end in gone:
                bound[event.event_id] = gone[end]
                break
    return bound

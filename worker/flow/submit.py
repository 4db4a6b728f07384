"""Submit a claimed bundle, and record a terminal answer: the two steps that talk to the Registry.

A submission is `planned -> sending` (fenced) before the request leaves, so a crash mid-request
leaves a record that says "maybe applied". Then, by what the client answered:

- receipts (PERSISTED, or a refusal that carries receipts): recorded; the outcome of every
  event is known.
- ACCEPTED: `sent`, first poll scheduled; the poll schedule owns it now.
- `RateLimitedError` (429, 503), `AuthError` (401, 403), `TransportError`: certainly not
  processed, so back to `planned`, submitted again at a retry time (the server's hint, else
  backoff); the whole source is paused as well (`flow/pausing.py`). While a pause holds, a
  submission is not sent but held (back to `planned`, due when the pause ends); the first one
  after it is the probe, and an answer from the Registry ends the pause.
- 404 on the write route (`NotFoundError`): a configuration error (a base URL with a wrong
  path, a source the Registry does not know); released and the source paused, like a 401.
- `OutcomeUnknownError`, `ContractError`, anything unexpected: maybe applied; stays `sending`,
  locks held, and is resolved by reading the entities back (`flow/readback.py`), first after
  `readback_interval_ms`.
- 400 or 413 without receipts (refused as a whole, naming no operation): bisected at once
  (`flow/isolation.py`), every half's outcomes recorded once on this record.
- another `APIError` without receipts (409, 501), receipts that do not match what was sent, or
  an ACCEPTED answer with an unusable task id: nothing tells what was applied, so the entities
  are read back as for an outcome unknown (`_read_back_unsure`). Only when an event of the bundle
  was already sent again after a read-back (the same trouble twice) is the bundle parked, for an
  operator (`clinia-ingest parked retry | abandon`).
- a plan that fails its check before sending: parked (nothing was sent; `parked retry` plans its
  events again).

A bulk request is sent the same way through the bulk endpoint of its kind: its `bk_` task is
polled on the bulk status route (the record keeps the issuer), and a legacy `BulkRejected` answer
is a synchronous refusal with one receipt per operation, recorded at once.

Every write names the claim's fencing token; a worker that lost its claim writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import Enum

import structlog

from api_client import (
    APIError,
    AuthError,
    NotFoundError,
    OutcomeUnknownError,
    RateLimitedError,
    RegistryError,
    TaskRef,
    TransportError,
)
from api_client.models import (
    BulkRejected,
    BundleReceipts,
    TaskAccepted,
    TaskState,
)
from worker.domain.bulk import BulkRequestPlan
from worker.domain.outcomes import Outcomes, outcomes_from_receipts
from worker.domain.plan import BundlePlan, PlanError
from worker.domain.readback import Resolution
from worker.domain.receipts import ReceiptMismatchError
from worker.flow.counts import SubmitCounts
from worker.flow.deps import Deps
from worker.flow.isolation import bisect_outcomes, cap_cancelled, is_refused_whole
from worker.flow.layout import Sendable, sendable_event_ids
from worker.flow.pausing import (
    OPEN_GATE,
    hold_until_ms,
    pause_gate,
    pause_source,
    resume_source,
)
from worker.flow.planning import PlannedBundle, plan_events, plan_rest
from worker.flow.readback import ReadAgain, resolve_unknown, told_apart
from worker.flow.refusals import Rest, note_answer
from worker.flow.sending import issuer_of, send, validate_sendable
from worker.flow.sizing import plan_caps_for, shrink_bundles
from worker.publish_profiles import drop_refused_types
from worker.store.pauses import GateAnswer
from worker.store.profiles import ProfileCache
from worker.store.records import EventOutcomeRecord

__all__ = [
    "Claimed",
    "Step",
    "mark_unknown",
    "nudge_ready",
    "record_answer",
    "record_resolution",
    "submit_claimed",
]

_log = structlog.get_logger("worker.pipeline")


class Step(Enum):
    """Where one submission left its bundle (the scheduler decides what may go next: a bundle
    becomes ready once everything it follows is recorded)."""

    FINAL = "final"
    """Recorded, every fate final."""
    ACCEPTED = "accepted"
    """Accepted as a task: the poll schedule owns it."""
    REPLAN = "replan"
    """Recorded, with events sent back to the ready log (CANCELLED, UNMERGED, RETRY)."""
    RELEASED = "released"
    """Certainly not processed: submitted again later."""
    PARKED = "parked"
    """Left for an operator."""
    UNKNOWN = "unknown"
    """Outcome unknown: stays `sending`, read back later."""
    LOST = "lost"
    """Another worker's claim: nothing written."""


@dataclass(frozen=True)
class Claimed:
    """A bundle this worker holds a claim on: its id, fencing token, and the plan to send."""

    bundle_id: str
    fence: int
    plan: Sendable
    attempts: int = 0
    validated: bool = False
    """True when `validate_plan` passed on the plan this bundle was just cut from."""


def retry_delay_ms(deps: Deps, attempts: int, hint_s: float | None = None) -> int:
    """When to submit again something certainly not processed: the server's hint, else backoff
    with full jitter, both capped."""
    settings = deps.settings
    if hint_s is not None:
        return min(int(hint_s * 1000), settings.retry_cap_ms)
    ceiling = min(settings.retry_cap_ms, settings.retry_base_ms * 2 ** min(attempts, 30))
    return max(1, int(deps.rng.uniform(ceiling / 2, ceiling)))


def outcome_records(
    outcomes: Outcomes, resent: frozenset[str] = frozenset()
) -> list[EventOutcomeRecord]:
    """The core's outcomes as record.lua takes them (errors as compact JSON)."""
    return [
        EventOutcomeRecord(
            event_id=o.event_id,
            fate=o.fate.value,
            error=None if o.error is None else o.error.model_dump_json(exclude_none=True),
            reason=o.reason or None,
            bound_to=o.bound_to,
            resent=o.event_id in resent,
        )
        for o in outcomes.outcomes
    ]


def record_answer(
    deps: Deps,
    source: str,
    claimed: Claimed,
    answer: BundleReceipts | TaskState | BulkRejected,
    counts: SubmitCounts,
    *,
    polled: bool = False,
) -> Step:
    """Interpret a terminal answer (the core) and record it once (record.lua, fenced).

    For events sent again after a read-back, a DELETE refused NOT_FOUND, or a CREATE refused
    ALREADY_EXISTS for an entity that matches, is read as applied (`readback.told_apart`).
    Receipts that do not match what was sent are resolved by reading back (`_read_back_unsure`);
    `polled`: the answer is a finished task's (the record is `sent`), so the read-back runs now.
    """
    try:
        applied, untold = told_apart(deps, source, claimed.plan, answer)
        outcomes = outcomes_from_receipts(
            claimed.plan, answer, applied_anyway=applied, retry_anyway=untold
        )
    except (ReceiptMismatchError, ValueError) as exc:
        why = f"receipts do not match what was sent: {exc}"
        return _read_back_unsure(deps, source, claimed, why, counts, finished=polled)
    status = str(answer.status) if answer.status is not None else "PERSISTED"
    noted = note_answer(deps, source, claimed.bundle_id, claimed.plan, outcomes)
    return _record(
        deps,
        source,
        claimed,
        outcomes,
        status,
        counts,
        rest=noted.rest,
        fold=noted.fold,
    )


def _record(
    deps: Deps,
    source: str,
    claimed: Claimed,
    outcomes: Outcomes,
    status: str,
    counts: SubmitCounts,
    resent: frozenset[str] = frozenset(),
    *,
    rest: Rest = Rest.BUNDLE,
    fold: list[str] | None = None,
) -> Step:
    """Record these outcomes once (record.lua, fenced), CANCELLED ones past the cap FAILED; the
    events sent again are planned again here, in the bundle's place, as `rest` says
    (`flow/refusals.py`). `fold`: the answer's refusal fold, run in the same round trip as the
    record."""
    outcomes = cap_cancelled(deps, source, outcomes)
    replan = _replan(deps, source, claimed, outcomes, rest=rest)
    result = deps.store.record(
        source,
        claimed.bundle_id,
        claimed.fence,
        outcome_records(outcomes, resent),
        status=status,
        now_ms=deps.now_ms(),
        replan=[p.commit for p in replan],
        fold=fold,
    )
    if not result.done:
        counts.lost_claim += 1
        _log.warning("bundle.record_refused", source=source, bundle=claimed.bundle_id)
        return Step.LOST
    drop_refused_types(
        ProfileCache(deps.store.client),
        source,
        (o.error.message for o in outcomes.outcomes if o.error is not None),
    )
    counts.recorded += 1
    counts.events_final += result.finals
    counts.events_rebuffered += result.rebuffered
    counts.events_replanned += result.replanned
    counts.ready.extend(result.ready)
    counts.replanned.update((p.commit.bundle_id, p.plan) for p in replan)
    return Step.REPLAN if result.rebuffered or result.replanned else Step.FINAL


def _replan(
    deps: Deps,
    source: str,
    claimed: Claimed,
    outcomes: Outcomes,
    *,
    rest: Rest = Rest.BUNDLE,
) -> list[PlannedBundle]:
    """The events these outcomes send again, planned again as they are stored (UNMERGED ones
    alone). Sent back to the ready log instead, they would make every bundle planned after them
    on their entities give its operations back, and those the next ones (docs/pipeline.md).
    Only events still in flight in the bundle: a record a crash cut between its calls settled
    some for good (settle.lua), and recording it again must not send them again.
    `rest`: BULK as bulk requests, unless one of them belongs to an atomic batch; APART each
    operation in a bundle of its own."""
    back = outcomes.to_replan
    if not back:
        return []
    unmerged = outcomes.no_merge
    events = [
        replace(event, no_merge=True) if event.event_id in unmerged else event
        for event in deps.store.read_events(source, back, in_flight_in=claimed.bundle_id)
    ]
    bulk = isinstance(claimed.plan, BulkRequestPlan) or (
        rest is Rest.BULK and not any(e.body.get("atomicBatch") for e in events)
    )
    caps = plan_caps_for(deps, source)  # a shrunk source's cap (the answer may have shrunk it)
    if not bulk and not unmerged and isinstance(claimed.plan, BundlePlan):
        kept = plan_rest(deps, source, claimed.plan, events, caps, apart=rest is Rest.APART)
        if kept is not None:
            return kept
    expected = {op.carrier.event_id for op in claimed.plan.ops if op.set_apart}
    planned, _rejected = plan_events(deps, events, bulk=bulk, caps=caps, expected=expected)
    # a rejected event (none can be: each one travelled in this bundle) is left to the ready log
    return planned


def nudge_ready(deps: Deps, source: str, bundle_ids: Sequence[str]) -> None:
    """Ask a worker to send these bundles now (they are due in `claims` anyway)."""
    if bundle_ids:
        deps.nudge("recover", source, list(bundle_ids))


def _park(deps: Deps, source: str, claimed: Claimed, why: str, counts: SubmitCounts) -> Step:
    done = deps.store.park(
        source, claimed.bundle_id, claimed.fence, error=why[:500], now_ms=deps.now_ms()
    )
    if not done:
        counts.lost_claim += 1
        return Step.LOST
    counts.parked += 1
    _log.warning("bundle.parked", source=source, bundle=claimed.bundle_id, reason=why[:200])
    return Step.PARKED


def _read_back_unsure(
    deps: Deps,
    source: str,
    claimed: Claimed,
    why: str,
    counts: SubmitCounts,
    *,
    finished: bool = False,
) -> Step:
    """An answer that tells nothing per operation, or nothing usable: the entities are read
    back (applied: recorded; not applied: sent again, flagged). A bundle with an event already
    sent again after a read-back is parked instead, so one trouble that repeats cannot loop.

    `finished`: the request is a finished task's, so nothing more will apply: read back now,
    under this claim (Step.UNKNOWN, nothing written, when the read itself failed: the caller
    polls again). Else the record stays `sending` and recovery reads back later.
    """
    event_ids = list(sendable_event_ids(claimed.plan))
    if deps.store.resent_events(source, event_ids):
        return _park(deps, source, claimed, f"{why}; again after a read-back", counts)
    if not finished:
        return mark_unknown(deps, source, claimed, deps.settings.readback_interval_ms, why, counts)
    decided = resolve_unknown(deps, source, claimed.plan, sending_at_ms=0, give_up=None)
    if isinstance(decided, ReadAgain):
        return Step.UNKNOWN
    return record_resolution(deps, source, claimed, decided, counts)


def record_resolution(
    deps: Deps, source: str, claimed: Claimed, resolution: Resolution, counts: SubmitCounts
) -> Step:
    """Record what a read-back decided, flagging the events it sends again."""
    return _record(
        deps, source, claimed, resolution.outcomes, "READ_BACK", counts, resolution.resent
    )


def mark_unknown(
    deps: Deps, source: str, claimed: Claimed, delay_ms: int, why: str, counts: SubmitCounts
) -> Step:
    """Outcome unknown: stays `sending` with its locks, read back after `delay_ms`."""
    now = deps.now_ms()
    done = deps.store.mark_unknown(
        source,
        claimed.bundle_id,
        claimed.fence,
        read_at_ms=now + delay_ms,
        error=why[:500],
        now_ms=now,
    )
    if not done:
        counts.lost_claim += 1
        return Step.LOST
    counts.unknown += 1
    _log.warning("bundle.outcome_unknown", source=source, bundle=claimed.bundle_id, why=why[:200])
    return Step.UNKNOWN


def _release(
    deps: Deps, source: str, claimed: Claimed, error: RegistryError, counts: SubmitCounts
) -> Step:
    hint = error.retry_after_s if isinstance(error, RateLimitedError) else None
    now = deps.now_ms()
    at = now + retry_delay_ms(deps, claimed.attempts, hint)
    done = deps.store.release(
        source,
        claimed.bundle_id,
        claimed.fence,
        retry_at_ms=at,
        error=str(error)[:500],
        now_ms=now,
    )
    if not done:
        counts.lost_claim += 1
        return Step.LOST
    counts.released += 1
    _log.info(
        "bundle.released",
        source=source,
        bundle=claimed.bundle_id,
        error=type(error).__name__,
        retry_in_ms=at - now,
    )
    return Step.RELEASED


def _hold(
    deps: Deps, source: str, claimed: Claimed, gate: GateAnswer, counts: SubmitCounts
) -> Step:
    """Not sent: the source is paused; back to the retry schedule, due when the pause ends."""
    now = deps.now_ms()
    at = hold_until_ms(deps, gate)
    error = f"held: the source is paused ({gate.kind})"
    done = deps.store.release(
        source, claimed.bundle_id, claimed.fence, retry_at_ms=at, error=error, now_ms=now
    )
    if not done:
        counts.lost_claim += 1
        return Step.LOST
    counts.released += 1
    _log.info("bundle.held", source=source, bundle=claimed.bundle_id, retry_in_ms=at - now)
    return Step.RELEASED


def submit_claimed(deps: Deps, source: str, claimed: Claimed, counts: SubmitCounts) -> Step:
    """Send one claimed `planned` bundle (or bulk request) and move its record on (see the module
    docstring)."""
    if not claimed.validated:
        try:
            validate_sendable(deps, source, claimed.plan)
        except PlanError as exc:
            return _park(deps, source, claimed, f"plan refused before sending: {exc}", counts)
    # the pause gate and the mark in one round trip while the source has no pause
    gate = OPEN_GATE
    marked = deps.store.mark_sending(
        source, claimed.bundle_id, claimed.fence, deps.now_ms(), gate=True
    )
    if marked is None:  # the source has a pause: wait, or be the one that probes
        gate = pause_gate(deps, source)
        if gate.gate == "paused":
            return _hold(deps, source, claimed, gate, counts)
        marked = deps.store.mark_sending(source, claimed.bundle_id, claimed.fence, deps.now_ms())
    if not marked:
        counts.lost_claim += 1
        return Step.LOST
    try:
        answer = send(deps, source, claimed.plan)
    except (RateLimitedError, AuthError, TransportError, NotFoundError) as exc:
        pause_source(deps, source, exc, write=True)
        return _release(deps, source, claimed, exc, counts)
    except APIError as exc:
        if gate.gate == "probe":
            resume_source(deps, source)
        if isinstance(claimed.plan, BundlePlan) and is_refused_whole(exc, claimed.plan):
            return _bisect(deps, source, claimed, claimed.plan, exc, counts)
        why = f"refused as a whole without receipts: {exc}"
        return _read_back_unsure(deps, source, claimed, why, counts)
    except RegistryError as exc:
        if isinstance(exc, OutcomeUnknownError) and isinstance(claimed.plan, BundlePlan):
            why = f"outcome unknown ({type(exc).__name__})"
            shrink_bundles(deps, source, why, sent_ops=len(claimed.plan.ops))
        why = f"outcome unknown: {exc}"
        return mark_unknown(deps, source, claimed, deps.settings.readback_interval_ms, why, counts)
    if gate.gate == "probe":
        resume_source(deps, source)
    if isinstance(answer, TaskAccepted):
        return _accepted(deps, source, claimed, answer, counts)
    return record_answer(deps, source, claimed, answer, counts)


def _bisect(
    deps: Deps,
    source: str,
    claimed: Claimed,
    plan: BundlePlan,
    error: APIError,
    counts: SubmitCounts,
) -> Step:
    """Refused as a whole without receipts: bisect, then record every event's outcome once."""
    shrink_bundles(deps, source, f"refused as a whole ({error.status})", sent_ops=len(plan.ops))

    def keep_claim() -> None:
        deps.store.renew(source, [(claimed.bundle_id, claimed.fence)], deps.now_ms())

    bisected = bisect_outcomes(deps, source, plan, error, keep_claim=keep_claim)
    if bisected.stopped:
        why = (
            f"refused as a whole without receipts ({error}); bisection stopped: {bisected.stopped}"
        )
        return mark_unknown(deps, source, claimed, deps.settings.readback_interval_ms, why, counts)
    _log.info(
        "bundle.bisected", source=source, bundle=claimed.bundle_id, requests=bisected.requests
    )
    return _record(deps, source, claimed, bisected.outcomes, "REFUSED", counts)


def _accepted(
    deps: Deps, source: str, claimed: Claimed, answer: TaskAccepted, counts: SubmitCounts
) -> Step:
    now = deps.now_ms()
    issuer = issuer_of(claimed.plan)
    try:
        ref = TaskRef.from_submission(source, answer.task_id, issued_by=issuer)
    except ValueError as exc:
        why = f"unusable task id in ACCEPTED: {exc}"
        return _read_back_unsure(deps, source, claimed, why, counts)
    first_poll = deps.settings.first_poll_ms(bulk=isinstance(claimed.plan, BulkRequestPlan))
    done = deps.store.mark_sent(
        source,
        claimed.bundle_id,
        claimed.fence,
        task_id=ref.task_id,
        issued_by=issuer.value,
        first_poll_ms=now + first_poll,
        now_ms=now,
    )
    if not done:
        counts.lost_claim += 1
        return Step.LOST
    counts.accepted += 1
    return Step.ACCEPTED

"""Failure isolation (invariant 5): bisect a bundle refused as a whole, cap resubmissions.

A 400 or 413 that names no operation says only "something in here is wrong". `bisect_outcomes`
halves the bundle (`domain.bisection.bisect_refused`) and sends the halves one after the other
under the original record's claim (still `sending`: a crash in the middle leaves it parked as
"maybe applied"), halving again each half refused the same way, down to `max_bisect_depth`. The
outcomes of every half are gathered and recorded once, on the original record. A half that comes
back with events to re-plan (CANCELLED, UNMERGED, RETRY) stops the walk: the halves not yet sent
go back to the ready log (rule F), so nothing is sent after a surprise. A half answered ACCEPTED,
or with any other error, stops the walk too and the bundle is parked (outcome unknown).

`cap_cancelled` turns a CANCELLED outcome into FAILED (dead-lettered with the cap as its reason)
once the event has been submitted `max_event_attempts` times.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from api_client import APIError, RegistryError
from api_client.models import BundleReceipts, ErrorBody
from worker.domain.bisection import bisect_refused
from worker.domain.coalesce import Fate
from worker.domain.ops import PlannedOp
from worker.domain.outcomes import EventOutcome, Outcomes, outcomes_from_receipts
from worker.domain.plan import BundlePlan, bundle_of_ops
from worker.domain.receipts import ReceiptMismatchError
from worker.flow.deps import Deps

__all__ = [
    "REFUSED_WHOLE_STATUSES",
    "Bisected",
    "bisect_outcomes",
    "cap_cancelled",
    "half_bundle",
    "is_refused_whole",
    "refusal_error",
]

REFUSED_WHOLE_STATUSES = frozenset({400, 413})
"""The statuses of a refusal without receipts that bisection can narrow down."""

RETRY_AFTER_SURPRISE = "not sent: an earlier half of its bisected bundle came back to be re-planned"


def is_refused_whole(error: APIError, plan: object) -> bool:
    """Whether this refusal of this request is one that bisection narrows down."""
    return isinstance(plan, BundlePlan) and error.status in REFUSED_WHOLE_STATUSES


def refusal_error(error: APIError) -> ErrorBody:
    """The refusal as kept on each dead-lettered event: the Registry's body with the HTTP status
    as its `code` (a body-less refusal gets its message)."""
    body = error.error if error.error is not None else ErrorBody(message=error.message)
    if body.code is None:
        body = body.model_copy(update={"code": error.status})
    return body


def half_bundle(ops: tuple[PlannedOp, ...], *, isolated: bool) -> BundlePlan:
    """A bundle of some of a refused bundle's operations, in their order, ready to send."""
    return bundle_of_ops(0, ops, isolated=isolated)


@dataclass(frozen=True)
class Bisected:
    """What bisecting a refused bundle came to: every event's outcome, or why it stopped."""

    outcomes: Outcomes
    requests: int
    """Requests sent for the halves."""
    stopped: str = ""
    """Non-empty: the walk stopped on an answer it cannot record (the bundle is parked)."""


@dataclass(frozen=True)
class _Pending:
    """A part of the refused bundle still to handle: to send, or (refused) to halve."""

    plan: BundlePlan
    depth: int
    refused: ErrorBody | None = None


def _rest(pending: list[_Pending], reason: str) -> list[EventOutcome]:
    return [
        EventOutcome(event_id, Fate.RETRY, reason=reason)
        for item in pending
        for op in item.plan.ops
        for event_id in op.event_ids
    ]


def bisect_outcomes(
    deps: Deps,
    source: str,
    bundle: BundlePlan,
    error: APIError,
    *,
    keep_claim: Callable[[], None],
) -> Bisected:
    """Bisect `bundle`, refused as a whole with `error`, sending its halves in order.

    Args:
        deps: the process's dependencies (client, settings).
        source: the source key.
        bundle: the bundle refused as a whole.
        error: the refusal (kept, with its status, on every event dead-lettered for it).
        keep_claim: called before each request, to renew the original record's claim.
    """
    max_depth = deps.settings.max_bisect_depth
    gathered: list[EventOutcome] = []
    pending: list[_Pending] = [_Pending(bundle, 0, refusal_error(error))]
    requests = 0
    while pending:
        item = pending.pop(0)
        if item.refused is not None:
            bisection = bisect_refused(
                item.plan, item.refused, depth=item.depth, max_depth=max_depth
            )
            gathered.extend(bisection.outcomes.outcomes)
            pending[:0] = [
                _Pending(half_bundle(ops, isolated=item.plan.isolated), item.depth + 1)
                for ops in bisection.halves
            ]
            continue
        keep_claim()
        requests += 1
        try:
            answer = deps.client.submit_bundle_body(source, item.plan.body)
        except APIError as exc:
            if not is_refused_whole(exc, item.plan):
                return Bisected(Outcomes(()), requests, f"a half was refused: {exc}")
            pending.insert(0, replace(item, refused=refusal_error(exc)))
            continue
        except RegistryError as exc:
            return Bisected(Outcomes(()), requests, f"a half's outcome is unknown: {exc}")
        if not isinstance(answer, BundleReceipts):
            return Bisected(Outcomes(()), requests, "a half was accepted as a task")
        try:
            outcomes = outcomes_from_receipts(item.plan, answer)
        except (ReceiptMismatchError, ValueError) as exc:
            return Bisected(Outcomes(()), requests, f"a half's receipts do not match: {exc}")
        gathered.extend(outcomes.outcomes)
        if not all(o.is_final for o in outcomes.outcomes):
            gathered.extend(_rest(pending, RETRY_AFTER_SURPRISE))
            pending.clear()
    return Bisected(Outcomes(tuple(gathered)), requests)


def cap_cancelled(deps: Deps, source: str, outcomes: Outcomes) -> Outcomes:
    """`outcomes` with every CANCELLED event that reached `max_event_attempts` submissions
    turned FAILED, so that it is dead-lettered with the cap as its reason."""
    cancelled = [o.event_id for o in outcomes.outcomes if o.fate is Fate.CANCELLED]
    if not cancelled:
        return outcomes
    cap = deps.settings.max_event_attempts
    attempts = deps.store.event_attempts(source, cancelled)
    capped: list[EventOutcome] = []
    for outcome in outcomes.outcomes:
        submitted = attempts.get(outcome.event_id, 0) + 1
        if outcome.fate is Fate.CANCELLED and submitted >= cap:
            reason = (
                f"cancelled by a neighbour's failure at submission {submitted}; "
                f"max_event_attempts ({cap}) reached"
            )
            outcome = replace(outcome, fate=Fate.FAILED, reason=reason)
        capped.append(outcome)
    return Outcomes(tuple(capped))

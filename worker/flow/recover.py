"""Recover bundle records whose claim expired, or whose retry time came (the ticker's claims).

What recovery does today, per state (docs/pipeline.md section 6):
- `planned`: nothing was sent (or it was certainly not processed): claim it and submit it.
- `sending`: the request may have been applied and the worker that knew is gone. Sending it again
  could apply it twice, so it is parked with its locks held, counted in the backlog, until the
  failure handling resolves it by reading the entities back.
- `sent`: the poll schedule owns it (its claims entry is dropped, its poll kept).
- `recorded`, or no record: its schedule entries are dropped.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from worker.flow.counts import RecoverResult
from worker.flow.deps import Deps
from worker.flow.layout import LayoutError, rebuild_bundle
from worker.flow.submit import Claimed, submit_claimed
from worker.store.codec import event_from_json
from worker.store.records import ClaimedRecord

__all__ = ["load_claimed", "recover"]

_log = structlog.get_logger("worker.pipeline")

SENDING_PARKED = (
    "outcome unknown: the worker sending it stopped before recording an answer; resolving it by "
    "reading the entities back is the failure handling's"
)


def load_claimed(deps: Deps, source: str, record: ClaimedRecord) -> Claimed:
    """The claimed bundle rebuilt from its stored layout and its events' stored bodies.

    Raises:
        LayoutError: an event body is missing or the layout cannot be read.
    """
    if record.fence is None:
        raise LayoutError("the record is not claimed")
    bodies = deps.store.event_bodies(source, record.event_ids)
    try:
        events = {eid: event_from_json(body) for eid, body in bodies.items()}
    except ValueError as exc:
        raise LayoutError(str(exc)) from None
    plan = rebuild_bundle(record.layout, events)
    return Claimed(record.bundle_id, record.fence, plan, record.attempts)


def recover(deps: Deps, source: str, bundle_ids: Sequence[str]) -> RecoverResult:
    """Recover these bundles of one source (expired claims, retries that came due)."""
    result = RecoverResult()
    for record in deps.store.claim(source, bundle_ids, deps.now_ms(), "recover"):
        if record.code == "busy":
            result.busy += 1
        if record.code != "ok" or record.fence is None:
            continue
        result.claimed += 1
        if record.state == "planned":
            try:
                claimed = load_claimed(deps, source, record)
            except LayoutError as exc:
                deps.store.park(
                    source, record.bundle_id, record.fence, error=str(exc), now_ms=deps.now_ms()
                )
                result.parked += 1
                continue
            result.resubmitted += 1
            submit_claimed(deps, source, claimed, result)
        elif record.state == "sending":
            deps.store.park(
                source, record.bundle_id, record.fence, error=SENDING_PARKED, now_ms=deps.now_ms()
            )
            result.parked += 1
            _log.warning("bundle.outcome_unknown", source=source, bundle=record.bundle_id)
    return result

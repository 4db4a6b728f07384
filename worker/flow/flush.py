"""Plan what is ready and send it: one planning round of one source, then its sends.

A round (docs/pipeline.md, "Planning") reads the head of the source's ready log once, under the
source's planning lease (read.lua: at most `flush_read_limit` events and `flush_read_bytes`
bytes, an atomic batch whole, one kind of request); plans every event it read into bundles in
publish order (`plan_bundles`, or `plan_bulk` for events published in bulk mode), checks the plan
(`validate_plan`), and commits it (commit.lua): each bundle follows the unfinished bundles it
conflicts with, earlier ones of this plan and those of earlier rounds that hold its entities, so
it is `planned` (ready to send) or `waiting` for them. Nothing read is held back to be read again:
an event behind a busy entity waits inside a bundle that waits, and is sent when what it follows
is recorded (record.lua makes it ready, or sends it back to the log when what it follows sent
events back).

The round's ready bundles are claimed at commit and sent here, one after another; a bundle of
this plan that becomes ready when another is recorded is claimed and sent here too, from the plan
in memory. Ready bundles of other rounds, and the next round when the read was cut, are nudged to
other workers (`Deps.nudge`) and are due in the schedules anyway (the ticker finds them).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import structlog

from worker.flow.counts import FlushResult
from worker.flow.deps import Deps
from worker.flow.layout import Sendable
from worker.flow.planning import plan_round
from worker.flow.recover import send_in_order
from worker.flow.submit import Claimed

__all__ = ["flush"]

_log = structlog.get_logger("worker.pipeline")


def flush(deps: Deps, source: str, groups: Sequence[str] = ()) -> FlushResult:
    """One planning round of a source, then the sends it owns (see the module docstring).

    Args:
        deps: the process's dependencies.
        source: the source key.
        groups: ignored; kept because `ingest.flush` messages already queued carry it.
    """
    del groups
    result = FlushResult()
    settings = deps.settings
    round_ = deps.store.read_ready(
        source,
        token=deps.new_id(),
        lease_ms=settings.plan_lease_ms,
        limit=settings.flush_read_limit,
        max_bytes=settings.flush_read_bytes,
    )
    if round_.busy:
        result.busy += 1
        return result
    if not round_.events:
        return result
    result.groups += 1
    result.events_read += len(round_.events)
    planned = plan_round(deps, source, round_)
    statuses = deps.store.commit(
        source,
        round_,
        bundles=[p.commit for p in planned.bundles],
        rejected=planned.rejected,
        blocked=planned.blocked,
        now_ms=deps.now_ms(),
    )
    if statuses is None:
        result.lost_claim += 1
        _log.warning("flush.lease_lost", source=source)
        return result
    if round_.more:
        deps.nudge("flush", source, [])
    result.events_rejected += len(planned.rejected)
    result.events_blocked += len(planned.blocked)
    own: deque[Claimed] = deque()
    waiting: dict[str, Sendable] = {}
    for p in planned.bundles:
        status, fence = statuses.get(p.commit.bundle_id, ("aborted", 0))
        if status == "aborted":
            result.bundles_skipped += 1
            result.events_held += len(p.commit.event_ids)
            continue
        result.bundles_reserved += 1
        if status == "waiting":
            waiting[p.commit.bundle_id] = p.plan
        elif fence:
            own.append(Claimed(p.commit.bundle_id, fence, p.plan, validated=True))
    send_in_order(deps, source, own, waiting, result)
    if result.bundles_reserved or result.events_held:
        _log.debug("flush.done", source=source, **result.to_dict())
    return result

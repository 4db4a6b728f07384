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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import structlog

from api_client.models import ErrorBody
from worker.domain.bulk import plan_bulk, validate_bulk_plan
from worker.domain.keys import RelationshipKey
from worker.domain.outcomes import outcomes_for_rejections
from worker.domain.plan import Rejection, plan_bundles
from worker.domain.plan_check import validate_plan
from worker.flow.counts import FlushResult
from worker.flow.deps import Deps
from worker.flow.layout import Sendable, encode_layout, sendable_event_ids
from worker.flow.recover import load_or_park
from worker.flow.sizing import plan_caps_for
from worker.flow.submit import Claimed, nudge_ready, submit_claimed
from worker.store.codec import event_from_mapping
from worker.store.records import BlockedEvent, BundleToCommit, ReadEvent, ReadRound, RejectedEvent

__all__ = ["PlannedBundle", "Round", "blocked_events", "bundle_locks", "flush", "plan_round"]

_log = structlog.get_logger("worker.pipeline")


@dataclass(frozen=True)
class PlannedBundle:
    """One bundle (or bulk request) of a round: its plan and what commit.lua takes."""

    plan: Sendable
    commit: BundleToCommit


def bundle_locks(bundle: Sendable) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(keys it writes, keys it only references: a relationship's ends)."""
    writes = tuple(sorted({str(op.key) for op in bundle.ops}))
    reads = {
        str(end)
        for op in bundle.relationship_ops
        if isinstance(op.key, RelationshipKey)
        for end in op.key.endpoints
    }
    return writes, tuple(sorted(reads - set(writes)))


def _rejection_errors(rejections: Iterable[Rejection]) -> list[tuple[str, str]]:
    return [
        (
            planned.event_id,
            ErrorBody(
                code=413, type=rejection.error_type, message=rejection.reason
            ).model_dump_json(exclude_none=True),
        )
        for rejection in rejections
        for planned in rejection.events
    ]


def _units(events: Sequence[ReadEvent]) -> list[list[ReadEvent]]:
    """Events in seq order, the contiguous members of one atomic batch together."""
    units: list[list[ReadEvent]] = []
    batch_of_last: str | None = None
    for event in events:
        batch = event.body.get("atomicBatch")
        if batch is not None and units and batch == batch_of_last:
            units[-1].append(event)
        else:
            units.append([event])
        batch_of_last = batch
    return units


def _virtual_holder(round_: ReadRound, key: str, seq: int) -> str | None:
    """The slow bundle an event at `seq` on `key` must wait behind because an earlier event on
    it does; None when every event blocked there comes after it (a sent-back event)."""
    for bundle, first in round_.virtual.get(key, ()):
        if first < seq:
            return bundle
    return None


def blocked_events(round_: ReadRound) -> dict[str, str]:
    """The events read that must wait behind a slow bundle (STALE or parked): event -> bundle.

    An event waits when it writes what a slow bundle holds, references what one writes, or
    touches what an earlier event already waiting touches (virtually held: read in
    `round_.virtual` with the lowest seq blocked there, or blocked earlier in this round); an
    atomic batch waits whole. Everything else is planned: a slow bundle delays only what must
    follow it.
    """
    if not round_.slow and not round_.virtual:
        return {}
    local: dict[str, str] = {}
    blocked: dict[str, str] = {}
    for unit in _units(round_.events):
        behind: str | None = None
        for event in unit:
            writes = event.entity
            for key in (writes, *event.resources):
                holder = local.get(key) or _virtual_holder(round_, key, event.seq)
                held = round_.slow.get(key)
                if holder is None and held is not None:
                    mode, _, bundle = held.partition(":")
                    if key == writes or mode == "x":
                        holder = bundle
                if holder is not None:
                    behind = holder
                    break
            if behind is not None:
                break
        if behind is None:
            continue
        for event in unit:
            blocked[event.event_id] = behind
            for key in (event.entity, *event.resources):
                local[key] = behind
    return blocked


@dataclass(frozen=True)
class Round:
    """What one planning round commits: bundles in plan order, rejections, blocked events."""

    bundles: list[PlannedBundle]
    rejected: list[RejectedEvent]
    blocked: list[BlockedEvent]


def plan_round(deps: Deps, source: str, round_: ReadRound) -> Round:
    """The bundles of one round, in plan order, each with the earlier ones it must follow; the
    events no bundle can carry; the events that wait behind a slow bundle."""
    behind = blocked_events(round_)
    read = [e for e in round_.events if e.event_id not in behind]
    blocked = [BlockedEvent(event_id, bundle) for event_id, bundle in behind.items()]
    if not read:
        return Round([], [], blocked)
    events = [event_from_mapping(e.body, e.content) for e in read]
    no_merge = {e.event_id for e in read if e.no_merge}
    groups = {e.event_id: e.group for e in read}
    seqs = {e.event_id: e.seq for e in read}
    sizes = {e.event_id: e.size for e in read}
    mode = deps.settings.coalesce_mode
    sendables: Sequence[Sendable]
    if round_.bulk:
        bulk_plan = plan_bulk(events, caps=deps.bulk_caps, mode=mode, no_merge=no_merge)
        validate_bulk_plan(bulk_plan, deps.bulk_caps)
        sendables, rejected = bulk_plan.requests, _rejection_errors(bulk_plan.rejected)
    else:
        plan = plan_bundles(events, caps=plan_caps_for(deps, source, round_), mode=mode,
                            no_merge=no_merge, after_delete=round_.after_delete)  # fmt: skip
        validate_plan(plan, deps.settings.plan_caps())
        sendables = plan.bundles
        rejected = []
        for outcome in outcomes_for_rejections(plan).outcomes:
            error = outcome.error.model_dump_json(exclude_none=True) if outcome.error else "{}"
            rejected.append((outcome.event_id, error))
    writer: dict[str, str] = {}
    readers: dict[str, set[str]] = {}
    planned: list[PlannedBundle] = []
    for sendable in sendables:
        bundle_id = deps.new_id()
        writes, reads = bundle_locks(sendable)
        after: set[str] = set()
        for key in writes:
            if key in writer:
                after.add(writer[key])
            after |= readers.pop(key, set())
            writer[key] = bundle_id
        for key in reads:
            if key in writer:
                after.add(writer[key])
            readers.setdefault(key, set()).add(bundle_id)
        event_ids = sendable_event_ids(sendable)
        commit = BundleToCommit(
            bundle_id=bundle_id,
            event_ids=event_ids,
            writes=writes,
            reads=reads,
            layout=encode_layout(sendable, seqs),
            groups=tuple(sorted({groups[e] for e in event_ids if groups.get(e)})),
            after=tuple(sorted(after)),
            claim=True,
            size=sum(sizes[e] for e in event_ids),
            actions={str(op.key): op.action.value for op in sendable.ops},
        )
        planned.append(PlannedBundle(sendable, commit))
    return Round(planned, [RejectedEvent(event_id, error) for event_id, error in rejected], blocked)


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
    _send_own(deps, source, own, waiting, result)
    if result.bundles_reserved or result.events_held:
        _log.debug("flush.done", source=source, **result.to_dict())
    return result


def _send_own(
    deps: Deps,
    source: str,
    own: deque[Claimed],
    waiting: dict[str, Sendable],
    result: FlushResult,
) -> None:
    """Send this round's ready bundles, and those of its waiting ones that become ready, in
    order; renew the claims of those still waiting their turn every third of the claim TTL."""
    renew_every = deps.settings.claim_ttl_ms // 3
    last_renewal = deps.now_ms()
    while own:
        now = deps.now_ms()
        if now - last_renewal >= renew_every:
            deps.store.renew(source, [(b.bundle_id, b.fence) for b in own], now)
            last_renewal = now
        claimed = own.popleft()
        seen = len(result.ready)
        submit_claimed(deps, source, claimed, result)
        became_ready = result.ready[seen:]
        mine = [b for b in became_ready if b in waiting]
        others = [b for b in became_ready if b not in waiting]
        if others:
            nudge_ready(deps, source, others)
        if not mine:
            continue
        for record in deps.store.claim(source, mine, deps.now_ms(), "recover"):
            if record.code != "ok" or record.fence is None:
                continue
            plan = waiting.pop(record.bundle_id)
            if record.event_ids == sendable_event_ids(plan):
                own.append(Claimed(record.bundle_id, record.fence, plan, validated=True))
                continue
            # trimmed while it waited (what it followed sent events back): rebuilt from its record
            rebuilt = load_or_park(deps, source, record, result)
            if rebuilt is not None:
                own.append(rebuilt)

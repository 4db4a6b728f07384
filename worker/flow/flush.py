"""Flush due groups: read them (and the buffers that share their resources), plan, reserve, submit.

A flush round costs a few Redis round trips whatever it carries: one snapshot (the due buffers
and, per due group, the buffers that share its resources: the walk of `grouping.flush_set`, done
in snapshot.lua so that it is read atomically), one reserve for the bundles that can leave at
once, then per bundle `sending` and its record (or `sent`), and one reserve per follower. A round
reads at most `flush_read_limit` events, so worker memory stays flat however long the backlog;
groups beyond that are read by the next round. The snapshot also carries the source's shrunk
bundle cap (`flow/sizing.py`), so planning at it costs no round trip.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from worker.flow.counts import FlushResult
from worker.flow.deps import Deps
from worker.flow.holding import Candidate
from worker.flow.selection import Selection, select_bundles
from worker.flow.sizing import plan_caps_for
from worker.flow.submit import Claimed, Step, submit_all, submit_claimed
from worker.store.records import BundleToReserve, RejectedEvent, Snapshot

__all__ = ["flush"]

_log = structlog.get_logger("worker.pipeline")


def _snapshot(deps: Deps, source: str, seeds: Sequence[str]) -> Snapshot:
    settings = deps.settings
    return deps.store.snapshot(
        source, seeds, limit=settings.flush_read_limit, max_groups=settings.max_flush_groups
    )


def _candidates(deps: Deps, snapshot: Snapshot) -> list[Candidate]:
    ordered = sorted(snapshot.events, key=lambda e: e.seq)
    return [
        Candidate(
            event=deps.decoded.get(e.event_id, e.seq, e.body),
            seq=e.seq,
            group=e.group,
            entity=e.entity,
            resources=e.resources,
            no_merge=e.no_merge,
        )
        for e in ordered
    ]


def _reserve(
    deps: Deps, source: str, snapshot: Snapshot, selection: Selection, result: FlushResult
) -> list[Claimed]:
    statuses = deps.store.reserve(
        source,
        bundles=[
            BundleToReserve(b.bundle_id, b.event_ids, b.writes, b.reads, b.layout, b.groups)
            for b in selection.bundles
        ],
        rejected=[RejectedEvent(event_id, error) for event_id, error in selection.rejected],
        groups=selection.groups,
        snapshot_seq=snapshot.seq,
        now_ms=deps.now_ms(),
    )
    taken = [b for b in selection.bundles if statuses.get(b.bundle_id) == "taken"]
    result.bundles_reserved += len(taken)
    result.bundles_skipped += len(selection.bundles) - len(taken)
    return [Claimed(b.bundle_id, 1, b.plan, validated=True) for b in taken]


def _follow(
    deps: Deps,
    source: str,
    snapshot: Snapshot,
    selection: Selection,
    result: FlushResult,
    blocked: set[str],
) -> None:
    """Send the plan's followers in order (rule F).

    A bundle that sends events back to their buffers (CANCELLED, UNMERGED, RETRY) holds back
    every later follower touching an entity it touched, and so on down the plan (their events
    must not overtake the ones sent back); the followers sharing nothing with them go on. Any
    other surprise (no reservation, a pause, an outcome unknown) stops the plan. `blocked` holds
    the entities of the first bundles that sent events back.
    """
    for follower in selection.followers:
        touched = {*follower.writes, *follower.reads}
        if blocked & touched:
            blocked |= touched
            continue
        statuses = deps.store.reserve(
            source,
            bundles=[
                BundleToReserve(
                    follower.bundle_id,
                    follower.event_ids,
                    follower.writes,
                    follower.reads,
                    follower.layout,
                    follower.groups,
                )
            ],
            rejected=[],
            groups=[],
            snapshot_seq=snapshot.seq,
            now_ms=deps.now_ms(),
        )
        if statuses.get(follower.bundle_id) != "taken":
            result.bundles_skipped += 1
            return
        result.bundles_reserved += 1
        claimed = Claimed(follower.bundle_id, 1, follower.plan, validated=True)
        step = submit_claimed(deps, source, claimed, result)
        if step is Step.REPLAN:
            blocked |= touched
        elif not step.plan_goes_on:
            return


def _sent_back(selection: Selection, claimed: Sequence[Claimed], steps: Sequence[Step]) -> set[str]:
    """The entities (written or read) of the bundles whose events went back to their buffers."""
    touched = {b.bundle_id: {*b.writes, *b.reads} for b in selection.bundles}
    blocked: set[str] = set()
    for bundle, step in zip(claimed, steps, strict=True):
        if step is Step.REPLAN:
            blocked |= touched[bundle.bundle_id]
    return blocked


def flush(deps: Deps, source: str, groups: Sequence[str]) -> FlushResult:
    """Flush these due groups of one source: plan, reserve and submit what can go now.

    Events whose entities are busy stay buffered (their groups wait for the bundles holding
    them); everything else leaves in as few bundles as the caps allow.

    Args:
        deps: the process's dependencies.
        source: the source key.
        groups: due groups, most overdue first (from the ticker or `claim_due`).
    """
    result = FlushResult()
    seeds = list(dict.fromkeys(groups))
    while seeds:
        snapshot = _snapshot(deps, source, seeds)
        visited = {g.group for g in snapshot.groups if g.read > 0 or g.total == 0}
        candidates = _candidates(deps, snapshot)
        selection = select_bundles(
            snapshot,
            candidates,
            caps=plan_caps_for(deps, source, snapshot),
            mode=deps.settings.coalesce_mode,
            new_id=deps.new_id,
            bulk_caps=deps.bulk_caps,
        )
        claimed = _reserve(deps, source, snapshot, selection, result)
        result.groups += len(visited)
        result.events_read += len(candidates)
        result.events_held += selection.held
        result.events_rejected += len(selection.rejected)
        all_taken = len(claimed) == len(selection.bundles)
        steps = submit_all(deps, source, claimed, result)
        blocked = _sent_back(selection, claimed, steps)
        if all_taken and all(s.plan_goes_on or s is Step.REPLAN for s in steps):
            _follow(deps, source, snapshot, selection, result, blocked)
        remaining = [g for g in seeds if g not in visited]
        if len(remaining) == len(seeds):
            break  # nothing of the seeds could be read (cannot happen with a positive limit)
        seeds = remaining
    if result.bundles_reserved or result.events_held:
        _log.debug("flush.done", source=source, **result.to_dict())
    return result

"""From one snapshot to the bundles a flush reserves: pure, and safe to send side by side.

The steps (docs/pipeline.md, "Flush"):
1. Keep only what the snapshot saw whole: events past the first one a partly read buffer left
   unread are dropped (they stay buffered), and so is an atomic batch cut by that limit.
2. Taint every resource that a buffer the snapshot did not read also touches: that buffer may
   hold earlier events on it.
3. Hold back what must wait (`holding.hold_back`), plan the rest (`plan_bundles`, then
   `validate_plan`), and take the bundles that conflict with no earlier bundle of the plan: they
   depend on nothing still unsent, so they are reserved together and travel at once.
4. The plan's other bundles are its followers: the flush reserves and sends them one by one, in
   order, while every bundle recorded so far had final fates only and no reservation was refused
   (docs/coalescing.md, rule F); at the first surprise it stops, and they are planned again.
5. Say, per buffer, when it is due again: at once when something was left for a limit, after
   the linger when an unread buffer is involved, else when the bundles it waits for are recorded.

Events in a bulk buffer (`keys.is_bulk_group`) leave in bulk requests (`plan_bulk`), unless they
belong to an atomic batch (a batch always travels as one bundle). One flush plans one mode: the
mode of the first event it may send; the events of the other mode are deferred (held, with
everything behind them on shared resources, and due again at once), so the two modes never
overtake each other on a shared resource. A bulk request is reserved like a bundle (a record,
locks, a claim); the requests of one plan that depend on an earlier one are its followers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from api_client.models import ErrorBody
from worker.domain.bulk import BulkCaps, plan_bulk, validate_bulk_plan
from worker.domain.coalesce import CoalesceMode
from worker.domain.keys import RelationshipKey
from worker.domain.outcomes import outcomes_for_rejections
from worker.domain.plan import PlanCaps, Rejection, plan_bundles
from worker.domain.plan_check import validate_plan
from worker.flow.holding import Candidate, Hold, LockView, hold_back
from worker.flow.layout import Sendable, encode_layout, sendable_event_ids
from worker.store.keys import is_bulk_group
from worker.store.records import GroupDue, Hint, Snapshot

__all__ = ["SelectedBundle", "Selection", "cut_to_snapshot", "select_bundles", "travels_in_bulk"]


@dataclass(frozen=True)
class SelectedBundle:
    """A bundle chosen to reserve: its plan, id, locks and the buffers its events come from."""

    bundle_id: str
    plan: Sendable
    writes: tuple[str, ...]
    reads: tuple[str, ...]
    groups: tuple[str, ...]
    layout: str

    @property
    def event_ids(self) -> tuple[str, ...]:
        """Every event it carries."""
        return sendable_event_ids(self.plan)


@dataclass(frozen=True)
class Selection:
    """What a flush reserves, dead-letters, and when each buffer it read is due again."""

    bundles: tuple[SelectedBundle, ...]
    followers: tuple[SelectedBundle, ...]
    """The rest of the plan, in order: each may go once everything before it is recorded with
    final fates only (docs/coalescing.md, rule F); anything else sends them back to planning."""
    rejected: tuple[tuple[str, str], ...]
    """(event id, error JSON) of events no bundle can carry."""
    groups: tuple[GroupDue, ...]
    held: int
    """Events held back (their entities busy, or behind a held event)."""
    deferred: int
    """Events of followers that depend on no bundle taken now (due again at once)."""


def bundle_locks(bundle: Sendable) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(keys it writes, keys it only references): exclusive and shared locks."""
    writes = tuple(sorted({str(op.key) for op in bundle.ops}))
    reads = {
        str(end)
        for op in bundle.relationship_ops
        if isinstance(op.key, RelationshipKey)
        for end in op.key.endpoints
    }
    return writes, tuple(sorted(reads - set(writes)))


def _conflicts(
    writes: Iterable[str], reads: Iterable[str], taken_writes: set[str], taken_reads: set[str]
) -> bool:
    w, r = set(writes), set(reads)
    return bool(w & (taken_writes | taken_reads)) or bool(r & taken_writes)


def cut_to_snapshot(snapshot: Snapshot, candidates: Sequence[Candidate]) -> list[Candidate]:
    """Step 1: the candidates the snapshot saw whole (publish order)."""
    partial = [g for g in snapshot.groups if 0 < g.read < g.total and g.next_seq is not None]
    if not partial:
        return list(candidates)
    cutoff = min(g.next_seq for g in partial if g.next_seq is not None) - 1
    cut_batches = {g.next_batch for g in partial if g.next_batch}
    return [
        c
        for c in candidates
        if c.seq <= cutoff
        and (c.event.atomic_batch is None or c.event.atomic_batch not in cut_batches)
    ]


def tainted_resources(snapshot: Snapshot) -> frozenset[str]:
    """Step 2: resources that a buffer the snapshot did not read also touches."""
    read = {g.group for g in snapshot.groups if g.read > 0 or g.total == 0}
    return frozenset(
        r for r, groups in snapshot.touch.items() if any(g not in read for g in groups)
    )


def _ready(bundles: Sequence[Sendable]) -> list[Sendable]:
    """The bundles that conflict with no earlier bundle of their plan."""
    ready: list[Sendable] = []
    seen_writes: set[str] = set()
    seen_reads: set[str] = set()
    for bundle in bundles:
        writes, reads = bundle_locks(bundle)
        if not _conflicts(writes, reads, seen_writes, seen_reads):
            ready.append(bundle)
        seen_writes.update(writes)
        seen_reads.update(reads)
    return ready


def travels_in_bulk(candidate: Candidate) -> bool:
    """Whether an event leaves in a bulk request: in a bulk buffer, and in no atomic batch."""
    return is_bulk_group(candidate.group) and candidate.event.atomic_batch is None


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


def _plan(
    free: Sequence[Candidate],
    no_merge: set[str],
    *,
    bulk: bool,
    caps: PlanCaps,
    bulk_caps: BulkCaps,
    mode: CoalesceMode,
) -> tuple[Sequence[Sendable], list[tuple[str, str]]]:
    """The bundles (or bulk requests) for the free events, and the events none can carry."""
    events = [c.event for c in free]
    if bulk:
        bulk_plan = plan_bulk(events, caps=bulk_caps, mode=mode, no_merge=no_merge)
        validate_bulk_plan(bulk_plan, bulk_caps)
        return bulk_plan.requests, _rejection_errors(bulk_plan.rejected)
    plan = plan_bundles(events, caps=caps, mode=mode, no_merge=no_merge)
    validate_plan(plan, caps)
    rejected = []
    for outcome in outcomes_for_rejections(plan).outcomes:
        error = outcome.error.model_dump_json(exclude_none=True) if outcome.error else "{}"
        rejected.append((outcome.event_id, error))
    return plan.bundles, rejected


def select_bundles(
    snapshot: Snapshot,
    candidates: Sequence[Candidate],
    *,
    caps: PlanCaps,
    mode: CoalesceMode,
    new_id: Callable[[], str],
    bulk_caps: BulkCaps | None = None,
) -> Selection:
    """Steps 1 to 5 over one snapshot's events (publish order)."""
    kept = cut_to_snapshot(snapshot, candidates)
    kept_ids = {c.event_id for c in kept}
    tainted = tainted_resources(snapshot)
    locks = LockView(
        writers={k: s.writer for k, s in snapshot.locks.items() if s.writer},
        readers={k: set(s.readers) for k, s in snapshot.locks.items() if s.readers},
    )
    by_id = {c.event_id: c for c in kept}
    no_merge = {c.event_id for c in kept if c.no_merge}

    def chosen(bundle: Sendable) -> SelectedBundle:
        writes, reads = bundle_locks(bundle)
        event_ids = sendable_event_ids(bundle)
        seqs = {eid: by_id[eid].seq for eid in event_ids}
        groups = tuple(sorted({by_id[eid].group for eid in event_ids}))
        return SelectedBundle(new_id(), bundle, writes, reads, groups, encode_layout(bundle, seqs))

    free, held = hold_back(kept, locks, tainted)
    if not free:
        hints = _hints(snapshot, candidates, kept_ids, [], held)
        return Selection((), (), (), hints, len(held), 0)
    bulk = travels_in_bulk(free[0])
    defer = frozenset(c.event_id for c in kept if travels_in_bulk(c) != bulk)
    if defer:
        free, held = hold_back(kept, locks, tainted, defer)
    sendables, rejected = _plan(
        free, no_merge, bulk=bulk, caps=caps, bulk_caps=bulk_caps or BulkCaps(), mode=mode
    )
    ready = _ready(sendables)
    ready_ids = {id(b) for b in ready}
    selected = [chosen(b) for b in ready]
    followers = [chosen(b) for b in sendables if id(b) not in ready_ids]
    for selection in selected:
        locks.add(selection.bundle_id, selection.writes, selection.reads)
    placed = {eid for b in selected for eid in b.event_ids} | {eid for eid, _ in rejected}
    waiting = [c for c in kept if c.event_id not in placed]
    later, held = hold_back(waiting, locks, tainted, defer)
    hints = _hints(snapshot, candidates, kept_ids, later, held)
    return Selection(
        bundles=tuple(selected),
        followers=tuple(followers),
        rejected=tuple(rejected),
        groups=hints,
        held=len(held),
        deferred=len(later),
    )


def _hints(
    snapshot: Snapshot,
    candidates: Sequence[Candidate],
    kept_ids: set[str],
    deferred: Sequence[Candidate],
    held: dict[str, Hold],
) -> tuple[GroupDue, ...]:
    """Step 5: per buffer read, 'now' > 'linger' > 'wait' (with the bundles to wait for).

    A buffer the snapshot did not reach keeps its due time (a later round or flush reads it).
    """
    visited = [g for g in snapshot.groups if g.read > 0 or g.total == 0]
    hint: dict[str, Hint] = {g.group: "wait" for g in visited}
    wait: dict[str, set[str]] = {g.group: set() for g in visited}
    order = {"wait": 0, "linger": 1, "now": 2}

    def raise_to(group: str, level: Hint) -> None:
        if group in hint and order[level] > order[hint[group]]:
            hint[group] = level

    for g in visited:
        if g.read < g.total:
            raise_to(g.group, "now")
    for c in candidates:
        if c.event_id not in kept_ids:
            raise_to(c.group, "now")
    for c in deferred:
        raise_to(c.group, "now")
    group_of = {c.event_id: c.group for c in candidates}
    for event_id, hold in held.items():
        group = group_of[event_id]
        if group in wait:
            wait[group].update(hold.blockers)
        if hold.tainted:
            raise_to(group, "linger")
        if hold.deferred:
            raise_to(group, "now")
    return tuple(GroupDue(group, hint[group], tuple(sorted(wait[group]))) for group in hint)

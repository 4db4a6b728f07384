"""Which buffered events a flush must hold back, and why: pure, given the locks it read.

An event is held when its entity is busy (a bundle in flight writes it, or, for a resource, any
bundle references it; a relationship also waits while a bundle writes one of its ends), when it
touches a resource that an unread buffer may hold earlier events on (tainted), or when it touches
what an earlier held event touches (so nothing overtakes a held event on shared resources). The
events of an atomic batch are held together. A flush also defers the events of the other mode
(bundle or bulk) than the one it plans: they are held the same way, due again at once. The rest
may be planned now, in publish order.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from worker.domain.events import ChangeEvent

__all__ = ["Candidate", "Hold", "LockView", "hold_back"]

_RELATIONSHIP_PREFIX = "rel:"


@dataclass(frozen=True)
class Candidate:
    """A buffered event, decoded, with the keys its locks and holds are reckoned on."""

    event: ChangeEvent
    seq: int
    group: str
    entity: str
    resources: tuple[str, ...]
    no_merge: bool = False

    @property
    def event_id(self) -> str:
        """The event's id."""
        return self.event.event_id

    @property
    def is_relationship(self) -> bool:
        """Whether it writes a relationship (its resources are then the two ends it reads)."""
        return self.entity.startswith(_RELATIONSHIP_PREFIX)


@dataclass
class LockView:
    """Entity key -> writer (exclusive) and readers (shared), as read, plus this flush's bundles."""

    writers: dict[str, str] = field(default_factory=dict)
    readers: dict[str, set[str]] = field(default_factory=dict)

    def add(self, bundle_id: str, writes: Iterable[str], reads: Iterable[str]) -> None:
        """Count a bundle this flush is about to reserve as a holder."""
        for key in writes:
            self.writers[key] = bundle_id
        for key in reads:
            self.readers.setdefault(key, set()).add(bundle_id)

    def busy_for(self, candidate: Candidate) -> set[str]:
        """The bundles whose locks keep `candidate` from being sent now (empty: free)."""
        holders: set[str] = set()
        writer = self.writers.get(candidate.entity)
        if writer is not None:
            holders.add(writer)
        if candidate.is_relationship:
            for end in candidate.resources:
                end_writer = self.writers.get(end)
                if end_writer is not None:
                    holders.add(end_writer)
        else:
            holders |= self.readers.get(candidate.entity, set())
        return holders


@dataclass(frozen=True)
class Hold:
    """Why an event waits: the bundles it waits for, and whether an unread buffer is involved."""

    blockers: frozenset[str] = frozenset()
    tainted: bool = False
    deferred: bool = False
    """Behind an event of the other mode than the flush plans: due again at once."""


def _scan(
    candidates: Sequence[Candidate],
    locks: LockView,
    tainted: frozenset[str],
    forced: Mapping[str, Hold],
    defer: Collection[str],
) -> dict[str, Hold]:
    held: dict[str, Hold] = {}
    held_blockers: dict[str, set[str]] = {}
    held_tainted: set[str] = set()
    held_deferred: set[str] = set()
    for candidate in candidates:
        blockers = locks.busy_for(candidate)
        is_tainted = bool(tainted.intersection(candidate.resources))
        deferred = candidate.event_id in defer
        blocked = bool(blockers) or is_tainted or deferred
        for resource in candidate.resources:
            if resource in held_blockers:
                blocked = True
                blockers |= held_blockers[resource]
                is_tainted = is_tainted or resource in held_tainted
                deferred = deferred or resource in held_deferred
        batch = candidate.event.atomic_batch
        if batch is not None and batch in forced:
            blocked = True
            blockers |= forced[batch].blockers
            is_tainted = is_tainted or forced[batch].tainted
            deferred = deferred or forced[batch].deferred
        if not blocked:
            continue
        held[candidate.event_id] = Hold(frozenset(blockers), is_tainted, deferred)
        for resource in candidate.resources:
            held_blockers.setdefault(resource, set()).update(blockers)
            if is_tainted:
                held_tainted.add(resource)
            if deferred:
                held_deferred.add(resource)
    return held


def hold_back(
    candidates: Sequence[Candidate],
    locks: LockView,
    tainted: frozenset[str] = frozenset(),
    defer: Collection[str] = frozenset(),
) -> tuple[list[Candidate], dict[str, Hold]]:
    """Split `candidates` (publish order) into those to plan now and those held, with why.

    Args:
        candidates: buffered events in publish order.
        locks: the locks read with them, plus the bundles this flush already chose.
        tainted: resources an unread buffer may hold earlier events on.
        defer: ids of events of the mode this flush does not plan.
    """
    forced: dict[str, Hold] = {}
    while True:
        held = _scan(candidates, locks, tainted, forced, defer)
        grown = False
        for candidate in candidates:
            batch = candidate.event.atomic_batch
            hold = held.get(candidate.event_id)
            if batch is None or hold is None:
                continue
            known = forced.get(batch)
            merged = Hold(
                hold.blockers | (known.blockers if known else frozenset()),
                hold.tainted or (known.tainted if known else False),
                hold.deferred or (known.deferred if known else False),
            )
            if known != merged:
                forced[batch] = merged
                grown = True
        if not grown:
            break
    free = [c for c in candidates if c.event_id not in held]
    return free, held

"""Grouping: which buffer an event waits in, and which buffers a flush must carry together.

A group decides what is buffered and flushed together; it never overrides order (invariant 3).
An event names its group, or a function picks one (by default a resource's own `type:id`, a
relationship's `from` resource). But an entity's pending events live in one buffer at a time: a
later event joins the buffer that already holds its entity, whatever group it names. These are
pure decisions given "where is this entity pending now", which the store answers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from worker.domain.events import LABEL_PATTERN, ChangeEvent, Target
from worker.domain.keys import EntityKey, ResourceKey, key_of, resources_touched

GroupFn = Callable[[ChangeEvent], str]
"""Picks the group of an event that names none (the event is resolved: ids are known)."""


def default_group(event: ChangeEvent) -> str:
    """A resource's own `type:id`; a relationship's `from` resource, so it flushes with it."""
    if event.target is Target.RESOURCE:
        if event.id is None:
            raise ValueError("id: unassigned; assign ids before grouping")
        return f"{event.type}:{event.id}"
    if event.from_ is None or event.from_.id is None:
        raise ValueError("from: unresolved; assign ids before grouping")
    return f"{event.from_.type}:{event.from_.id}"


@dataclass(frozen=True)
class Placement:
    """Where an event waits: `group`; `named` is what it asked for (explicitly or by default)."""

    group: str
    named: str

    @property
    def redirected(self) -> bool:
        """Whether the event joined another buffer because its entity was already pending there."""
        return self.group != self.named


@dataclass(frozen=True)
class GroupConflict:
    """An atomic batch whose entities are pending in several buffers: it cannot be placed now.

    The publisher refuses the batch with this reason; publishing it again after those buffers
    flush succeeds.
    """

    groups: tuple[str, ...]

    def __str__(self) -> str:
        return (
            "atomicBatch: its entities are pending in several groups "
            f"({', '.join(self.groups)}); publish it again once they have flushed"
        )


def named_group(event: ChangeEvent, group_of: GroupFn = default_group) -> str:
    """The group an event asks for: its own `group`, else the one `group_of` picks."""
    group = event.group if event.group is not None else group_of(event)
    if LABEL_PATTERN.fullmatch(group) is None:
        raise ValueError("group: the group function made a name outside the label pattern")
    return group


def place_event(
    event: ChangeEvent, *, pending_group: str | None, group_of: GroupFn = default_group
) -> Placement:
    """The buffer for one event, given the buffer that holds its entity now (if any)."""
    named = named_group(event, group_of)
    return Placement(group=pending_group if pending_group is not None else named, named=named)


def place_events(
    events: Sequence[ChangeEvent],
    *,
    pending_group_of: Callable[[EntityKey], str | None],
    group_of: GroupFn = default_group,
) -> tuple[Placement | GroupConflict, ...]:
    """Place a publish batch in order, one result per event.

    Events earlier in the batch count as pending for later ones, so two events on one entity
    always share a buffer. The events of one atomic batch share one buffer, decided when its first
    event is reached (so the events placed before it in this call count as pending): the one that
    holds any of their entities, else the group its first event names; when their entities are
    pending in two or more buffers, every event of the batch gets a `GroupConflict`.
    """
    placed: dict[EntityKey, str] = {}

    def pending(key: EntityKey) -> str | None:
        return placed.get(key, pending_group_of(key))

    members_of: dict[str, list[ChangeEvent]] = {}
    for event in events:
        if event.atomic_batch is not None:
            members_of.setdefault(event.atomic_batch, []).append(event)
    batch_groups: dict[str, Placement | GroupConflict] = {}

    def batch_placement(batch_id: str) -> Placement | GroupConflict:
        members = members_of[batch_id]
        holders = sorted({g for g in (pending(key_of(e)) for e in members) if g is not None})
        if len(holders) > 1:
            return GroupConflict(tuple(holders))
        named = named_group(members[0], group_of)
        group = holders[0] if holders else named
        for member in members:  # the whole batch is pending there from now on
            placed[key_of(member)] = group
        return Placement(group, named)

    results: list[Placement | GroupConflict] = []
    for event in events:
        key = key_of(event)
        result: Placement | GroupConflict
        if event.atomic_batch is not None:
            if event.atomic_batch not in batch_groups:
                batch_groups[event.atomic_batch] = batch_placement(event.atomic_batch)
            result = batch_groups[event.atomic_batch]
            if isinstance(result, Placement):
                result = Placement(result.group, named_group(event, group_of))
        else:
            result = place_event(event, pending_group=pending(key), group_of=group_of)
        if isinstance(result, Placement):
            placed[key] = result.group
        results.append(result)
    return tuple(results)


@dataclass(frozen=True)
class FlushSet:
    """The buffers one flush must carry together; `complete` is False when the cap cut it short."""

    groups: tuple[str, ...]
    complete: bool


def flush_set(
    group: str,
    *,
    resources_of: Callable[[str], Iterable[ResourceKey]],
    groups_touching: Callable[[ResourceKey], Iterable[str]],
    max_groups: int,
) -> FlushSet:
    """The groups a flush of `group` carries: every buffer holding pending events that touch
    (write, or reference as a relationship end) a resource its events touch, transitively.

    Carried together and planned in publish order, a relationship never races the bundle that
    writes its endpoint (invariant 3). When the closure passes `max_groups` the flush must wait
    (`complete` is False) rather than send part of it.

    Args:
        group: the group that is due.
        resources_of: the resources a buffer's pending events touch (see `touched_resources`).
        groups_touching: the buffers whose pending events touch a resource.
        max_groups: the most buffers one flush may carry.
    """
    seen = [group]
    frontier = [group]
    while frontier:
        current = frontier.pop()
        for resource in resources_of(current):
            for other in groups_touching(resource):
                if other in seen:
                    continue
                if len(seen) >= max_groups:
                    return FlushSet(tuple(seen), complete=False)
                seen.append(other)
                frontier.append(other)
    return FlushSet(tuple(seen), complete=True)


def touched_resources(events: Iterable[ChangeEvent]) -> frozenset[ResourceKey]:
    """The resources whose state these events read or write (a relationship reads both ends)."""
    return frozenset(r for event in events for r in resources_touched(key_of(event)))

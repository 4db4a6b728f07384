"""A model of the per-group buffers: publish calls, where entities are pending, flush closures.

The store answers "where is this entity pending" and "which buffers touch this resource"; here
plain dicts answer them, so that `place_events` and `flush_set` can be driven as the publisher
and the flusher drive them.
"""

from __future__ import annotations

from collections.abc import Sequence

from tests.property.oracle import units
from worker.domain.events import ChangeEvent
from worker.domain.grouping import (
    GroupConflict,
    Placement,
    flush_set,
    place_events,
    touched_resources,
)
from worker.domain.keys import EntityKey, ResourceKey, key_of

Buffers = dict[str, list[ChangeEvent]]
"""Group name -> its pending events, in publish order."""


def calls_of(events: Sequence[ChangeEvent], cuts: Sequence[bool]) -> list[list[ChangeEvent]]:
    """Publish calls: consecutive units, a new call wherever `cuts` says.

    An atomic batch is never cut, and shares its call with whatever events come before and after
    it there, so a batch is placed with the call's earlier events already counted as pending.
    """
    calls: list[list[ChangeEvent]] = [[]]
    for unit, cut in zip(units(events), cuts, strict=False):
        if cut and calls[-1]:
            calls.append([])
        calls[-1].extend(unit)
    return [call for call in calls if call]


def holders(buffers: Buffers, key: EntityKey) -> set[str]:
    """The buffers that hold a pending event on `key`."""
    return {group for group, pending in buffers.items() if any(key_of(e) == key for e in pending)}


def publish_call(buffers: Buffers, call: Sequence[ChangeEvent]) -> list[Placement | GroupConflict]:
    """Place one call and buffer what was placed; a refused batch is left out. The placements."""
    placements = place_events(
        call, pending_group_of=lambda key: next(iter(sorted(holders(buffers, key))), None)
    )
    for event, placement in zip(call, placements, strict=True):
        if isinstance(placement, Placement):
            buffers.setdefault(placement.group, []).append(event)
    return list(placements)


def resources_of(buffers: Buffers, group: str) -> frozenset[ResourceKey]:
    """The resources a buffer's pending events read or write."""
    return touched_resources(buffers.get(group, []))


def flush_groups(buffers: Buffers, group: str, max_groups: int) -> tuple[str, ...] | None:
    """The groups a flush of `group` takes (checked to be closed), or None when it must wait."""
    result = flush_set(
        group,
        resources_of=lambda g: resources_of(buffers, g),
        groups_touching=lambda r: [g for g in buffers if r in resources_of(buffers, g)],
        max_groups=max_groups,
    )
    assert result.groups[0] == group
    assert len(set(result.groups)) == len(result.groups)
    if not result.complete:
        assert len(result.groups) == max_groups
        return None
    inside = frozenset().union(*(resources_of(buffers, g) for g in result.groups))
    for other in set(buffers) - set(result.groups):
        assert not (resources_of(buffers, other) & inside), (other, result.groups)
    return result.groups

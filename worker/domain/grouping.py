"""Grouping: the group an event names, a packing preference and the unit of an atomic batch.

A group says what a producer would like to travel together; it never overrides order (invariant
3) and is not a place an entity must wait in: every event of a source joins one ready log in
publish order, and the planner orders by entity, whatever group each event names. An event names
its group, or a function picks one (by default a resource's own `type:id`, a relationship's
`from` resource).
"""

from __future__ import annotations

from collections.abc import Callable

from worker.domain.events import LABEL_PATTERN, ChangeEvent, Target

GroupFn = Callable[[ChangeEvent], str]
"""Picks the group of an event that names none (the event is resolved: ids are known)."""


def default_group(event: ChangeEvent) -> str:
    """A resource's own `type:id`; a relationship's `from` resource."""
    if event.target is Target.RESOURCE:
        if event.id is None:
            raise ValueError("id: unassigned; assign ids before grouping")
        return f"{event.type}:{event.id}"
    if event.from_ is None or event.from_.id is None:
        raise ValueError("from: unresolved; assign ids before grouping")
    return f"{event.from_.type}:{event.from_.id}"


def named_group(event: ChangeEvent, group_of: GroupFn = default_group) -> str:
    """The group an event asks for: its own `group`, else the one `group_of` picks."""
    group = event.group if event.group is not None else group_of(event)
    if LABEL_PATTERN.fullmatch(group) is None:
        raise ValueError("group: the group function made a name outside the label pattern")
    return group

"""Ids and refs at publish: id-less CREATEs get their id, refs resolve to the ids they name.

One pipelined read per source asks Redis for the refs the call names and the ids already given
to its id-less CREATEs (a repeated publish keeps its first id); `domain.refs.assign_ids` does the
rest. Each entry keeps the refs it used, so the atomic append (`publish.lua`) can refuse it if one
of them no longer names the same id.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from worker.domain.events import ChangeEvent, EventError, Target
from worker.domain.refs import assign_ids
from worker.publish_entry import Entry
from worker.store import Store

__all__ = ["resolve_refs"]


def resolve_refs(
    store: Store, source: str, members: Sequence[Entry], new_id: Callable[[], str]
) -> None:
    """Assign ids to id-less CREATEs and resolve refs, against what the store knows."""
    events = [e.event for e in members if e.event is not None]
    idless = [e.event_id for e in events if e.target is Target.RESOURCE and e.id is None]
    refs = [r for e in events for r in _named_refs(e)]
    known_ids, live_refs = store.read_known(source, idless, refs) if idless or refs else ({}, {})
    assignment = assign_ids(events, known_refs=live_refs, known_event_ids=known_ids, new_id=new_id)
    for entry, result in zip(members, assignment.results, strict=True):
        if isinstance(result, EventError):
            entry.refuse(*result.problems)
            continue
        assert entry.event is not None
        entry.refs_used = _refs_used(entry.event, result)
        entry.event = result


def _named_refs(event: ChangeEvent) -> list[str]:
    refs = [] if event.ref is None else [event.ref]
    for end in (event.from_, event.to):
        if end is not None and end.ref is not None:
            refs.append(end.ref)
    return refs


def _refs_used(original: ChangeEvent, resolved: ChangeEvent) -> dict[str, str]:
    used: dict[str, str] = {}
    if original.target is Target.RESOURCE:
        if original.id is None and original.ref is not None and not resolved.generated_id:
            used[original.ref] = str(resolved.id)
        return used
    for before, after in ((original.from_, resolved.from_), (original.to, resolved.to)):
        if before is not None and before.ref is not None and after is not None:
            used[before.ref] = str(after.id)
    return used

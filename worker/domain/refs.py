"""Id assignment at publish: every CREATE gets its id before anything is sent (invariant 10).

A CREATE without an id gets one from the injected generator, in the Registry's id pattern, so that
nothing planned later depends on a server-generated id and an ambiguous outcome can be settled by
reading the entity back. A `ref` on such a CREATE names the new resource for later events; refs are
resolved in `id`, `from` and `to` only, never inside `data`. Refs live per source.

The function is pure: the caller (the Redis store) passes what it already knows (live refs, and
the ids first assigned to event ids it has seen) and persists what `assign_ids` reports as new. An
event published again (same event id) gets the id first assigned to it (invariant 8).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from api_client.ids import RESOURCE_ID_PATTERN, is_resource_id
from api_client.models import Action
from worker.domain.events import ChangeEvent, Endpoint, EventError, Problem, Target


@dataclass(frozen=True)
class Assignment:
    """What `assign_ids` decided: resolved events, refusals, and what the caller must persist.

    `results` has one entry per input event, in order (the resolved event or its error);
    `events` and `errors` are the same split in two. `new_refs` maps each ref defined by this call
    to its id; `new_event_ids` maps each event id that got an id for the first time to that id.
    """

    results: tuple[ChangeEvent | EventError, ...]
    new_refs: Mapping[str, str]
    new_event_ids: Mapping[str, str]

    @property
    def events(self) -> tuple[ChangeEvent, ...]:
        """The accepted events, resolved, in input order."""
        return tuple(r for r in self.results if isinstance(r, ChangeEvent))

    @property
    def errors(self) -> tuple[EventError, ...]:
        """The refused events, in input order."""
        return tuple(r for r in self.results if isinstance(r, EventError))


class _Resolver:
    """The ref and event-id maps of one call: what was known plus what this call added."""

    def __init__(
        self,
        known_refs: Mapping[str, str],
        known_event_ids: Mapping[str, str],
        new_id: Callable[[], str],
    ) -> None:
        self.known_refs = known_refs
        self.known_event_ids = known_event_ids
        self.new_id = new_id
        self.new_refs: dict[str, str] = {}
        self.new_event_ids: dict[str, str] = {}

    def ref(self, name: str) -> str | None:
        return self.new_refs.get(name, self.known_refs.get(name))

    def id_for(self, event_id: str) -> str:
        """The id first assigned to `event_id`, or a fresh one (not yet recorded)."""
        known = self.new_event_ids.get(event_id, self.known_event_ids.get(event_id))
        if known is not None:
            return known
        fresh = self.new_id()
        if not is_resource_id(fresh):
            raise ValueError(
                f"new_id: generated an id that does not match {RESOURCE_ID_PATTERN.pattern}"
            )
        return fresh

    @staticmethod
    def undefined(field: str) -> Problem:
        return Problem(field, "ref is not defined: no earlier live CREATE of this source named it")


def _resolve_endpoint(
    endpoint: Endpoint | None, field: str, resolver: _Resolver, problems: list[Problem]
) -> Endpoint | None:
    if endpoint is None or endpoint.ref is None:
        return endpoint
    resolved = resolver.ref(endpoint.ref)
    if resolved is None:
        problems.append(resolver.undefined(f"{field}.ref"))
        return endpoint
    return Endpoint(type=endpoint.type, id=resolved)


def _assign_one(event: ChangeEvent, resolver: _Resolver) -> ChangeEvent | EventError:
    problems: list[Problem] = []
    update: dict[str, object] = {}
    if event.target is Target.RELATIONSHIP:
        from_ = _resolve_endpoint(event.from_, "from", resolver, problems)
        to = _resolve_endpoint(event.to, "to", resolver, problems)
        update = {"from_": from_, "to": to}
    elif event.action is Action.CREATE and event.id is None:
        assigned = resolver.id_for(event.event_id)
        live = None if event.ref is None else resolver.ref(event.ref)
        if live is not None and live != assigned:
            problems.append(
                Problem("ref", "is already defined (live) for another resource of this source")
            )
        else:
            if event.ref is not None and live is None:
                resolver.new_refs[event.ref] = assigned
            if event.event_id not in resolver.known_event_ids:
                resolver.new_event_ids[event.event_id] = assigned
        update = {"id": assigned, "generated_id": True}
    elif event.id is None and event.ref is not None:
        resolved = resolver.ref(event.ref)
        if resolved is None:
            problems.append(resolver.undefined("ref"))
        else:
            update = {"id": resolved, "ref": None}
    if problems:
        return EventError(tuple(problems), event_id=event.event_id)
    if not update:
        return event
    # Re-validate through the model so that a resolved event obeys every rule of a fresh one.
    return ChangeEvent.model_validate({**event.model_dump(by_alias=False), **update})


def assign_ids(
    events: Sequence[ChangeEvent],
    *,
    known_refs: Mapping[str, str],
    known_event_ids: Mapping[str, str],
    new_id: Callable[[], str],
) -> Assignment:
    """Give every id-less CREATE its id and resolve every ref, in publish order.

    Args:
        events: validated events of one source, in publish order.
        known_refs: the source's live refs (ref -> id), as stored.
        known_event_ids: ids first assigned to event ids seen before (event id -> id).
        new_id: makes a fresh id in the Registry's pattern (a KSUID in production).

    Returns:
        The resolved events and per-event errors (an undefined ref, a live ref defined again),
        and the refs and event ids to persist.

    Raises:
        ValueError: the events mix sources, or `new_id` made an id outside the pattern.
    """
    sources = {event.source_key for event in events}
    if len(sources) > 1:
        raise ValueError("events: assign ids one source at a time (refs live per source)")
    resolver = _Resolver(known_refs, known_event_ids, new_id)
    results: list[ChangeEvent | EventError] = []
    for index, event in enumerate(events):
        result = _assign_one(event, resolver)
        if isinstance(result, EventError):
            result = EventError(result.problems, event_id=result.event_id, index=index)
        results.append(result)
    return Assignment(
        results=tuple(results),
        new_refs=dict(resolver.new_refs),
        new_event_ids=dict(resolver.new_event_ids),
    )

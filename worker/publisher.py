"""`publish(events)`: validate, assign ids, resolve refs, and append to the buffers of each source.

Costs at most two round trips per source whatever the call's size: a pipelined read of the refs and
of the ids of id-less CREATEs it names (skipped when there are none), then one pipeline holding
the `publish.lua` call of every source and the dead letters. Invalid
events come back as per-event errors (and are dead-lettered before this returns) while the valid
ones go in. `atomic=True` makes the whole call one atomic batch: refused as a whole, with the
reason, when any event is invalid or the batch could not travel as one bundle.

`mode="bulk"` (backfills) buffers the events apart, in the bulk buffer of their named group
(`keys.bulk_group`), which a flush sends as bulk requests. An event whose entity is already pending
joins the buffer that holds it, whatever its mode (one buffer per entity, DESIGN invariant 3), and
travels in that buffer's mode. Atomic batches are refused in bulk mode (nothing is all-or-nothing in
a bulk request).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from api_client.ids import is_source_key
from worker.domain.events import ChangeEvent, EventError, Problem, Target, parse_events
from worker.domain.grouping import named_group
from worker.domain.keys import key_of, resources_touched
from worker.domain.plan import check_atomic_batch
from worker.domain.refs import assign_ids
from worker.ids import new_id as default_new_id
from worker.store import InvalidEntry, Store
from worker.store.keys import INVALID_SOURCE, bulk_group
from worker.store.records import PublishItem, PublishReply
from worker.store.reopening import publish_reopening

if TYPE_CHECKING:
    from worker.pipeline import Deps

__all__ = ["Accepted", "Duplicate", "PublishError", "PublishReport", "publish"]

Mode = Literal["bundle", "bulk"]


@dataclass(frozen=True)
class Accepted:
    """An event now buffered: its group, and the id assigned when it was a CREATE without one."""

    index: int
    event_id: str
    source_key: str
    group: str
    assigned_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "index": self.index,
            "eventId": self.event_id,
            "sourceKey": self.source_key,
            "group": self.group,
            "assignedId": self.assigned_id,
        }


@dataclass(frozen=True)
class Duplicate:
    """An event id seen before (within the results TTL): nothing changed; its first result."""

    index: int
    event_id: str
    source_key: str
    assigned_id: str | None
    status: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "index": self.index,
            "eventId": self.event_id,
            "sourceKey": self.source_key,
            "assignedId": self.assigned_id,
            "status": self.status,
        }


@dataclass(frozen=True)
class PublishError:
    """A refused event: every problem, each naming its field; never the event's data."""

    index: int
    event_id: str | None
    source_key: str | None
    problems: tuple[Problem, ...]

    @property
    def field(self) -> str:
        """The first field at fault."""
        return self.problems[0].field

    @property
    def reason(self) -> str:
        """Why, for every problem."""
        if len(self.problems) == 1:
            return self.problems[0].reason
        return "; ".join(str(p) for p in self.problems)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "index": self.index,
            "eventId": self.event_id,
            "sourceKey": self.source_key,
            "problems": [{"field": p.field, "reason": p.reason} for p in self.problems],
        }


@dataclass(frozen=True)
class PublishReport:
    """What one publish call did, per event, in input order within each list."""

    accepted: list[Accepted] = field(default_factory=list)
    duplicates: list[Duplicate] = field(default_factory=list)
    errors: list[PublishError] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        """How many events were accepted, were duplicates, were refused."""
        return {
            "accepted": len(self.accepted),
            "duplicates": len(self.duplicates),
            "errors": len(self.errors),
        }

    @property
    def assigned_ids(self) -> dict[str, str]:
        """event id -> the id assigned to its resource (accepted and duplicate CREATEs)."""
        found = {a.event_id: a.assigned_id for a in self.accepted if a.assigned_id}
        found.update({d.event_id: d.assigned_id for d in self.duplicates if d.assigned_id})
        return found

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (ids, groups and reasons only)."""
        return {
            "counts": self.counts,
            "accepted": [a.to_dict() for a in self.accepted],
            "duplicates": [d.to_dict() for d in self.duplicates],
            "errors": [e.to_dict() for e in self.errors],
        }


@dataclass
class _Entry:
    """One input event on its way through the call."""

    index: int
    raw: Any
    event: ChangeEvent | None = None
    problems: tuple[Problem, ...] = ()
    duplicate_of: int | None = None
    refs_used: dict[str, str] = field(default_factory=dict)

    @property
    def event_id(self) -> str | None:
        if self.event is not None:
            return self.event.event_id
        given = self.raw.get("eventId") if isinstance(self.raw, Mapping) else None
        return given if isinstance(given, str) else None

    @property
    def source(self) -> str | None:
        if self.event is not None:
            return self.event.source_key
        given = self.raw.get("sourceKey") if isinstance(self.raw, Mapping) else None
        return given if isinstance(given, str) and is_source_key(given) else None

    def refuse(self, *problems: Problem) -> None:
        if not self.problems:
            self.problems = problems


@dataclass(frozen=True)
class _Context:
    store: Store
    now_ms: Callable[[], int]
    new_id: Callable[[], str]


def _context(target: Deps | Store) -> _Context:
    if isinstance(target, Store):
        import time

        return _Context(target, lambda: int(time.time() * 1000), default_new_id)
    return _Context(target.store, target.now_ms, target.new_id)


def publish(
    target: Deps | Store,
    events: Iterable[Mapping[str, Any]],
    *,
    atomic: bool = False,
    mode: Mode = "bundle",
) -> PublishReport:
    """Validate and buffer change events (DESIGN section 6); never raises for bad events.

    Args:
        target: the pipeline's `Deps`, or a bare `Store` (real clock, KSUID ids).
        events: raw events as decoded from JSON (camelCase).
        atomic: the whole call is one atomic batch: all applied or none.
        mode: "bundle", or "bulk" (backfills, sent as bulk requests; no atomic batch).

    Returns:
        Accepted events (with assigned ids), duplicates (with their first result) and per-event
        errors. Refused events are in their source's dead-letter stream when this returns.

    Raises:
        ValueError: an unknown `mode`.
        redis.RedisError: Redis could not be reached (then nothing is acknowledged).
    """
    return _publish(target, events, atomic=atomic, mode=mode, write=_plain_publish)


def publish_reopening_dead_letters(
    target: Deps | Store, events: Iterable[Mapping[str, Any]]
) -> PublishReport:
    """`publish` for a DLQ replay: an event dead-lettered under its id is reopened (same id, a
    new attempt) rather than answered as a duplicate; any other known event still is one."""
    return _publish(target, events, atomic=False, mode="bundle", write=publish_reopening)


def _publish(
    target: Deps | Store,
    events: Iterable[Mapping[str, Any]],
    *,
    atomic: bool,
    mode: Mode,
    write: Callable[..., dict[str, list[PublishReply]]],
) -> PublishReport:
    if mode not in ("bundle", "bulk"):
        raise ValueError("mode: must be 'bundle' or 'bulk'")
    entries = [_Entry(index, raw) for index, raw in enumerate(events)]
    ctx = _context(target)
    now_ms = ctx.now_ms()
    now = datetime.fromtimestamp(now_ms / 1000, tz=UTC)
    parsed = parse_events((e.raw for e in entries), new_event_id=ctx.new_id, now=now)
    for entry, result in zip(entries, parsed, strict=True):
        if isinstance(result, EventError):
            entry.refuse(*result.problems)
        else:
            entry.event = result
    _mark_repeats(entries)
    if mode == "bulk":
        _refuse_batches_in_bulk(entries, whole_call=atomic)
    elif atomic:
        _make_one_batch(entries, ctx.new_id())
    by_source: dict[str, list[_Entry]] = defaultdict(list)
    for entry in entries:
        if entry.event is not None and not entry.problems and entry.duplicate_of is None:
            by_source[entry.event.source_key].append(entry)
    items: dict[str, list[PublishItem]] = {}
    for source, members in by_source.items():
        _resolve(ctx, source, members)
        _check_batches(ctx, members)
        items[source] = [_item(e, bulk=mode == "bulk") for e in members if not e.problems]
    invalid = [_dead_letter(e) for e in entries if e.problems]
    replies = write(ctx.store, {s: batch for s, batch in items.items() if batch}, invalid, now_ms)
    return _report(entries, by_source, replies)


def _plain_publish(
    store: Store,
    items: Mapping[str, Sequence[PublishItem]],
    invalid: Sequence[InvalidEntry],
    now_ms: int,
) -> dict[str, list[PublishReply]]:
    return store.publish(items, invalid, now_ms)


def _mark_repeats(entries: Sequence[_Entry]) -> None:
    first: dict[tuple[str, str], int] = {}
    for entry in entries:
        if entry.event is None or entry.problems:
            continue
        key = (entry.event.source_key, entry.event.event_id)
        if key in first:
            entry.duplicate_of = first[key]
        else:
            first[key] = entry.index


def _refuse_batches_in_bulk(entries: Sequence[_Entry], *, whole_call: bool) -> None:
    """Bulk mode: an atomic batch (the whole call, or an event naming one) is refused."""
    problem = Problem(
        "atomicBatch", "bulk requests are not atomic; publish atomic batches in mode='bundle'"
    )
    for entry in entries:
        if whole_call or (entry.event is not None and entry.event.atomic_batch is not None):
            entry.refuse(problem)


def _make_one_batch(entries: Sequence[_Entry], batch_id: str) -> None:
    """atomic=True: every event joins one batch, refused whole when anything is wrong."""
    sources = {e.source for e in entries}
    reason: Problem | None = None
    bad = next((e for e in entries if e.problems), None)
    if bad is not None:
        reason = Problem("atomicBatch", f"refused as a whole: event[{bad.index}] is invalid")
    elif len(sources) > 1:
        reason = Problem("atomicBatch", "an atomic batch must stay within one source")
    elif any(e.duplicate_of is not None for e in entries):
        reason = Problem("atomicBatch", "an event id appears twice in the batch")
    if reason is not None:
        for entry in entries:
            entry.refuse(reason)
        return
    for entry in entries:
        assert entry.event is not None
        entry.event = entry.event.model_copy(update={"atomic_batch": batch_id})


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


def _resolve(ctx: _Context, source: str, members: Sequence[_Entry]) -> None:
    """Assign ids to id-less CREATEs and resolve refs, against what the store knows."""
    events = [e.event for e in members if e.event is not None]
    idless = [e.event_id for e in events if e.target is Target.RESOURCE and e.id is None]
    refs = [r for e in events for r in _named_refs(e)]
    known_ids, live_refs = (
        ctx.store.read_known(source, idless, refs) if idless or refs else ({}, {})
    )
    assignment = assign_ids(
        events, known_refs=live_refs, known_event_ids=known_ids, new_id=ctx.new_id
    )
    for entry, result in zip(members, assignment.results, strict=True):
        if isinstance(result, EventError):
            entry.refuse(*result.problems)
            continue
        assert entry.event is not None
        entry.refs_used = _refs_used(entry.event, result)
        entry.event = result


def _check_batches(ctx: _Context, members: Sequence[_Entry]) -> None:
    """Each atomic batch: contiguous, whole, able to travel as one bundle; else refused whole."""
    batches: dict[str, list[_Entry]] = defaultdict(list)
    for entry in members:
        if entry.event is not None and entry.event.atomic_batch is not None:
            batches[entry.event.atomic_batch].append(entry)
    caps = ctx.store.settings.plan_caps()
    position = {id(e): i for i, e in enumerate(members)}
    for batch in batches.values():
        positions = [position[id(e)] for e in batch]
        problems: list[Problem] = []
        bad = next((e for e in batch if e.problems), None)
        if bad is not None:
            problems = [Problem("atomicBatch", f"refused as a whole: event[{bad.index}] failed")]
        elif positions != list(range(positions[0], positions[0] + len(batch))):
            problems = [Problem("atomicBatch", "its events must be contiguous in the call")]
        else:
            problems = check_atomic_batch([e.event for e in batch if e.event is not None], caps)
        if problems:
            for entry in batch:
                entry.refuse(*problems)
            continue
        scoped = ctx.new_id()  # batch ids are scoped to one call, so two calls never mix
        for entry in batch:
            assert entry.event is not None
            entry.event = entry.event.model_copy(update={"atomic_batch": scoped})


def _item(entry: _Entry, *, bulk: bool) -> PublishItem:
    event = entry.event
    assert event is not None
    key = key_of(event)
    body = event.to_json()
    defined = (event.ref, str(event.id)) if event.defines_ref and event.ref is not None else None
    return PublishItem(
        event_id=event.event_id,
        body=body,
        entity=str(key),
        resources=tuple(str(r) for r in resources_touched(key)),
        named_group=bulk_group(named_group(event)) if bulk else named_group(event),
        size=len(body.encode("utf-8")),
        assigned_id=event.id if event.generated_id else None,
        atomic_batch=event.atomic_batch,
        ref_defined=defined,
        refs_used=entry.refs_used,
    )


def _dead_letter(entry: _Entry) -> InvalidEntry:
    source = entry.source or INVALID_SOURCE
    error = json.dumps(
        {"problems": [{"field": p.field, "reason": p.reason} for p in entry.problems]},
        separators=(",", ":"),
    )
    try:
        payload = json.dumps(entry.raw, separators=(",", ":"), ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        payload = ""
    return InvalidEntry(source, entry.index, entry.event_id, error, payload)


def _error(entry: _Entry, problems: tuple[Problem, ...]) -> PublishError:
    return PublishError(entry.index, entry.event_id, entry.source, problems)


def _report(
    entries: Sequence[_Entry],
    by_source: Mapping[str, Sequence[_Entry]],
    replies: Mapping[str, Sequence[Any]],
) -> PublishReport:
    report = PublishReport()
    outcome: dict[int, Accepted | Duplicate | PublishError] = {}
    for source, members in by_source.items():
        answers = iter(replies.get(source, ()))
        for entry in members:
            if entry.problems:
                continue
            reply = next(answers)
            assert entry.event is not None
            event_id = entry.event.event_id
            if reply.kind == "ok":
                assigned = entry.event.id if entry.event.generated_id else None
                outcome[entry.index] = Accepted(
                    entry.index, event_id, source, reply.group, assigned
                )
            elif reply.kind == "dup":
                outcome[entry.index] = Duplicate(
                    entry.index, event_id, source, reply.assigned_id or None, reply.status
                )
            else:
                entry.problems = (Problem(reply.field, reply.reason),)
    for entry in entries:
        if entry.problems:
            outcome[entry.index] = _error(entry, entry.problems)
        elif entry.duplicate_of is not None:
            first = outcome.get(entry.duplicate_of)
            assert entry.event is not None
            if isinstance(first, PublishError):
                outcome[entry.index] = _error(entry, first.problems)
            else:
                assigned = first.assigned_id if first is not None else None
                status = first.status if isinstance(first, Duplicate) else "pending"
                outcome[entry.index] = Duplicate(
                    entry.index, entry.event.event_id, entry.event.source_key, assigned, status
                )
    for index in sorted(outcome):
        result = outcome[index]
        if isinstance(result, Accepted):
            report.accepted.append(result)
        elif isinstance(result, Duplicate):
            report.duplicates.append(result)
        else:
            report.errors.append(result)
    return report

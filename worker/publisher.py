"""`publish(events)`: validate, assign ids, resolve refs, and append to each source's ready log.

Costs at most three round trips per call whatever its size (more only to read or compile profiles
not cached or not compiled yet): a pipelined read of the cached profile versions of the sources it
names (`publish_profiles`), a pipelined read of the refs and of the ids of id-less CREATEs it names
(skipped when there are none), then one pipeline holding the `publish.lua` call of every source
and the dead letters. Events off their source's profiles are refused like invalid ones. Invalid
events come back as per-event errors (and are dead-lettered before this returns) while the valid
ones go in. `atomic=True` makes the whole call one atomic batch: refused as a whole, with the
reason, when any event is invalid or the batch could not travel as one bundle.

`mode="bulk"` (backfills) marks the events to travel in bulk requests; they join the same ready
log, in publish order, so the order of an entity's events holds whatever mode each was published
in (a planning round plans one kind of request: docs/pipeline.md). Atomic batches are refused in
bulk mode (nothing is all-or-nothing in a bulk request).

This module runs the steps in order; ids and refs are resolved in `publish_refs`, atomic batches
judged in `publish_batches`, and the result is a `publish_report.PublishReport`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import redis

from worker.domain.events import EventError, Problem, parse_events
from worker.domain.grouping import named_group
from worker.domain.keys import key_of, resources_touched
from worker.ids import new_id as default_new_id
from worker.logging import get_logger
from worker.profile_reader import ProfileReader, reader_for
from worker.publish_batches import check_batches, make_one_batch, refuse_batches_in_bulk
from worker.publish_entry import Entry
from worker.publish_profiles import check_profiles
from worker.publish_refs import resolve_refs
from worker.publish_report import PublishIncompleteError, PublishReport, build_report
from worker.publish_writes import Written, error_code, is_transient, write_parts
from worker.store import InvalidEntry, Store
from worker.store.keys import INVALID_SOURCE
from worker.store.profiles import ProfileCache
from worker.store.records import PublishItem, PublishReply
from worker.store.reopening import publish_reopening

if TYPE_CHECKING:
    from worker.pipeline import Deps

__all__ = ["PublishIncompleteError", "publish"]

_log = get_logger(__name__)

Mode = Literal["bundle", "bulk"]


@dataclass(frozen=True)
class _Context:
    store: Store
    now_ms: Callable[[], int]
    new_id: Callable[[], str]
    profiles: ProfileReader | None


def _context(target: Deps | Store) -> _Context:
    if isinstance(target, Store):
        import time

        reader = reader_for(target.settings)
        return _Context(target, lambda: int(time.time() * 1000), default_new_id, reader)
    return _Context(target.store, target.now_ms, target.new_id, target.profiles)


def publish(
    target: Deps | Store,
    events: Iterable[Mapping[str, Any]],
    *,
    atomic: bool = False,
    mode: Mode = "bundle",
) -> PublishReport:
    """Validate change events and append them to the ready log; never raises for bad events.

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
        PublishIncompleteError: Redis refused part of the call for now (unreachable, out of
            memory, busy, loading, read-only...): it says per source what went in, and
            `remaining` holds the events to publish again (with the event ids they were given),
            a duplicate if it went in after all. An event Redis refuses on its own (a script
            error) is refused and dead-lettered like an invalid one, field `event`.
        redis.RedisError: any other error Redis answered before anything was written.
    """
    return _publish(target, events, atomic=atomic, mode=mode, write=_plain_publish)


def publish_reopening_dead_letters(
    target: Deps | Store, events: Iterable[Mapping[str, Any]]
) -> PublishReport:
    """`publish` for a DLQ replay: an event dead-lettered under its id is reopened (same id, a
    new attempt) rather than answered as a duplicate; any other known event still is one."""
    return _publish(target, events, atomic=False, mode="bundle", write=_reopening_publish)


def _publish(
    target: Deps | Store,
    events: Iterable[Mapping[str, Any]],
    *,
    atomic: bool,
    mode: Mode,
    write: Callable[..., Written],
) -> PublishReport:
    if mode not in ("bundle", "bulk"):
        raise ValueError("mode: must be 'bundle' or 'bulk'")
    entries = [Entry(index, raw) for index, raw in enumerate(events)]
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
    _check_profiles(ctx, entries, now_ms)
    if mode == "bulk":
        refuse_batches_in_bulk(entries, whole_call=atomic)
    elif atomic:
        make_one_batch(entries, ctx.new_id())
    by_source: dict[str, list[Entry]] = defaultdict(list)
    for entry in entries:
        if entry.event is not None and not entry.problems and entry.duplicate_of is None:
            by_source[entry.event.source_key].append(entry)
    items: dict[str, list[PublishItem]] = {}
    try:
        for source, members in by_source.items():
            resolve_refs(ctx.store, source, members, ctx.new_id)
            check_batches(members, ctx.store.settings.plan_caps(), ctx.new_id)
            items[source] = [_item(e, bulk=mode == "bulk") for e in members if not e.problems]
    except redis.RedisError as exc:
        if not is_transient(exc):
            raise
        code = error_code(exc)
        waiting = {e.index for e in entries}
        raise _incomplete(
            entries, PublishReport(), waiting, dict.fromkeys(by_source, code)
        ) from exc
    invalid = [_dead_letter(e) for e in entries if e.problems]
    sent = {s: [e for e in members if not e.problems] for s, members in by_source.items()}
    written = write(ctx.store, {s: batch for s, batch in items.items() if batch}, invalid, now_ms)
    return _settle(ctx.store, entries, sent, written, now_ms)


def _check_profiles(ctx: _Context, entries: Sequence[Entry], now_ms: int) -> None:
    """Refuse what the source's profiles refuse (docs/pipeline.md, "Profiles at publish")."""
    try:
        check_profiles(
            ProfileCache(ctx.store.client), ctx.profiles, ctx.store.settings, entries, now_ms
        )
    except redis.RedisError as exc:
        if not is_transient(exc):
            raise
        waiting = {e.index for e in entries}
        sources = {e.source or INVALID_SOURCE for e in entries}
        raise _incomplete(
            entries, PublishReport(), waiting, dict.fromkeys(sources, error_code(exc))
        ) from exc


def _plain_publish(
    store: Store,
    items: Mapping[str, Sequence[PublishItem]],
    invalid: Sequence[InvalidEntry],
    now_ms: int,
) -> Written:
    return write_parts(store, items, invalid, now_ms)


def _reopening_publish(
    store: Store,
    items: Mapping[str, Sequence[PublishItem]],
    invalid: Sequence[InvalidEntry],
    now_ms: int,
) -> Written:
    replies = publish_reopening(store, items, invalid, now_ms)
    return Written(replies={source: list(batch) for source, batch in replies.items()})


def _settle(
    store: Store,
    entries: Sequence[Entry],
    sent: Mapping[str, Sequence[Entry]],
    written: Written,
    now_ms: int,
) -> PublishReport:
    """The report of what went in; raises PublishIncompleteError when something waits."""
    replies: dict[int, PublishReply] = {}
    waiting = set(written.letters_waiting)
    refused_alone: list[Entry] = []
    for source, members in sent.items():
        answers = written.replies.get(source, [])
        refused = written.refused.get(source, set())
        for position, entry in enumerate(members):
            reply = answers[position] if position < len(answers) else None
            if reply is None:
                waiting.add(entry.index)
                continue
            replies[entry.index] = reply
            if position in refused:
                entry.refuse(Problem(reply.field, reply.reason))
                refused_alone.append(entry)
    errors = dict(written.errors)
    if refused_alone:
        # the store refused these alone: their dead letters (no status mark: their hash may be
        # what Redis refused)
        letters = [_dead_letter(e, mark=False) for e in refused_alone]
        parts = store.publish_parts([], letters, now_ms)
        for entry in refused_alone:
            if entry.index in parts.letters:
                waiting.add(entry.index)
                errors.setdefault(entry.source or INVALID_SOURCE, "dead letter not written")
        _log.error("publish.refused_by_store", events=[e.event_id for e in refused_alone])
    for entry in entries:
        if entry.duplicate_of is not None and entry.duplicate_of in waiting:
            waiting.add(entry.index)
    report = build_report(entries, replies, waiting)
    if waiting:
        raise _incomplete(entries, report, waiting, errors)
    return report


def _incomplete(
    entries: Sequence[Entry],
    report: PublishReport,
    waiting: set[int],
    errors: Mapping[str, str],
) -> PublishIncompleteError:
    counts: dict[str, int] = defaultdict(int)
    remaining: list[Any] = []
    for entry in entries:
        if entry.index in waiting:
            counts[entry.source or INVALID_SOURCE] += 1
            remaining.append(_pinned(entry))
    return PublishIncompleteError(report, remaining, dict(counts), dict(errors))


def _pinned(entry: Entry) -> Any:
    """The raw event to publish again, with the event id it was given in this call (so that a
    second try is a duplicate, never a second event, should the first have gone in)."""
    raw = entry.raw
    event = entry.event
    if isinstance(raw, Mapping) and event is not None and raw.get("eventId") != event.event_id:
        return {**raw, "eventId": event.event_id}
    return raw


def _mark_repeats(entries: Sequence[Entry]) -> None:
    first: dict[tuple[str, str], int] = {}
    for entry in entries:
        if entry.event is None or entry.problems:
            continue
        key = (entry.event.source_key, entry.event.event_id)
        if key in first:
            entry.duplicate_of = first[key]
        else:
            first[key] = entry.index


def _item(entry: Entry, *, bulk: bool) -> PublishItem:
    event = entry.event
    assert event is not None
    key = key_of(event)
    head, content = event.stored_parts()
    defined = (event.ref, str(event.id)) if event.defines_ref and event.ref is not None else None
    return PublishItem(
        event_id=event.event_id,
        head=head,
        content=content,
        entity=str(key),
        resources=tuple(str(r) for r in resources_touched(key)),
        group=named_group(event),
        size=len(head.encode("utf-8")) + len(content.encode("utf-8")),
        bulk=bulk,
        assigned_id=event.id if event.generated_id else None,
        atomic_batch=event.atomic_batch,
        ref_defined=defined,
        refs_used=entry.refs_used,
    )


def _dead_letter(entry: Entry, *, mark: bool = True) -> InvalidEntry:
    source = entry.source or INVALID_SOURCE
    error = json.dumps(
        {"problems": [{"field": p.field, "reason": p.reason} for p in entry.problems]},
        separators=(",", ":"),
    )
    try:
        payload = json.dumps(entry.raw, separators=(",", ":"), ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        payload = ""
    return InvalidEntry(source, entry.index, entry.event_id, error, payload, mark=mark)

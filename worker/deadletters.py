"""The dead-letter tools: list, show, replay and purge the per-source DLQ streams.

Every source has its stream `ingest:{sk}:dlq`; events without a valid source key go to
`ingest:{_invalid}:dlq`. Entries are read in pages (never a whole stream at once) and filtered by
source, stage, error type, event id and time. `list` gives ids, stage, error type and message
only; `show` gives the stored event too (that is its purpose).

A replay publishes the stored event again, optionally corrected, through the normal publish path
(`publisher.publish_reopening_dead_letters`): validation, refs, placement and dedupe as for any
event, except that an event dead-lettered under its id is reopened (same event id, a new attempt).
Only a dead-lettered event can be reopened, checked atomically with the publish, so an applied or
pending event is refused. A replayed entry is removed from its stream (the event's hash counts its
replays in `rp`); if the event fails again it gets a new entry.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Literal

from worker.domain.events import EventError, parse_events
from worker.logging import get_logger
from worker.publisher import publish_reopening_dead_letters
from worker.store import Store
from worker.store.codec import text
from worker.store.keys import INVALID_SOURCE, SourceKeys

if TYPE_CHECKING:
    from worker.pipeline import Deps

__all__ = [
    "Correction",
    "DeadLetter",
    "DlqFilter",
    "ReplayItem",
    "list_dead_letters",
    "pages",
    "purge",
    "replay",
    "show",
]

INVALID_EVENT: Final = "INVALID_EVENT"
"""The error type of an event refused before it was buffered (validation, refs, batches)."""

_log = get_logger("worker.deadletters")


@dataclass(frozen=True)
class DeadLetter:
    """One entry of a dead-letter stream; `event` is the stored payload (shown only by `show`)."""

    source: str
    entry_id: str
    event_id: str | None
    stage: str
    error_type: str
    message: str
    failed_at_ms: int
    reason: str = ""
    attempts: int | None = None
    bundle_id: str | None = None
    task_id: str | None = None
    event: str = field(default="", repr=False)

    def summary(self) -> dict[str, Any]:
        """Ids, stage, error type and message: what `list` prints (never the payload)."""
        return {
            "source": self.source,
            "entryId": self.entry_id,
            "eventId": self.event_id,
            "stage": self.stage,
            "errorType": self.error_type,
            "message": self.message,
            "reason": self.reason or None,
            "failedAt": _iso(self.failed_at_ms),
            "attempts": self.attempts,
            "bundleId": self.bundle_id,
            "taskId": self.task_id,
        }

    def to_dict(self) -> dict[str, Any]:
        """The summary and the stored event (decoded when it is JSON)."""
        try:
            stored: Any = json.loads(self.event) if self.event else None
        except ValueError:
            stored = self.event
        return {**self.summary(), "event": stored}


@dataclass(frozen=True)
class DlqFilter:
    """Which entries a command acts on; every given criterion must hold."""

    sources: tuple[str, ...] = ()
    stage: str | None = None
    error_type: str | None = None
    event_id: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None

    def matches(self, letter: DeadLetter) -> bool:
        """Whether the entry passes every criterion given (time is checked on the stream id)."""
        return (
            (self.stage is None or letter.stage == self.stage)
            and (self.error_type is None or letter.error_type.upper() == self.error_type.upper())
            and (self.event_id is None or letter.event_id == self.event_id)
        )


@dataclass(frozen=True)
class Correction:
    """Corrected data for a replay: a new `data` object, then fields set or removed by path.

    Paths are dotted (`data.name`); a replay never changes the event id, and changes the source
    key only of an event dead-lettered for lacking a valid one.
    """

    data: Mapping[str, Any] | None = None
    sets: tuple[tuple[str, Any], ...] = ()
    unsets: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        """Whether the stored event is replayed as it is."""
        return self.data is None and not self.sets and not self.unsets

    def apply(self, raw: Mapping[str, Any], *, source: str) -> dict[str, Any]:
        """The corrected event (a copy).

        Raises:
            ValueError: a path names the event id, the source key of a valid source, or goes
                through a value that is not an object.
        """
        event: dict[str, Any] = json.loads(json.dumps(raw))
        if self.data is not None:
            event["data"] = dict(self.data)
        for path, value in self.sets:
            parent, name = _walk(event, path, source=source, create=True)
            parent[name] = value
        for path in self.unsets:
            parent, name = _walk(event, path, source=source, create=False)
            parent.pop(name, None)
        return event


def _walk(
    event: dict[str, Any], path: str, *, source: str, create: bool
) -> tuple[dict[str, Any], str]:
    parts = path.split(".")
    if not path or any(not p for p in parts):
        raise ValueError(f"{path!r}: not a dotted field path")
    if parts[0] == "eventId":
        raise ValueError("eventId: a replay keeps the event id")
    if parts[0] == "sourceKey" and source != INVALID_SOURCE:
        raise ValueError("sourceKey: only an event dead-lettered without a valid one can change it")
    node: Any = event
    for part in parts[:-1]:
        if create and isinstance(node, dict) and part not in node:
            node[part] = {}
        node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            raise ValueError(f"{path}: {part} is not an object in the stored event")
    return node, parts[-1]


ReplayOutcome = Literal["replayed", "superseded", "refused", "invalid", "would-replay"]


@dataclass(frozen=True)
class ReplayItem:
    """What a replay did with one event: `detail` is the status or reason, never data."""

    source: str
    event_id: str | None
    outcome: ReplayOutcome
    detail: str = ""
    entry_ids: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "source": self.source,
            "eventId": self.event_id,
            "outcome": self.outcome,
            "detail": self.detail or None,
            "entryIds": list(self.entry_ids),
        }


# -- reading ------------------------------------------------------------------------------------


def _store(target: Deps | Store) -> Store:
    return target if isinstance(target, Store) else target.store


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


def _error_fields(raw: str) -> tuple[str, str]:
    """(error type, message) of a stored error: a Registry error body or publish problems."""
    try:
        error = json.loads(raw) if raw else {}
    except ValueError:
        return "UNKNOWN", ""
    if not isinstance(error, dict):
        return "UNKNOWN", ""
    if "type" in error:
        return str(error["type"]), str(error.get("message") or "")
    problems = error.get("problems")
    if isinstance(problems, list):
        parts = [f"{p.get('field')}: {p.get('reason')}" for p in problems if isinstance(p, dict)]
        return INVALID_EVENT, "; ".join(parts)
    if "field" in error:
        return INVALID_EVENT, f"{error.get('field')}: {error.get('reason')}"
    return "UNKNOWN", ""


def _letter(source: str, entry_id: Any, fields: Mapping[Any, Any]) -> DeadLetter:
    values = {text(k): text(v) for k, v in fields.items()}
    error_type, message = _error_fields(values.get("error", ""))
    entry = text(entry_id)
    failed = values.get("failedAt") or entry.split("-")[0]
    attempts = values.get("attempts")
    return DeadLetter(
        source=source,
        entry_id=entry,
        event_id=values.get("eventId") or None,
        stage=values.get("stage", ""),
        error_type=error_type,
        message=message,
        failed_at_ms=int(failed),
        reason=values.get("reason", ""),
        attempts=int(attempts) if attempts else None,
        bundle_id=values.get("bundleId") or None,
        task_id=values.get("taskId") or None,
        event=values.get("event", ""),
    )


def _sources(store: Store, wanted: Sequence[str]) -> list[str]:
    if wanted:
        return list(dict.fromkeys(wanted))
    return [*sorted(store.sources()), INVALID_SOURCE]


def pages(
    target: Deps | Store, where: DlqFilter | None = None, *, newest_first: bool = False
) -> Iterator[list[DeadLetter]]:
    """The matching entries, source by source, one page of the stream at a time.

    A page is one XRANGE (or XREVRANGE) of `dlq_page_size` entries, filtered: memory holds one
    page whatever the stream's length. Entries added after a newest-first walk started are not
    seen by it (it pages down from where it began), so a replay never meets its own failures.
    """
    store = _store(target)
    size = store.settings.dlq_page_size
    where = where or DlqFilter()
    low = "-" if where.since_ms is None else str(where.since_ms)
    high = "+" if where.until_ms is None else str(where.until_ms)
    for source in _sources(store, where.sources):
        stream = SourceKeys(source).dlq
        start, stop = (high, low) if newest_first else (low, high)
        while True:
            if newest_first:
                page: list[Any] = store.client.xrevrange(stream, start, stop, count=size) or []
            else:
                page = store.client.xrange(stream, start, stop, count=size) or []
            found = [_letter(source, entry_id, fields or {}) for entry_id, fields in page]
            matching = [letter for letter in found if where.matches(letter)]
            if matching:
                yield matching
            if len(page) < size:
                break
            start = "(" + text(page[-1][0])


def scan(target: Deps | Store, where: DlqFilter | None = None) -> Iterator[DeadLetter]:
    """Every matching entry, source by source, oldest first; read a page at a time."""
    for page in pages(target, where):
        yield from page


def list_dead_letters(
    target: Deps | Store, where: DlqFilter | None = None, *, limit: int = 100
) -> list[DeadLetter]:
    """Up to `limit` matching entries, oldest first."""
    found: list[DeadLetter] = []
    for letter in scan(target, where):
        if len(found) >= limit:
            break
        found.append(letter)
    return found


def show(target: Deps | Store, event_id: str, *, sources: Sequence[str] = ()) -> list[DeadLetter]:
    """Every entry of one event (its stored payload included), oldest first."""
    return list(scan(target, DlqFilter(sources=tuple(sources), event_id=event_id)))


# -- writing ------------------------------------------------------------------------------------


def purge(
    target: Deps | Store, where: DlqFilter | None = None, *, dry_run: bool = False
) -> Iterator[DeadLetter]:
    """Remove the matching entries, a page at a time (asks nothing: scripts use it); yields
    each entry removed, or that would be with `dry_run`, once its page is done."""
    store = _store(target)
    removed = 0
    for page in pages(store, where):
        if not dry_run:
            _delete(store, page)
            removed += len(page)
        yield from page
    if removed:
        _log.info("dlq.purged", entries=removed)


def _delete(store: Store, letters: Sequence[DeadLetter]) -> None:
    pipe = store.client.pipeline(transaction=False)
    for letter in letters:
        pipe.xdel(SourceKeys(letter.source).dlq, letter.entry_id)
    pipe.execute()


def replay(
    target: Deps | Store,
    where: DlqFilter | None = None,
    *,
    correction: Correction | None = None,
    dry_run: bool = False,
) -> Iterator[ReplayItem]:
    """Publish the matching dead-lettered events again (the latest entry of each event).

    Reads each stream newest first, a page at a time, so the first entry met of an event is its
    latest: it is replayed. An older entry, on a later page, of an event this run replayed is
    `superseded`: removed, not replayed again (told by the event's `rpl`, stamped at its replay,
    so nothing is kept across pages). Memory holds one page.

    Yields one item per event and page: `replayed` (buffered again, its entries removed),
    `superseded`, `refused` (not dead-lettered any more: applied, pending...), `invalid` (the
    corrected event fails validation; nothing written), or `would-replay` with `dry_run`
    (validated, nothing written; an event with entries on several pages is reported on each).

    Raises:
        ValueError: the correction cannot apply to an event (the message names the field).
    """
    correction = correction or Correction()
    store = _store(target)
    started_ms = _now_ms(target)
    for page in pages(store, where, newest_first=True):
        latest: dict[str, list[DeadLetter]] = {}
        for letter in page:
            if letter.event_id is None:
                detail = "the entry names no event id"
                yield ReplayItem(letter.source, None, "invalid", detail, (letter.entry_id,))
            else:
                latest.setdefault(letter.event_id, []).insert(0, letter)  # oldest first
        replayed_at = {} if dry_run else _replayed_at(store, latest.values())
        for event_id, letters in latest.items():
            when = replayed_at.get(event_id, -1)
            if when >= started_ms and when >= letters[-1].failed_at_ms:
                _delete(store, letters)
                entries = tuple(x.entry_id for x in letters)
                yield ReplayItem(letters[-1].source, event_id, "superseded", "", entries)
            else:
                yield _replay_one(target, letters, correction, dry_run=dry_run)


def _now_ms(target: Deps | Store) -> int:
    """Now on the clock publishing uses (it stamps a replay in the event's `rpl`)."""
    if isinstance(target, Store):
        return int(time.time() * 1000)
    return target.now_ms()


def _replayed_at(store: Store, groups: Iterable[Sequence[DeadLetter]]) -> dict[str, int]:
    """Event id -> when it was last replayed (its hash's `rpl`), for the events that were."""
    chosen = [letters[-1] for letters in groups]
    pipe = store.client.pipeline(transaction=False)
    for letter in chosen:
        pipe.hget(SourceKeys(letter.source).event(letter.event_id or ""), "rpl")
    found: dict[str, int] = {}
    for letter, value in zip(chosen, pipe.execute(), strict=True):
        if value is not None and letter.event_id is not None:
            found[letter.event_id] = int(text(value))
    return found


def _replay_one(
    target: Deps | Store, letters: Sequence[DeadLetter], correction: Correction, *, dry_run: bool
) -> ReplayItem:
    last = letters[-1]
    entries = tuple(letter.entry_id for letter in letters)

    def item(outcome: ReplayOutcome, detail: str = "") -> ReplayItem:
        return ReplayItem(last.source, last.event_id, outcome, detail, entries)

    try:
        stored = json.loads(last.event) if last.event else None
    except ValueError:
        stored = None
    if not isinstance(stored, dict):
        return item("invalid", "the entry holds no stored event")
    raw = correction.apply(stored, source=last.source)
    problems = parse_events([raw], new_event_id=lambda: "unused")[0]
    if isinstance(problems, EventError):
        return item("invalid", "; ".join(str(p) for p in problems.problems))
    if dry_run:
        return item("would-replay")
    report = publish_reopening_dead_letters(target, [raw])
    if report.errors:
        return item("invalid", report.errors[0].reason)
    if report.duplicates:
        return item("refused", f"the event is {report.duplicates[0].status}, not dead-lettered")
    _delete(_store(target), letters)
    _log.info(
        "dlq.replayed", source=last.source, event_id=last.event_id, corrected=not correction.empty
    )
    return item("replayed")

"""What a `publish` call did, per event: accepted (with any id assigned), duplicate, or refused.

The report names events by index, id and source, and refusals by field and reason: never an
event's data, so it is safe to print or log whole.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from worker.domain.events import Problem
from worker.publish_entry import Entry
from worker.store.keys import INVALID_SOURCE
from worker.store.records import PublishReply

__all__ = [
    "Accepted",
    "Duplicate",
    "PublishError",
    "PublishIncompleteError",
    "PublishReport",
    "build_report",
]


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

    def by_source(self) -> dict[str, dict[str, int]]:
        """Per source (`_invalid` for events without a valid one): how many events were accepted,
        were duplicates, were refused."""
        counts: dict[str, dict[str, int]] = {}

        def add(source: str | None, kind: str) -> None:
            tally = counts.setdefault(
                source or INVALID_SOURCE, {"accepted": 0, "duplicates": 0, "errors": 0}
            )
            tally[kind] += 1

        for accepted in self.accepted:
            add(accepted.source_key, "accepted")
        for duplicate in self.duplicates:
            add(duplicate.source_key, "duplicates")
        for error in self.errors:
            add(error.source_key, "errors")
        return counts

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (ids, groups and reasons only)."""
        return {
            "counts": self.counts,
            "accepted": [a.to_dict() for a in self.accepted],
            "duplicates": [d.to_dict() for d in self.duplicates],
            "errors": [e.to_dict() for e in self.errors],
        }


def build_report(
    entries: Sequence[Entry],
    replies: Mapping[int, PublishReply],
    waiting: Collection[int] = (),
) -> PublishReport:
    """The report of a call, from its entries and the store's reply to each entry it was sent
    (by entry index); entries in `waiting` (not stored yet) are left out.

    A repeat of an event within the call reports as its first occurrence did: refused with the
    same problems, or a duplicate of it.
    """
    report = PublishReport()
    outcome: dict[int, Accepted | Duplicate | PublishError] = {}
    for entry in entries:
        reply = replies.get(entry.index)
        if reply is None or entry.problems or entry.index in waiting:
            continue
        assert entry.event is not None
        event_id, source = entry.event.event_id, entry.event.source_key
        if reply.kind == "ok":
            assigned = entry.event.id if entry.event.generated_id else None
            outcome[entry.index] = Accepted(entry.index, event_id, source, reply.group, assigned)
        elif reply.kind == "dup":
            outcome[entry.index] = Duplicate(
                entry.index, event_id, source, reply.assigned_id or None, reply.status
            )
        else:
            entry.problems = (Problem(reply.field, reply.reason),)
    for entry in entries:
        if entry.index in waiting:
            continue
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


def _error(entry: Entry, problems: tuple[Problem, ...]) -> PublishError:
    return PublishError(entry.index, entry.event_id, entry.source, problems)


class PublishIncompleteError(redis.RedisError):
    """Redis refused part of a publish call for now: what went in, per source, and what waits.

    Its message names sources, counts and Redis error codes only; `remaining` holds the events
    to publish again (each with the event id it was given), never shown.
    """

    def __init__(
        self,
        report: PublishReport,
        remaining: list[Any],
        waiting: dict[str, int],
        errors: dict[str, str],
    ) -> None:
        self.report = report
        self.remaining = remaining
        self.waiting = waiting
        """Source -> how many of its events are not stored yet."""
        self.errors = errors
        """Source -> the Redis error code that held them back."""
        super().__init__(self.describe())

    def describe(self) -> str:
        """Per source: what went in, and what waits and why."""
        done = self.report.by_source()
        parts = []
        for source in sorted({*done, *self.waiting}):
            tally = done.get(source, {"accepted": 0, "duplicates": 0, "errors": 0})
            text = (
                f"{source}: {tally['accepted']} accepted, {tally['duplicates']} duplicates, "
                f"{tally['errors']} refused"
            )
            if self.waiting.get(source):
                text += f", {self.waiting[source]} waiting ({self.errors.get(source, 'error')})"
            parts.append(text)
        return "publish incomplete: " + "; ".join(parts)

    def __reduce__(self) -> tuple[Any, ...]:
        # never pickled with the events (a result backend, a pool's error path)
        return (RuntimeError, (self.describe(),))

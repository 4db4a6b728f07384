"""What a `publish` call did, per event: accepted (with any id assigned), duplicate, or refused.

The report names events by index, id and source, and refusals by field and reason: never an
event's data, so it is safe to print or log whole.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from worker.domain.events import Problem
from worker.publish_entry import Entry

__all__ = ["Accepted", "Duplicate", "PublishError", "PublishReport", "build_report"]


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


def build_report(
    entries: Sequence[Entry],
    by_source: Mapping[str, Sequence[Entry]],
    replies: Mapping[str, Sequence[Any]],
) -> PublishReport:
    """The report of a call, from its entries and the store's replies (one per entry sent).

    A repeat of an event within the call reports as its first occurrence did: refused with the
    same problems, or a duplicate of it.
    """
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


def _error(entry: Entry, problems: tuple[Problem, ...]) -> PublishError:
    return PublishError(entry.index, entry.event_id, entry.source, problems)

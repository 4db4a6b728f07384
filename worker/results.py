"""What became of an event, and how much work is left: read-only views over the store.

`event_status(deps, event_id)` finds the event in whichever source holds it (one round trip over
the known sources) and reads its bundle's STALE flag when it is in flight. `backlog(deps)` is the
autoscaling signal: events buffered, events in flight, and polls due, per source; 0 when all
work is done.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Literal

from worker.store import Store
from worker.store.pauses import Pause, PauseStore

if TYPE_CHECKING:
    from worker.flow.deps import Deps

__all__ = ["Backlog", "EventStatus", "SourceBacklog", "backlog", "event_status"]

Status = Literal[
    "pending", "in_flight", "applied", "coalesced", "dead_lettered", "stale", "unknown"
]
_STORED: Final[dict[str, Status]] = {
    "pending": "pending",
    "in_flight": "in_flight",
    "applied": "applied",
    "coalesced": "coalesced",
    "dead_lettered": "dead_lettered",
}


def _store(target: Deps | Store) -> tuple[Store, int]:
    if isinstance(target, Store):
        return target, int(datetime.now(tz=UTC).timestamp() * 1000)
    return target.store, target.now_ms()


def _iso(ms: str | None) -> str | None:
    if not ms:
        return None
    return datetime.fromtimestamp(int(float(ms)) / 1000, tz=UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class EventStatus:
    """One event's state: where it is, which bundle and task carried it, and its outcome.

    `status` is `pending` (buffered), `in_flight`, `stale` (in flight in a task past its poll
    deadline; not a failure), `applied`, `coalesced`, `dead_lettered`, or `unknown`.
    """

    event_id: str
    status: Status
    source_key: str | None = None
    group: str | None = None
    bundle_id: str | None = None
    task_id: str | None = None
    assigned_id: str | None = None
    fate: str | None = None
    error: Any = None
    reason: str | None = None
    bound_to: str | None = None
    attempts: int = 0
    published_at: str | None = None
    updated_at: str | None = None
    finished_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (camelCase, like the rest of the public surface)."""
        return {
            "eventId": self.event_id,
            "status": self.status,
            "sourceKey": self.source_key,
            "group": self.group,
            "bundleId": self.bundle_id,
            "taskId": self.task_id,
            "assignedId": self.assigned_id,
            "fate": self.fate,
            "error": self.error,
            "reason": self.reason,
            "boundTo": self.bound_to,
            "attempts": self.attempts,
            "publishedAt": self.published_at,
            "updatedAt": self.updated_at,
            "finishedAt": self.finished_at,
        }


def event_status(target: Deps | Store, event_id: str, *, source: str | None = None) -> EventStatus:
    """The state of one event, by its id (in `source` only, when given)."""
    store, _ = _store(target)
    sources = [source] if source is not None else store.sources()
    found_in, fields_ = store.find_event(event_id, sources)
    if not found_in:
        return EventStatus(event_id, "unknown")
    status = _STORED.get(fields_.get("st", ""), "unknown")
    bundle_id = fields_.get("bd") or None
    task_id = fields_.get("task") or None
    if status == "in_flight" and bundle_id is not None:
        record = store.bundle_fields(found_in, bundle_id, "stale", "task")
        task_id = record.get("task") or task_id
        if record.get("stale") == "1":
            status = "stale"
    error_text = fields_.get("err") or ""
    try:
        error = json.loads(error_text) if error_text else None
    except ValueError:
        error = error_text
    return EventStatus(
        event_id=event_id,
        status=status,
        source_key=found_in,
        group=fields_.get("g") or None,
        bundle_id=bundle_id,
        task_id=task_id,
        assigned_id=fields_.get("aid") or None,
        fate=fields_.get("fate") or None,
        error=error,
        reason=fields_.get("reason") or None,
        bound_to=fields_.get("bound") or None,
        attempts=int(fields_.get("att") or 0),
        published_at=_iso(fields_.get("pub")),
        updated_at=_iso(fields_.get("upd")),
        finished_at=_iso(fields_.get("fin")),
    )


@dataclass(frozen=True)
class SourceBacklog:
    """One source's work left: events buffered and in flight, polls due, tasks STALE, bundles
    parked for an operator and their events, and the events blocked behind a slow (STALE or
    parked) bundle."""

    buffered: int = 0
    in_flight: int = 0
    """Events in bundles planned, sent or being sent; parked ones excluded."""
    due_polls: int = 0
    stale: int = 0
    parked: int = 0
    bundles: int = 0
    paused: Pause | None = None
    """The source's pause while it holds (submissions wait for its end), else None."""
    parked_events: int = 0
    """Events of parked bundles: they wait for `clinia-ingest parked retry | abandon`."""
    blocked: int = 0
    """Events out of the ready log that wait behind a STALE or parked bundle."""

    @property
    def total(self) -> int:
        """buffered + in flight + parked events + blocked events + due polls: 0 when nothing is
        left to do."""
        waiting = self.parked_events + self.blocked
        return self.buffered + self.in_flight + waiting + self.due_polls

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "total": self.total,
            "buffered": self.buffered,
            "inFlight": self.in_flight,
            "duePolls": self.due_polls,
            "stale": self.stale,
            "parked": self.parked,
            "parkedEvents": self.parked_events,
            "blocked": self.blocked,
            "bundles": self.bundles,
            "paused": _pause_dict(self.paused),
        }


@dataclass(frozen=True)
class Backlog:
    """The backlog of every source, and its total (the autoscaling signal)."""

    sources: dict[str, SourceBacklog] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Everything pending, buffered, in flight or due: 0 when all work is done."""
        return sum(s.total for s in self.sources.values())

    @property
    def buffered(self) -> int:
        """Events buffered, all sources."""
        return sum(s.buffered for s in self.sources.values())

    @property
    def in_flight(self) -> int:
        """Events in flight, all sources."""
        return sum(s.in_flight for s in self.sources.values())

    @property
    def due_polls(self) -> int:
        """Polls due now, all sources."""
        return sum(s.due_polls for s in self.sources.values())

    @property
    def stale(self) -> int:
        """Tasks past their poll deadline, still polled, all sources."""
        return sum(s.stale for s in self.sources.values())

    @property
    def parked(self) -> int:
        """Bundles parked for an operator, all sources."""
        return sum(s.parked for s in self.sources.values())

    @property
    def parked_events(self) -> int:
        """Events of parked bundles, all sources."""
        return sum(s.parked_events for s in self.sources.values())

    @property
    def blocked(self) -> int:
        """Events waiting behind a STALE or parked bundle, all sources."""
        return sum(s.blocked for s in self.sources.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "total": self.total,
            "buffered": self.buffered,
            "inFlight": self.in_flight,
            "duePolls": self.due_polls,
            "stale": self.stale,
            "parked": self.parked,
            "parkedEvents": self.parked_events,
            "blocked": self.blocked,
            "sources": {name: s.to_dict() for name, s in sorted(self.sources.items())},
        }


def _pause_dict(pause: Pause | None) -> dict[str, Any] | None:
    if pause is None:
        return None
    return {"kind": pause.kind, "reason": pause.reason, "until": _iso(str(pause.until_ms))}


def backlog(target: Deps | Store) -> Backlog:
    """Work left per source, from the counters the scripts keep exact, and the pauses that
    hold; two round trips."""
    store, now = _store(target)
    sources = store.sources()
    counters = store.counters(sources, now)
    pauses = PauseStore(store.client).get_many(sources) if sources else {}
    return Backlog(
        {
            source: SourceBacklog(
                buffered=c.buffered,
                in_flight=c.in_flight,
                due_polls=c.due_polls,
                stale=c.stale,
                parked=c.parked,
                parked_events=c.parked_events,
                blocked=c.blocked,
                bundles=c.bundles,
                paused=p if (p := pauses.get(source)) is not None and p.active(now) else None,
            )
            for source, c in counters.items()
        }
    )

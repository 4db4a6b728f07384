"""An operator's way out of a STALE task: `abandon(target, task or bundle id)`.

A task can wait in manual review for days (DESIGN invariant 6); while it does, its bundle keeps its
entity locks and the events behind it wait. Abandoning it claims the record like a poller (fenced:
a poll in progress makes it `busy`, and a poll that started before it can no longer write) and
records every event of it as FAILED with the reason STALE through record.lua: the events are
dead-lettered, the locks released, the bundle leaves the poll schedule, the groups waiting on it
become due and the backlog drops. Only a STALE record can be abandoned. If the review later
applies the task in the Registry, nothing here changes: the dead letters can be replayed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from worker.logging import get_logger
from worker.store import Store
from worker.store.keys import SourceKeys
from worker.store.records import EventOutcomeRecord

if TYPE_CHECKING:
    from worker.pipeline import Deps

__all__ = ["STALE", "AbandonResult", "abandon"]

STALE: Final = "STALE"
"""The reason (and error type) of the dead letters of an abandoned task."""

AbandonCode = Literal["abandoned", "unknown", "not-stale", "busy"]

_log = get_logger("worker.abandon")


@dataclass(frozen=True)
class AbandonResult:
    """What `abandon` did: the code, where, and how many events were dead-lettered."""

    code: AbandonCode
    source: str = ""
    bundle_id: str = ""
    task_id: str = ""
    dead_letters: int = 0
    detail: str = ""

    @property
    def done(self) -> bool:
        """Whether the record was abandoned."""
        return self.code == "abandoned"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (ids and counts only)."""
        return {
            "code": self.code,
            "source": self.source or None,
            "bundleId": self.bundle_id or None,
            "taskId": self.task_id or None,
            "deadLetters": self.dead_letters,
            "detail": self.detail or None,
        }


def _locate(store: Store, ident: str) -> tuple[str, str]:
    """(source, bundle id) of a task id or a bundle id; ("", "") when no source knows it."""
    sources = store.sources()
    pipe = store.client.pipeline(transaction=False)
    for source in sources:
        names = SourceKeys(source)
        pipe.hget(names.task(ident), "bd")
        pipe.exists(names.bundle(ident))
    answers = pipe.execute()
    for index, source in enumerate(sources):
        bundle, exists = answers[2 * index], answers[2 * index + 1]
        if bundle:
            return source, bundle if isinstance(bundle, str) else bundle.decode()
        if exists:
            return source, ident
    return "", ""


def abandon(target: Deps | Store, ident: str, *, now_ms: int | None = None) -> AbandonResult:
    """Abandon the STALE task (or bundle) `ident`: dead-letter its events with the reason STALE
    and release its locks, fenced like every record write."""
    store = target if isinstance(target, Store) else target.store
    if now_ms is None:
        now_ms = _now_ms(target)
    source, bundle_id = _locate(store, ident)
    if not source:
        return AbandonResult("unknown", detail="no source holds this task or bundle id")
    fields = store.bundle_fields(source, bundle_id, "st", "stale", "task")
    task_id = fields.get("task", "")
    if fields.get("st") in (None, "recorded"):
        return AbandonResult("unknown", source, bundle_id, task_id, detail="already recorded")
    if fields.get("stale") != "1":
        state = fields.get("st", "")
        detail = f"the record is {state}, not STALE; only a STALE task can be abandoned"
        return AbandonResult("not-stale", source, bundle_id, task_id, detail=detail)
    claimed = store.claim(source, [bundle_id], now_ms, "poll", due_only=False)[0]
    if claimed.code != "ok" or claimed.fence is None:
        detail = "a poller holds it now; try again" if claimed.code == "busy" else claimed.code
        code: AbandonCode = "busy" if claimed.code == "busy" else "unknown"
        return AbandonResult(code, source, bundle_id, task_id, detail=detail)
    message = f"abandoned by an operator: task {task_id or '?'} stayed PENDING past its deadline"
    error = json.dumps({"type": STALE, "message": message}, separators=(",", ":"))
    outcomes = [
        EventOutcomeRecord(event_id, "FAILED", error=error, reason=STALE)
        for event_id in claimed.event_ids
    ]
    result = store.record(
        source, bundle_id, claimed.fence, outcomes, status="ABANDONED", now_ms=now_ms
    )
    if not result.done:
        return AbandonResult(
            "busy", source, bundle_id, task_id, detail="the record moved on; retry"
        )
    _log.warning(
        "task.abandoned", source=source, bundle=bundle_id, task=task_id, events=result.dead_letters
    )
    return AbandonResult("abandoned", source, bundle_id, task_id, result.dead_letters)


def _now_ms(target: Deps | Store) -> int:
    if isinstance(target, Store):
        import time

        return int(time.time() * 1000)
    return target.now_ms()

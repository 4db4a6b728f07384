"""An operator's way out of a STALE task or a parked bundle: `abandon`, `resolve_parked`,
`list_parked`.

A task can wait in manual review for days (invariant 6), and a parked bundle (an answer
that repeated after a read-back, a layout that cannot be read) waits for a person; while either
does, its bundle keeps its entity holds and the events behind it wait. Both ways out claim the
record (like a poller for a `sent` one, like recovery otherwise: fenced, so a claimant in
progress makes it `busy`, and one that started before can no longer write) and record every
event of it through record.lua, the one step that releases a bundle: its holds go, the bundles
waiting for it are trimmed or become ready, the events blocked behind it go back to the ready
log, the groups waiting on it become due and the backlog drops.

- abandon: every event FAILED, dead-lettered with the reason (and error type) STALE or PARKED.
  If the Registry later applies the task, nothing here changes: the dead letters can be replayed.
- retry (parked bundles only): every event RETRY, back in the ready log under its publish
  position (ahead of every later event on its entities), flagged as sent again after a read-back,
  so a resend that meets ALREADY_EXISTS or NOT_FOUND is told apart by reading the entity.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from worker.logging import get_logger
from worker.store import Store
from worker.store.codec import text
from worker.store.keys import SourceKeys
from worker.store.records import EventOutcomeRecord

if TYPE_CHECKING:
    from worker.pipeline import Deps

__all__ = [
    "PARKED",
    "STALE",
    "AbandonResult",
    "ParkedBundle",
    "ParkedPage",
    "abandon",
    "list_parked",
    "resolve_parked",
]

STALE: Final = "STALE"
"""The reason (and error type) of the dead letters of an abandoned task."""
PARKED: Final = "PARKED"
"""The reason (and error type) of the dead letters of an abandoned parked bundle."""

AbandonCode = Literal[
    "abandoned",
    "retried",
    "would-abandon",
    "would-retry",
    "unknown",
    "not-stale",
    "not-parked",
    "busy",
]
ParkedAction = Literal["retry", "abandon"]

_log = get_logger("worker.abandon")


@dataclass(frozen=True)
class AbandonResult:
    """What was done: the code, where, how many events, how many were dead-lettered."""

    code: AbandonCode
    source: str = ""
    bundle_id: str = ""
    task_id: str = ""
    dead_letters: int = 0
    detail: str = ""
    events: int = 0

    @property
    def done(self) -> bool:
        """Whether the record was released (or, in a dry run, would be)."""
        return self.code in ("abandoned", "retried", "would-abandon", "would-retry")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (ids and counts only)."""
        return {
            "code": self.code,
            "source": self.source or None,
            "bundleId": self.bundle_id or None,
            "taskId": self.task_id or None,
            "events": self.events,
            "deadLetters": self.dead_letters,
            "detail": self.detail or None,
        }


@dataclass(frozen=True)
class ParkedBundle:
    """One parked bundle as an operator sees it (no payload)."""

    source: str
    bundle_id: str
    parked_at_ms: int
    state: str
    task_id: str
    events: int
    blocked: int
    """Events out of the ready log that wait behind it."""
    error: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "source": self.source,
            "bundleId": self.bundle_id,
            "parkedAtMs": self.parked_at_ms,
            "state": self.state,
            "taskId": self.task_id or None,
            "events": self.events,
            "blocked": self.blocked,
            "error": self.error,
        }


@dataclass(frozen=True)
class ParkedPage:
    """A page of parked bundles, oldest first, and how many there are in all."""

    items: tuple[ParkedBundle, ...]
    total: int


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


def _outcomes(
    event_ids: tuple[str, ...], action: ParkedAction, reason: str, message: str
) -> list[EventOutcomeRecord]:
    if action == "retry":
        why = f"sent again by an operator: {message}"
        return [EventOutcomeRecord(e, "RETRY", reason=why, resent=True) for e in event_ids]
    error = json.dumps({"type": reason, "message": message}, separators=(",", ":"))
    return [EventOutcomeRecord(e, "FAILED", error=error, reason=reason) for e in event_ids]


def _release(
    store: Store,
    found: AbandonResult,
    fields: dict[str, str],
    action: ParkedAction,
    reason: str,
    message: str,
    now_ms: int,
) -> AbandonResult:
    """Claim the record and record every event of it (record.lua releases the bundle)."""
    source, bundle_id, task_id = found.source, found.bundle_id, found.task_id
    mode: Literal["recover", "poll"] = "poll" if fields.get("st") == "sent" else "recover"
    claimed = store.claim(source, [bundle_id], now_ms, mode, due_only=False)[0]
    if claimed.code != "ok" or claimed.fence is None:
        detail = "a worker holds it now; try again" if claimed.code == "busy" else claimed.code
        code: AbandonCode = "busy" if claimed.code == "busy" else "unknown"
        return AbandonResult(code, source, bundle_id, task_id, detail=detail)
    outcomes = _outcomes(claimed.event_ids, action, reason, message)
    status = "RETRIED" if action == "retry" else "ABANDONED"
    result = store.record(source, bundle_id, claimed.fence, outcomes, status=status, now_ms=now_ms)
    if not result.done:
        return AbandonResult(
            "busy", source, bundle_id, task_id, detail="the record moved on; retry"
        )
    events = len(claimed.event_ids)
    _log.warning(
        "bundle.abandoned" if action == "abandon" else "bundle.retried",
        source=source,
        bundle=bundle_id,
        task=task_id,
        reason=reason,
        events=events,
    )
    done: AbandonCode = "retried" if action == "retry" else "abandoned"
    return AbandonResult(done, source, bundle_id, task_id, result.dead_letters, events=events)


def _find(store: Store, ident: str) -> tuple[AbandonResult, dict[str, str]]:
    """The record of a task or bundle id (code `unknown` when none is live) and its fields."""
    source, bundle_id = _locate(store, ident)
    if not source:
        return AbandonResult("unknown", detail="no source holds this task or bundle id"), {}
    fields = store.bundle_fields(source, bundle_id, "st", "stale", "park", "task", "err", "ev")
    found = AbandonResult("unknown", source, bundle_id, fields.get("task", ""))
    if fields.get("st") in (None, "recorded"):
        return AbandonResult(
            "unknown", source, bundle_id, found.task_id, detail="already recorded"
        ), {}
    return found, fields


def abandon(target: Deps | Store, ident: str, *, now_ms: int | None = None) -> AbandonResult:
    """Abandon the STALE task (or bundle) `ident`, or a parked bundle: dead-letter its events
    with the reason STALE (or PARKED) and release its holds, fenced like every record write."""
    store = target if isinstance(target, Store) else target.store
    found, fields = _find(store, ident)
    if not fields:
        return found
    if fields.get("park") == "1":
        return resolve_parked(store, ident, "abandon", now_ms=now_ms)
    if fields.get("stale") != "1":
        state = fields.get("st", "")
        detail = (
            f"the record is {state}, not STALE or parked; only a STALE task or a parked bundle "
            "can be abandoned"
        )
        return AbandonResult(
            "not-stale", found.source, found.bundle_id, found.task_id, detail=detail
        )
    message = (
        f"abandoned by an operator: task {found.task_id or '?'} stayed PENDING past its deadline"
    )
    when = _now_ms(target) if now_ms is None else now_ms
    return _release(store, found, fields, "abandon", STALE, message, when)


def resolve_parked(
    target: Deps | Store,
    ident: str,
    action: ParkedAction,
    *,
    dry_run: bool = False,
    now_ms: int | None = None,
) -> AbandonResult:
    """Retry or abandon the parked bundle `ident` (a bundle or task id); `dry_run` only says
    what would be done."""
    store = target if isinstance(target, Store) else target.store
    found, fields = _find(store, ident)
    if not fields:
        return found
    events = len(json.loads(fields.get("ev") or "[]"))
    if fields.get("park") != "1":
        detail = f"the record is {fields.get('st', '')}, not parked"
        return AbandonResult(
            "not-parked", found.source, found.bundle_id, found.task_id, detail=detail
        )
    if dry_run:
        code: AbandonCode = "would-retry" if action == "retry" else "would-abandon"
        return AbandonResult(code, found.source, found.bundle_id, found.task_id, events=events)
    verb = "retried" if action == "retry" else "abandoned"
    message = f"{verb} by an operator: parked ({fields.get('err', '')[:300]})"
    when = _now_ms(target) if now_ms is None else now_ms
    return _release(store, found, fields, action, PARKED, message, when)


def list_parked(
    target: Deps | Store, *, sources: Sequence[str] = (), limit: int, offset: int = 0
) -> ParkedPage:
    """Parked bundles of these sources (all when empty), oldest first, `limit` from `offset`;
    reads at most `offset + limit` entries per source, in two round trips."""
    store = target if isinstance(target, Store) else target.store
    wanted = sorted(set(sources)) if sources else store.sources()
    pipe = store.client.pipeline(transaction=False)
    for source in wanted:
        names = SourceKeys(source)
        pipe.zcard(names.parked)
        pipe.zrange(names.parked, 0, offset + limit - 1, withscores=True)
    answers = pipe.execute()
    total = sum(int(answers[2 * i]) for i in range(len(wanted)))
    entries = sorted(
        (int(score), source, text(member))
        for i, source in enumerate(wanted)
        for member, score in answers[2 * i + 1]
    )[offset : offset + limit]
    for _, source, bundle_id in entries:
        names = SourceKeys(source)
        pipe.hmget(names.bundle(bundle_id), "st", "task", "ev", "err")
        pipe.zcard(names.blocked(bundle_id))
    details = pipe.execute()
    items = []
    for index, (at, source, bundle_id) in enumerate(entries):
        state, task, ev, err = (text(v) if v is not None else "" for v in details[2 * index])
        items.append(
            ParkedBundle(
                source=source,
                bundle_id=bundle_id,
                parked_at_ms=at,
                state=state,
                task_id=task,
                events=len(json.loads(ev or "[]")),
                blocked=int(details[2 * index + 1]),
                error=err,
            )
        )
    return ParkedPage(tuple(items), total)


def _now_ms(target: Deps | Store) -> int:
    if isinstance(target, Store):
        import time

        return int(time.time() * 1000)
    return target.now_ms()

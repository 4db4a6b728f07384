"""What the emulator saw: a bounded log of Registry requests, and in-flight counts per task id.

Tests read these through the admin API to check what a client really sent: how many requests,
with how many operations on which ids, and whether two pollers ever asked about one task at once.
Only ids, routes and statuses are kept: never a key, never data.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from emulator.times import format_time

DEFAULT_MAX_ENTRIES = 10_000
"""How many requests the log keeps before forgetting the oldest, so memory stays bounded."""

_OPERATION_LISTS = ("operations", "resourceOperations", "relationshipOperations")


@dataclass
class RequestRecord:
    """One Registry request as the emulator handled it; filled in while it runs."""

    method: str
    path: str
    at: datetime
    route: str | None = None
    source: str | None = None
    status: int | None = None
    dropped: bool = False
    op_count: int = 0
    ids: tuple[str, ...] = ()
    faults: tuple[str, ...] = ()
    duration_ms: float | None = None

    def to_json(self, seq: int) -> dict[str, Any]:
        """The record as the admin API shows it (camelCase, like the Registry)."""
        return {
            "seq": seq,
            "method": self.method,
            "path": self.path,
            "route": self.route,
            "source": self.source,
            "status": self.status,
            "dropped": self.dropped,
            "opCount": self.op_count,
            "ids": list(self.ids),
            "faults": list(self.faults),
            "at": format_time(self.at),
            "durationMs": self.duration_ms,
        }


@dataclass
class RequestLog:
    """The last `max_entries` Registry requests, oldest first; thread-safe."""

    max_entries: int = DEFAULT_MAX_ENTRIES
    _entries: deque[tuple[int, RequestRecord]] = field(init=False)
    _seq: int = field(default=0, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        if self.max_entries < 1:
            raise ValueError(f"max_entries: must be at least 1, got {self.max_entries}")
        self._entries = deque(maxlen=self.max_entries)

    def append(self, record: RequestRecord) -> None:
        """Add a finished request."""
        with self._lock:
            self._seq += 1
            self._entries.append((self._seq, record))

    def entries(self) -> list[dict[str, Any]]:
        """Every kept request, oldest first, as JSON."""
        with self._lock:
            return [record.to_json(seq) for seq, record in self._entries]

    def clear(self) -> None:
        """Forget every request (the sequence numbers keep growing)."""
        with self._lock:
            self._entries.clear()


class ConcurrencyTracker:
    """Counts requests in flight per key (a task id) and remembers the highest count seen.

    A poller that keeps one poll at a time per task (invariant 6) never pushes a task's
    highest count above 1; two pollers racing do.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: dict[str, int] = {}
        self._highest: dict[str, int] = {}

    @contextmanager
    def track(self, key: str) -> Iterator[None]:
        """Count one request on `key` for as long as the block runs."""
        with self._lock:
            now = self._current.get(key, 0) + 1
            self._current[key] = now
            self._highest[key] = max(self._highest.get(key, 0), now)
        try:
            yield
        finally:
            with self._lock:
                left = self._current[key] - 1
                if left:
                    self._current[key] = left
                else:
                    del self._current[key]

    def highest(self) -> dict[str, int]:
        """The highest number of simultaneous requests seen, per key."""
        with self._lock:
            return dict(self._highest)

    def current(self) -> dict[str, int]:
        """The requests in flight right now, per key (keys with none are left out)."""
        with self._lock:
            return dict(self._current)

    def clear(self) -> None:
        """Forget the highest counts (requests in flight stay counted)."""
        with self._lock:
            self._highest = dict(self._current)


def summarise_operations(body: Any) -> tuple[int, tuple[str, ...]]:
    """The number of operations in a bulk or bundle body and the ids they touch, once each.

    Reads `operations` (bulk) and `resourceOperations` / `relationshipOperations` (bundle); in
    each operation, the payload under the lowercased action: its `id`, `from.id` and `to.id`.
    A body of any other shape counts as no operation.
    """
    if not isinstance(body, dict):
        return 0, ()
    ids: dict[str, None] = {}
    count = 0
    for key in _OPERATION_LISTS:
        operations = body.get(key)
        if not isinstance(operations, list):
            continue
        for operation in operations:
            count += 1
            if isinstance(operation, dict):
                action = operation.get("action")
                payload = operation.get(action.lower()) if isinstance(action, str) else None
                ids.update(dict.fromkeys(payload_ids(payload)))
    return count, tuple(ids)


def payload_ids(payload: Any) -> tuple[str, ...]:
    """The ids one write payload touches: its `id`, `from.id` and `to.id`, when present."""
    if not isinstance(payload, dict):
        return ()
    found: list[str] = []
    if isinstance(payload.get("id"), str):
        found.append(payload["id"])
    for end in ("from", "to"):
        endpoint = payload.get(end)
        if isinstance(endpoint, dict) and isinstance(endpoint.get("id"), str):
            found.append(endpoint["id"])
    return tuple(found)

"""What the benchmark reads from Redis itself: the slowest calls, and the planners' counters.

- Slow calls: the private redis-server logs every command slower than 1 ms in its SLOWLOG
  (`slowlog-log-slower-than 1000`); the benchmark empties it before a measured window and reads
  it every second of the window, keeping the slowest entry. Redis runs one command at a time,
  so the slowest call is how long everything else waited at once (the fanin target: no single
  script call over 5 ms).
- Reads and plans: the scheduler keeps, per source, in its stats hash `ingest:{<sourceKey>}:stats`,
  `read` (events read by planners) and `planned` (events planned into bundles, re-plans counted
  again). A scheduler that keeps no such counters gives None: the benchmark prints n/a.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any, Final

from worker.store.keys import SourceKeys

if TYPE_CHECKING:
    import redis

SLOWER_THAN_US: Final = 1000
SLOWLOG_LENGTH: Final = 4096
DRAIN_EVERY_S: Final = 1.0
READ_FIELD: Final = "read"
PLANNED_FIELD: Final = "planned"


@dataclass(frozen=True)
class SlowCall:
    """One SLOWLOG entry: the command (EVALSHA's script by its sha prefix) and how long."""

    command: str
    duration_us: int

    @property
    def duration_ms(self) -> float:
        return self.duration_us / 1000


class SlowCallWatch:
    """The slowest call of a window. SLOWLOG keeps only its latest entries, so the watch reads it
    as the window goes (`poll`, at most once a second), keeping the slowest entry seen; entries
    are told apart by their ids, which only grow, so none is counted twice or missed (a second
    holds far fewer than `SLOWLOG_LENGTH` calls of over 1 ms)."""

    def __init__(self, client: redis.Redis, *, every_s: float = DRAIN_EVERY_S) -> None:
        self._client = client
        self._every_s = every_s
        self._read_at = 0.0
        self._last_id = -1
        self.slowest: SlowCall | None = None

    def start(self) -> None:
        """Log every command over 1 ms, and forget what was logged before (a window starts)."""
        self._client.config_set("slowlog-log-slower-than", SLOWER_THAN_US)
        self._client.config_set("slowlog-max-len", SLOWLOG_LENGTH)
        self._client.slowlog_reset()
        self._read_at = time.monotonic()
        self._last_id = -1
        self.slowest = None

    def poll(self) -> None:
        """Read the log when the last reading is a second old or more."""
        if time.monotonic() - self._read_at >= self._every_s:
            self.drain()

    def drain(self) -> SlowCall | None:
        """Read the entries logged since the last reading, keep the slowest; the slowest so far."""
        entries: list[dict[str, Any]] = self._client.slowlog_get(SLOWLOG_LENGTH) or []
        self._read_at = time.monotonic()
        fresh = [entry for entry in entries if int(entry["id"]) > self._last_id]
        if fresh:
            self._last_id = max(int(entry["id"]) for entry in fresh)
            top = max(fresh, key=lambda entry: int(entry["duration"]))
            if self.slowest is None or int(top["duration"]) > self.slowest.duration_us:
                self.slowest = SlowCall(_command_name(top.get("command")), int(top["duration"]))
        return self.slowest


def _command_name(command: object) -> str:
    text = command.decode("utf-8", "replace") if isinstance(command, bytes) else str(command)
    words = text.split()
    if not words:
        return "?"
    name = words[0].upper()
    if name in {"EVALSHA", "EVALSHA_RO"} and len(words) > 1:
        sha = words[1].lower()
        return f"{name} {script_names().get(sha, sha[:12])}"
    return name


@cache
def script_names() -> dict[str, str]:
    """The worker's Lua scripts by SHA-1, so a slow EVALSHA names its script (`record.lua`).

    Each file's SHA is taken alone and behind the shared `_lib.lua`, as `worker.store.scripts`
    sends them; a script sent another way shows as its SHA's first characters.
    """
    folder = resources.files("worker.store").joinpath("lua")
    files = [f for f in folder.iterdir() if f.name.endswith(".lua")]
    library = next((f.read_text("utf-8") for f in files if f.name == "_lib.lua"), "")
    names: dict[str, str] = {}
    for file in files:
        body = file.read_text("utf-8")
        for text in (body, f"{library}\n{body}"):
            names[hashlib.sha1(text.encode("utf-8")).hexdigest()] = file.name  # noqa: S324
    return names


@dataclass(frozen=True)
class PlannerCounts:
    """Events read and planned by the planners, summed over a run's sources."""

    read: int
    planned: int


def planner_counts(client: redis.Redis, sources: Iterable[str]) -> PlannerCounts | None:
    """The `read` and `planned` counters of the sources, summed; None when a source lacks one
    (a scheduler that does not count them)."""
    pipe = client.pipeline(transaction=False)
    names = list(sources)
    for source in names:
        pipe.hmget(SourceKeys(source).stats, READ_FIELD, PLANNED_FIELD)
    read = planned = 0
    for values in pipe.execute():
        if values[0] is None or values[1] is None:
            return None
        read += int(values[0])
        planned += int(values[1])
    return PlannerCounts(read, planned) if names else None

"""CPU time of the benchmark's processes, read from /proc, by kind of process.

Events per second move by tens of per cent with the machine's load; CPU-microseconds per event
move far less, so the benchmark prints both. Each process's user + system time comes from
`/proc/<pid>/stat` (fields 14 and 15, in clock ticks of `SC_CLK_TCK`), read once before the
measured window and once after: a process's CPU in the window is the difference, and one that
started in the window counts from zero. A process gone by the second reading is not counted
(pool processes live as long as their worker). Linux only, no extra dependency.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bench.memory import descendants

CLOCK_TICKS_PER_S: Final = os.sysconf("SC_CLK_TCK")
US_PER_S: Final = 1_000_000
UTIME_FIELD: Final = 14
"""`utime`, 1-based as proc(5) numbers the fields; `stime` follows it."""
COMM_END: Final = ")"

KINDS: Final = ("pool", "celery_main", "redis", "emulator")
"""The kinds of process measured from /proc; the publisher is the benchmark itself."""


def parse_cpu_ticks(stat: str) -> int:
    """utime + stime, in clock ticks, from the text of `/proc/<pid>/stat`.

    The command name (field 2) sits in parentheses and may hold spaces or parentheses itself,
    so the fields are counted from the last closing parenthesis.

    Raises:
        ValueError: the text is not a stat line.
    """
    end = stat.rfind(COMM_END)
    if end < 0:
        raise ValueError("not a /proc/<pid>/stat line: no command name")
    rest = stat[end + 1 :].split()  # rest[0] is field 3 (the state)
    first = UTIME_FIELD - 3
    if len(rest) < first + 2:
        raise ValueError("not a /proc/<pid>/stat line: too few fields")
    return int(rest[first]) + int(rest[first + 1])


def cpu_seconds(pid: int) -> float | None:
    """The process's CPU time so far (user + system) in seconds; None when it has gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    return parse_cpu_ticks(stat) / CLOCK_TICKS_PER_S


@dataclass(frozen=True)
class Roles:
    """Which processes play which part: Celery main processes (their children are the pool),
    redis-server and the emulator (each with whatever it forks)."""

    celery_mains: tuple[int, ...]
    redis: int
    emulator: int

    def pids(self) -> dict[str, list[int]]:
        """Every process now running, by kind."""
        pool = [child for main in self.celery_mains for child in descendants(main)]
        return {
            "pool": pool,
            "celery_main": list(self.celery_mains),
            "redis": [self.redis, *descendants(self.redis)],
            "emulator": [self.emulator, *descendants(self.emulator)],
        }


CpuReading = dict[str, dict[int, float]]
"""Per kind, per pid: CPU seconds so far."""


def read_cpu(roles: Roles) -> CpuReading:
    """The CPU time of every process of every kind, now."""
    return {kind: _read(pids) for kind, pids in roles.pids().items()}


def _read(pids: Iterable[int]) -> dict[int, float]:
    return {pid: seconds for pid in pids if (seconds := cpu_seconds(pid)) is not None}


def cpu_used(before: CpuReading, after: CpuReading) -> dict[str, float]:
    """CPU seconds per kind between two readings (a process new in `after` counts from 0)."""
    used: dict[str, float] = {}
    for kind in KINDS:
        start = before.get(kind, {})
        used[kind] = sum(
            max(0.0, seconds - start.get(pid, 0.0)) for pid, seconds in after.get(kind, {}).items()
        )
    return used


def per_event_us(seconds: Mapping[str, float], events: int) -> dict[str, float]:
    """CPU-microseconds per event, per kind."""
    if events < 1:
        raise ValueError("events: at least 1")
    return {kind: US_PER_S * value / events for kind, value in seconds.items()}

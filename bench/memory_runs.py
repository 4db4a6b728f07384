"""Worker memory against the backlog: RSS with a small and a large backlog, small and large events.

Worker memory must not follow the backlog, in events or in bytes (a round bounded in events
only would hold 2,000 events of 400 KB: 800 MB). For each event size asked
(`--memory-payloads`, 1 KB and 50 KB by default), the benchmark drains a backlog of
`--memory-small` events (10,000) and one of `--memory-large` (200,000) through fresh, warm
workers of ours, and compares the peak RSS of one
worker process: flat within 20% is the target. Redis and the emulator are emptied before each
run, since 200,000 events of 50 KB are 10 GB in Redis; a pair that would not fit in the memory
this machine has available is skipped, saying so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bench.designs import Ours
from bench.runs import Run, crew, measure
from bench.shapes import make_stream
from bench.stack import Stack

BYTES_PER_EVENT: Final = 3000
"""What one small event costs, about, in Redis (its hash, buffer entries) and the benchmark."""
REDIS_PAYLOAD_FACTOR: Final = 1.3
"""Redis holds each event's body once, plus its allocator's overhead."""
USABLE_SHARE: Final = 0.8
"""The share of the memory available that a run may plan to take."""
GIB: Final = 1024**3
FLAT_WITHIN: Final = 0.20


@dataclass(frozen=True)
class MemoryPair:
    """The small and the large backlog at one event size; or why they were not run."""

    payload_bytes: int
    small: Run | None = None
    large: Run | None = None
    skipped: str | None = None

    @property
    def growth(self) -> float | None:
        """How much the peak one-process RSS grew from the small backlog to the large one."""
        if self.small is None or self.large is None or not self.small.peak_process_kib:
            return None
        small = self.small.peak_process_kib
        return (self.large.peak_process_kib - small) / small


def memory_needed(events: int, payload_bytes: int) -> int:
    """Bytes a backlog of `events` of `payload_bytes` takes, about, in Redis and here."""
    return int(events * (REDIS_PAYLOAD_FACTOR * payload_bytes + BYTES_PER_EVENT))


def memory_available(meminfo: Path = Path("/proc/meminfo")) -> int:
    """`MemAvailable` in bytes (what can be taken without swapping)."""
    for line in meminfo.read_text(encoding="ascii").splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise ValueError(f"{meminfo}: no MemAvailable line")


def memory_runs(stack: Stack) -> list[MemoryPair]:
    """Every pair asked for, each run on fresh warm workers and an emptied Redis."""
    options = stack.options
    pairs = []
    for payload in options.memory_payloads:
        need, available = memory_needed(options.memory_large, payload), memory_available()
        if need > USABLE_SHARE * available:
            reason = (f"needs about {need / GIB:.1f} GiB, {available / GIB:.1f} GiB available; "
                      "choose a smaller --memory-large or --memory-payloads")  # fmt: skip
            stack.progress(f"memory, {payload} B events: skipped: {reason}")
            pairs.append(MemoryPair(payload, skipped=reason))
            continue
        runs = []
        for size in (options.memory_small, options.memory_large):
            stack.reset()
            tag = f"mem{payload}-{size}"
            stream = make_stream(options.stream, tag=tag, events=size, seed=options.seed,
                                 payload_bytes=payload)  # fmt: skip
            with crew(stack, Ours(), warm_tag=f"warm-{tag}") as team:
                label = f"ours, backlog of {size}, {_size(payload)} events"
                runs.append(measure(stack, team, stream, label))
            del stream
        stack.reset()
        pairs.append(MemoryPair(payload, small=runs[0], large=runs[1]))
    return pairs


def _size(payload_bytes: int) -> str:
    return f"{payload_bytes / 1024:g} KB" if payload_bytes >= 1024 else f"{payload_bytes} B"

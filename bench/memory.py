"""Resident memory of worker processes, sampled from /proc while a run goes on.

A thread reads `VmRSS` of every worker's main process and of all its descendants (the pool
children) every few tens of milliseconds, and keeps two peaks: the largest single process, and the
largest sum over all of them at one sampling. Linux only, no extra dependency.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType

SAMPLE_INTERVAL_S = 0.05
KIB_PER_MIB = 1024


def rss_kib(pid: int) -> int | None:
    """The process's resident set in KiB, or None when it has gone (or is a zombie)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="ascii", errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None


def descendants(pid: int) -> Iterator[int]:
    """Every process below `pid`, depth first, as /proc lists them now."""
    try:
        threads = list(Path(f"/proc/{pid}/task").iterdir())
    except (FileNotFoundError, ProcessLookupError):
        return
    for thread in threads:
        try:
            children = (thread / "children").read_text(encoding="ascii").split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        for child in children:
            yield int(child)
            yield from descendants(int(child))


class RssSampler:
    """Samples the RSS of `roots()` and their descendants until stopped; a context manager."""

    def __init__(
        self, roots: Callable[[], list[int]], interval_s: float = SAMPLE_INTERVAL_S
    ) -> None:
        self._roots = roots
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self.peak_process_kib = 0
        """The largest RSS of one process seen."""
        self.peak_total_kib = 0
        """The largest sum of the RSS of every process, at one sampling."""
        self.peak_by_pid: dict[int, int] = {}
        """The largest RSS seen of each process."""
        self.samples = 0

    def sample(self) -> None:
        """Read every process once and update the peaks."""
        pids = set()
        for root in self._roots():
            pids.add(root)
            pids.update(descendants(root))
        found = {pid: size for pid in pids if (size := rss_kib(pid)) is not None}
        for pid, size in found.items():
            self.peak_by_pid[pid] = max(self.peak_by_pid.get(pid, 0), size)
        sizes = list(found.values())
        if sizes:
            self.peak_process_kib = max(self.peak_process_kib, *sizes)
            self.peak_total_kib = max(self.peak_total_kib, sum(sizes))
            self.samples += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self._interval_s)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

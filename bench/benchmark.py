"""One benchmark: the stack started, each design measured on the same stream, everything stopped.

In order, against the emulator in its own process (synchronous answers) and a private
redis-server: one task per event, then ours, each on K warm workers (`bench.runs`); on ours'
warm workers, the latency run at half its peak (`bench.latency`); then, when asked, the memory
runs (`bench.memory_runs`). The hot stream's chain bound is computed first (`bench.chain`). A
stream with failing events (`faulty`) is also run by ours without them, on the same warm
workers, so that what the failures cost in requests is measured, not guessed.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from bench.chain import ChainBound, chain_bound
from bench.designs import Naive, Ours
from bench.latency import Latency, latency_run
from bench.memory_runs import MemoryPair, memory_runs
from bench.options import PROFILE, Options
from bench.runs import Run, crew, measure
from bench.shapes import make_stream, without_failures
from bench.stack import BenchError, EmulatorProcess, Stack


@dataclass
class Report:
    """Everything one benchmark measured, for the table and the JSON."""

    options: Options
    linger_ms: int
    providers: int
    offices: int
    sources: int
    chain: ChainBound | None
    naive: Run
    ours: Run
    latency: Latency | None
    memory: list[MemoryPair] = field(default_factory=list)
    failing: int = 0
    """Events of the measured stream that fail one by one (dead-lettered, exactly those)."""
    ours_clean: Run | None = None
    """Ours on the same stream without its failing events, when it has some."""
    cpus: int = 0
    load_start: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_end: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def ratio(self) -> float:
        """Ours / one task per event, events per second."""
        base = self.naive.events_per_s
        return self.ours.events_per_s / base if base > 0 else 0.0

    @property
    def worker_cpu_ratio(self) -> float | None:
        """Ours / one task per event, worker CPU (pool + main) per event."""
        base = self.naive.worker_cpu_us
        return self.ours.worker_cpu_us / base if base > 0 else None

    @property
    def extra_requests_per_failing_event(self) -> float | None:
        """Ours' Registry requests beyond those of the stream without its failing events, per
        failing event."""
        if self.ours_clean is None or self.failing == 0:
            return None
        return (self.ours.requests - self.ours_clean.requests) / self.failing


def run_benchmark(options: Options, progress: Callable[[str], None]) -> Report:
    """Start the stack, run every measured run, stop everything; their figures.

    Raises:
        BenchError: a run lost events, left another Registry than the oracle's, or passed its
            deadline. StackError: a process did not start or exited.
    """
    from worker.demo_stack import PrivateRedis
    from worker.producer import open_store
    from worker.settings import IngestSettings

    if shutil.which("redis-server") is None:
        raise BenchError("the benchmark needs `redis-server` on the PATH (Redis 7)")
    key = secrets.token_urlsafe(24)
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="clinia-ingest-bench-") as tmp:
        directory = Path(tmp)
        redis_server = PrivateRedis(directory)
        try:
            emulator = EmulatorProcess(directory, key)
            try:
                emulator.configure({"bundle_failures": options.bundle_failures})
                settings = IngestSettings(
                    base_url=emulator.url,
                    api_key=SecretStr(key),
                    redis_url=SecretStr(redis_server.url),
                    **PROFILE,
                )
                store = open_store(settings)
                stack = Stack(options, settings, redis_server, emulator, store, directory,
                              progress)  # fmt: skip
                progress(
                    f"Benchmark: --stream {options.stream}, {options.events} events, "
                    f"{options.workers} worker process(es) per design (one pool process each); "
                    f"Redis on {redis_server.url}, the emulator on {emulator.url} (synchronous "
                    f"answers, a refused bundle reports {_reports(options)}); {os.cpu_count()} "
                    f"CPUs, load average {load_start[0]:.2f}"
                )
                try:
                    report = _runs(stack)
                finally:
                    store.client.close()
            finally:
                emulator.stop()
        finally:
            redis_server.stop()
    report.cpus = os.cpu_count() or 0
    report.load_start = load_start
    report.load_end = os.getloadavg()
    return report


def _reports(options: Options) -> str:
    """What a refused bundle reports, under the emulator's `bundle_failures`."""
    if options.bundle_failures == "all":
        return "every failing operation"
    return "its first failing operation"


def _runs(stack: Stack) -> Report:
    options = stack.options

    naive_stream = make_stream(options.stream, tag="naive", events=options.events,
                               seed=options.seed, payload_bytes=options.payload_bytes)  # fmt: skip
    shape = (naive_stream.providers, naive_stream.offices, len(naive_stream.sources))
    ours_stream = make_stream(options.stream, tag="ours", events=options.events,
                              seed=options.seed, payload_bytes=options.payload_bytes)  # fmt: skip
    chain = None
    if options.stream == "hot":
        stack.progress("chain bound: planning every event of each source at once ...")
        chain = chain_bound(ours_stream.events)
        stack.progress(f"  longest chain {chain.longest_chain} bundles ({chain.source})")
    with crew(stack, Naive(), warm_tag="warm-naive") as team:
        naive = measure(stack, team, naive_stream, "one task per event")
    del naive_stream
    failing = len(ours_stream.failing)
    with crew(stack, Ours(), warm_tag="warm-ours") as team:
        ours = measure(stack, team, ours_stream, "ours")
        ours_clean = None
        if failing:
            clean = without_failures(ours_stream, tag="clean")
            ours_clean = measure(stack, team, clean, "ours, without the failing events")
        del ours_stream
        latency = latency_run(stack, team, ours.events_per_s) if options.latency_s > 0 else None
    memory = memory_runs(stack) if options.memory else []
    return Report(
        options=options,
        linger_ms=stack.settings.linger_ms,
        providers=shape[0],
        offices=shape[1],
        sources=shape[2],
        chain=chain,
        naive=naive,
        ours=ours,
        latency=latency,
        memory=memory,
        failing=failing,
        ours_clean=ours_clean,
    )

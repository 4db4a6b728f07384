"""`python -m bench.run`: DESIGN section 7's figures, ours side by side with one task per event.

In one run, on the same generated stream, against the emulator in its own process and a private
redis-server: the one-task-per-event baseline, then ours with its workers running while the
stream is published, then ours on a backlog of N and of 5N events published before the workers
start (peak worker RSS for each, to show memory does not follow the backlog). It prints a table
and one line per DESIGN target, and exits 0 whatever the figures; 1 when something broke (a run
lost events, a process did not start, a deadline passed), with the reason.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

from pydantic import SecretStr

from bench.report import Report, render
from bench.runs import (
    Bench,
    BenchError,
    Options,
    run_baseline,
    run_ours_backlog,
    run_ours_live,
)
from bench.stack import EmulatorProcess

DEFAULT_EVENTS: Final = 5000
EVENTS_PER_GROUP: Final = 250
"""Enough events per group that a flush carries many of them: bundles fill."""
DEFAULT_WORKERS: Final = 2
PUBLISH_BATCH: Final = 1000
BACKLOG_FACTOR: Final = 5
RUN_TIMEOUT_S: Final = 300.0

DECODE_CACHE_PER_READ_LIMIT: Final = 4
"""A pool process caches this many times `flush_read_limit` decoded events (worker.flow.deps)."""

PROFILE: Final[dict[str, Any]] = {
    "linger_ms": 100,
    "max_age_ms": 1000,
    "tick_interval_ms": 50,
}
"""Our settings where they differ from the defaults: a group is due 100 ms after its last event
(not 1 s) and at most 1 s after its first (not 5 s), and the ticker looks every 50 ms (not 250),
so the tail of a run waits less; everything else is the product's defaults."""


def main(argv: Sequence[str] | None = None, out: Callable[[str], None] = print) -> int:
    """Run the benchmark and return the process exit code."""
    options = parse_options(argv)
    try:
        report = run_benchmark(options, out)
    except RuntimeError as exc:  # BenchError, StackError: a run or a process broke
        out(f"bench: {exc}")
        return 1
    for line in render(report):
        out(line)
    return 0


def parse_options(argv: Sequence[str] | None) -> Options:
    """The options the command line asks for (argparse exits 2 on a usage error)."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description="Our pipeline side by side with one Celery task per event (DESIGN 7).",
    )
    # fmt: off
    add = parser.add_argument
    add("--events", type=_positive, default=DEFAULT_EVENTS,
        help=f"events in the stream (default {DEFAULT_EVENTS})")
    add("--groups", type=_positive, default=None,
        help=f"groups in the stream (default: one per {EVENTS_PER_GROUP} events)")
    add("--workers", type=_positive, default=DEFAULT_WORKERS,
        help=f"worker processes of each design (default {DEFAULT_WORKERS})")
    add("--publish-batch", type=_positive, default=PUBLISH_BATCH,
        help=f"events per publish call (default {PUBLISH_BATCH})")
    add("--backlog-factor", type=_positive, default=BACKLOG_FACTOR,
        help=f"the large backlog is this many times --events (default {BACKLOG_FACTOR})")
    add("--seed", type=int, default=7, help="the stream's seed (default 7)")
    add("--timeout-s", type=float, default=RUN_TIMEOUT_S,
        help=f"deadline of each run, in seconds (default {RUN_TIMEOUT_S:.0f})")
    # fmt: on
    args = parser.parse_args(argv)
    groups = args.groups or max(1, args.events // EVENTS_PER_GROUP)
    return Options(
        events=args.events,
        groups=groups,
        workers=args.workers,
        publish_batch=args.publish_batch,
        backlog_factor=args.backlog_factor,
        seed=args.seed,
        timeout_s=args.timeout_s,
    )


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def run_benchmark(options: Options, out: Callable[[str], None] = print) -> Report:
    """Start the stack, run the four measured runs, stop everything; their figures."""
    from worker.demo_stack import PrivateRedis
    from worker.producer import open_store
    from worker.settings import IngestSettings

    if shutil.which("redis-server") is None:
        raise BenchError("the benchmark needs `redis-server` on the PATH (Redis 7)")
    key = secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="clinia-ingest-bench-") as tmp:
        directory = Path(tmp)
        redis_server = PrivateRedis(directory)
        try:
            emulator = EmulatorProcess(directory, key)
            try:
                settings = IngestSettings(
                    base_url=emulator.url,
                    api_key=SecretStr(key),
                    redis_url=SecretStr(redis_server.url),
                    **PROFILE,
                )
                store = open_store(settings)
                out(
                    f"Benchmark: {options.events} events over {options.groups} groups; "
                    f"{options.workers} worker process(es) per design, one pool process each; "
                    f"Redis on {redis_server.url}, the emulator in its own process on "
                    f"{emulator.url} (synchronous answers); {os.cpu_count()} CPUs, load average "
                    f"{os.getloadavg()[0]:.2f} at the start"
                )
                bench = Bench(options, settings, emulator, store, directory, out)
                try:
                    return _runs(bench)
                finally:
                    store.client.close()
            finally:
                emulator.stop()
        finally:
            redis_server.stop()


def _runs(bench: Bench) -> Report:
    options = bench.options
    large = options.events * options.backlog_factor
    return Report(
        baseline=run_baseline(bench),
        ours=run_ours_live(bench),
        backlog_small=run_ours_backlog(bench, "backlog-small", options.events),
        backlog_large=run_ours_backlog(bench, "backlog-large", large),
        workers=options.workers,
        decode_cache=DECODE_CACHE_PER_READ_LIMIT * bench.settings.flush_read_limit,
    )


if __name__ == "__main__":
    sys.exit(main())

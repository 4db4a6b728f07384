"""The measured runs: one task per event, ours publishing while it drains, ours on a backlog.

Each run takes the same stream under its own tag (so its own sources and event ids), measures wall
time until the work is done (a count in Redis, or our backlog at 0, polled with a deadline), the
Registry requests the emulator served meanwhile and the peak RSS of the worker processes, then
reads the Registry back and compares it with the one-by-one oracle. A run that loses or changes
anything raises `BenchError`: its figures would mean nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import worker
from bench import baseline
from bench.memory import RssSampler
from bench.stack import BaselineWorkers, EmulatorProcess, wait_ready, worker_pids
from bench.stream import Event, State, make_stream, normalized, oracle, sources_of, with_ids
from worker.demo_stack import StackError, Workers, wait_until
from worker.results import backlog

if TYPE_CHECKING:
    from worker.settings import IngestSettings
    from worker.store import Store

OURS_PREFIX = "demo"
"""The name prefix of our worker processes, as `worker.demo_stack.Workers` starts them."""


class BenchError(RuntimeError):
    """Something broke: a run lost events, failed writes, or did not finish in time."""


@dataclass(frozen=True)
class Options:
    """What to run: the stream's size and shape, the worker count, and the deadlines."""

    events: int
    groups: int
    workers: int
    publish_batch: int
    backlog_factor: int
    seed: int
    timeout_s: float


@dataclass
class Bench:
    """What every run shares: the options, our settings, the emulator, our store, a directory."""

    options: Options
    settings: IngestSettings
    emulator: EmulatorProcess
    store: Store
    directory: Path
    out: Callable[[str], None]


@dataclass
class Run:
    """The figures of one run, and the Registry it left beside the oracle's."""

    label: str
    events: list[Event]
    seconds: float
    requests: int
    peak_process_kib: int
    peak_total_kib: int
    expected: dict[str, State]
    actual: dict[str, State]

    @property
    def events_per_s(self) -> float:
        return len(self.events) / self.seconds if self.seconds > 0 else 0.0

    @property
    def requests_per_100(self) -> float:
        return 100 * self.requests / len(self.events)

    @property
    def matches_oracle(self) -> bool:
        return self.actual == self.expected


def run_baseline(bench: Bench) -> Run:
    """One task per event: K baseline workers, one task sent per event, until all are counted."""
    options = bench.options
    tag = "baseline"
    events = make_stream(tag=tag, events=options.events, groups=options.groups, seed=options.seed)
    app = baseline.create_app(bench.settings)
    redis = bench.store.client
    redis.delete(baseline.DONE_KEY, baseline.FAILED_KEY)
    bench.out(f"one task per event: {options.workers} worker(s), {len(events)} tasks ...")
    workers = BaselineWorkers(bench.settings, _directory(bench, tag), count=options.workers)
    try:
        wait_ready(_broker(bench), workers, prefix="baseline")
        with _measured(bench, workers) as measure:
            assigned = baseline.enqueue(app, events, options.workers)
            _wait(
                bench,
                workers,
                lambda: _counted(bench) >= len(events),
                what=lambda: f"the baseline applied {_counted(bench)} of {len(events)} events",
            )
    finally:
        workers.stop()
        app.close()
    failed = [str(line) for line in redis.lrange(baseline.FAILED_KEY, 0, 4)]
    if failed:
        count = redis.llen(baseline.FAILED_KEY)
        raise BenchError(f"the baseline failed {count} writes, e.g. {'; '.join(failed)}")
    return _checked(bench, "one task per event", tag, with_ids(events, assigned), measure)


def run_ours_live(bench: Bench) -> Run:
    """Ours: K workers running, the stream published in batches, until the backlog is 0."""
    options = bench.options
    tag = "ours"
    events = make_stream(tag=tag, events=options.events, groups=options.groups, seed=options.seed)
    bench.out(f"ours: {options.workers} worker(s), {len(events)} events published as they run ...")
    workers = Workers(bench.settings, _directory(bench, tag), count=options.workers, concurrency=1)
    try:
        wait_ready(_broker(bench), workers, prefix=OURS_PREFIX)
        with _measured(bench, workers) as measure:
            assigned = _publish(bench, events)
            _wait_drained(bench, workers)
    finally:
        workers.stop()
    return _checked(bench, "ours, publishing live", tag, with_ids(events, assigned), measure)


def run_ours_backlog(bench: Bench, tag: str, size: int) -> Run:
    """Ours on a backlog: `size` events over the same groups, published before K workers start.

    Time and RSS count from the workers' start, their start-up included (work begins before a
    worker could answer a ping, so readiness cannot start the clock).
    """
    options = bench.options
    events = make_stream(tag=tag, events=size, groups=options.groups, seed=options.seed)
    bench.out(f"ours: a backlog of {size} events, then {options.workers} worker(s) ...")
    assigned = _publish(bench, events)
    before = bench.emulator.requests_so_far()
    started = time.monotonic()
    workers = Workers(bench.settings, _directory(bench, tag), count=options.workers, concurrency=1)
    try:
        with RssSampler(lambda: worker_pids(workers)) as rss:
            _wait_drained(bench, workers)
            seconds = time.monotonic() - started
    finally:
        workers.stop()
    measure = _Measure(seconds, bench.emulator.requests_so_far() - before, rss)
    label = f"ours, backlog of {size}"
    return _checked(bench, label, tag, with_ids(events, assigned), measure)


@dataclass
class _Measure:
    seconds: float = 0.0
    requests: int = 0
    rss: RssSampler | None = None


@contextmanager
def _measured(bench: Bench, workers: Workers) -> Iterator[_Measure]:
    """Time the block, count the Registry requests it caused, sample the workers' RSS."""
    measure = _Measure()
    before = bench.emulator.requests_so_far()
    with RssSampler(lambda: worker_pids(workers)) as rss:
        started = time.monotonic()
        yield measure
        measure.seconds = time.monotonic() - started
    measure.rss = rss
    measure.requests = bench.emulator.requests_so_far() - before


def _checked(bench: Bench, label: str, tag: str, events: list[Event], measure: _Measure) -> Run:
    """The run's figures, once the Registry it left is found equal to the oracle's."""
    expected = oracle(events)
    sources = sorted(set(sources_of(tag)) | set(expected))
    expected = {source: expected.get(source) or normalized({}) for source in sources}
    actual = {source: bench.emulator.state(source) for source in sources}
    problems = _differences(expected, actual)
    if problems:
        raise BenchError(
            f"{label}: the final Registry state differs from the one-by-one oracle's: "
            + "; ".join(problems)
        )
    rss = measure.rss
    run = Run(
        label=label,
        events=events,
        seconds=measure.seconds,
        requests=measure.requests,
        peak_process_kib=rss.peak_process_kib if rss else 0,
        peak_total_kib=rss.peak_total_kib if rss else 0,
        expected=expected,
        actual=actual,
    )
    bench.out(f"  done in {run.seconds:.2f} s, {run.requests} Registry requests; state as expected")
    return run


def _differences(expected: dict[str, State], actual: dict[str, State]) -> list[str]:
    """What differs, by source and kind, naming ids only (records carry data)."""
    problems = []
    for source in sorted(set(expected) | set(actual)):
        for kind in ("resources", "relationships"):
            want = {r["id"]: r for r in expected.get(source, {}).get(kind, [])}
            got = {r["id"]: r for r in actual.get(source, {}).get(kind, [])}
            missing = sorted(set(want) - set(got))
            extra = sorted(set(got) - set(want))
            changed = sorted(i for i in set(want) & set(got) if want[i] != got[i])
            for what, ids in (("missing", missing), ("unexpected", extra), ("differ", changed)):
                if ids:
                    problems.append(f"{source} {kind}: {len(ids)} {what}, e.g. {ids[:3]}")
    return problems


def _publish(bench: Bench, events: Sequence[Event]) -> dict[str, str]:
    """Publish in batches through `worker.publish`; the ids assigned to id-less CREATEs."""
    assigned: dict[str, str] = {}
    size = bench.options.publish_batch
    for start in range(0, len(events), size):
        report = worker.publish(events[start : start + size], store=bench.store)
        if report.errors:
            first = report.errors[0]
            raise BenchError(
                f"{len(report.errors)} events refused at publish, e.g. event {first.event_id}: "
                f"{first.field}: {first.reason}"
            )
        if report.duplicates:
            raise BenchError(f"{len(report.duplicates)} events were already published")
        assigned.update(report.assigned_ids)
    return assigned


def _wait_drained(bench: Bench, workers: Workers) -> None:
    _wait(
        bench,
        workers,
        lambda: backlog(bench.store).total == 0,
        what=lambda: f"the backlog is still {backlog(bench.store).to_dict()}",
    )


def _wait(
    bench: Bench, workers: Workers, done: Callable[[], bool], *, what: Callable[[], str]
) -> None:
    """Poll `done` while every process lives; past the deadline, say where it stands."""
    try:
        wait_until(
            lambda: bool(workers.alive() and bench.emulator.alive()) and done(),
            timeout_s=bench.options.timeout_s,
            what="the run did not finish",
        )
    except StackError as exc:
        if "did not finish" not in str(exc):
            raise  # a process exited: its message says which, with its log
        tails = "\n".join(
            f"--- {path.name} ---\n{path.read_text(encoding='utf-8', errors='replace')[-1500:]}"
            for _, path in workers.processes
        )
        raise BenchError(f"{exc}: {what()}\n{tails}") from None


def _counted(bench: Bench) -> int:
    """Baseline tasks finished so far, done or failed."""
    redis = bench.store.client
    done = redis.get(baseline.DONE_KEY)
    return int(done or 0) + int(redis.llen(baseline.FAILED_KEY))


def _broker(bench: Bench) -> str:
    return bench.settings.effective_broker_url.get_secret_value()


def _directory(bench: Bench, tag: str) -> Path:
    path = bench.directory / tag
    path.mkdir(exist_ok=True)
    return path

"""The measured runs: each design's workers started and warm, then the clock on the whole stream.

Both designs go through the same steps (`measure`): their K workers are started and warmed on a
small stream under its own tag (drained), told to stop consuming (`bench.consuming`), the whole
measured stream is published (ours) or enqueued (one task per event), the clock starts, the
workers consume again, and the clock stops when the work is done: ours when its backlog is 0,
the naive design when its done counter reaches the stream's length, polled with a deadline.
Around that window the benchmark reads every process's CPU time (`bench.procstat`), the Registry
requests the emulator served, the workers' peak RSS, Redis' slowest call and the planners'
counters. Then it reads the Registry back and compares it with the one-by-one oracle: a run that
lost or changed anything raises `BenchError`, and no figure of it is printed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from bench.consuming import Consumers
from bench.designs import Crew, Design
from bench.memory import RssSampler
from bench.procstat import Roles, cpu_used, read_cpu
from bench.redis_probe import (
    PlannerCounts,
    SlowCall,
    SlowCallWatch,
    planner_counts,
)
from bench.shapes import Stream, make_stream
from bench.stack import BenchError, Stack, wait_ready, worker_pids
from bench.stream import State, normalized, one_by_one, with_ids
from worker.demo_stack import StackError, wait_until

POLL_INTERVAL_S = 0.05


@dataclass
class Run:
    """The figures of one measured run, taken once its Registry matched the oracle's."""

    label: str
    design: str
    events: int
    seconds: float
    requests: int
    cpu_s: dict[str, float]
    """CPU seconds in the window, per kind of process (`procstat.KINDS`)."""
    publish_cpu_s: float
    """The benchmark's own CPU while it published or enqueued the stream (before the clock)."""
    publish_s: float
    peak_process_kib: int
    peak_total_kib: int
    slowest: SlowCall | None
    counts: PlannerCounts | None
    sources: list[str] = field(default_factory=list)

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    @property
    def requests_per_1000(self) -> float:
        return 1000 * self.requests / self.events

    def cpu_us(self, kind: str) -> float:
        """CPU-microseconds per event of one kind of process (`publisher` included)."""
        seconds = self.publish_cpu_s if kind == "publisher" else self.cpu_s.get(kind, 0.0)
        return 1_000_000 * seconds / self.events

    @property
    def worker_cpu_us(self) -> float:
        """The workers' CPU per event: pool processes and Celery main processes."""
        return self.cpu_us("pool") + self.cpu_us("celery_main")

    @property
    def reads_per_event(self) -> float | None:
        return self.counts.read / self.events if self.counts else None

    @property
    def planned_per_event(self) -> float | None:
        return self.counts.planned / self.events if self.counts else None


@contextmanager
def crew(stack: Stack, design: Design, *, warm_tag: str) -> Iterator[Crew]:
    """K workers of the design, started, ready and warm (a small stream drained); stopped after."""
    options = stack.options
    workers = design.start(stack)
    consumers: Consumers | None = None
    try:
        names = wait_ready(stack.broker_url, workers, prefix=design.prefix)
        consumers = Consumers(stack.broker_url, design.queues(names))
        team = Crew(design, workers, consumers)
        warm = make_stream(options.stream, tag=warm_tag, events=options.warmup_events,
                           seed=options.seed + 1)  # fmt: skip
        stack.progress(f"  {design.label}: {len(names)} worker(s) ready; warming them up ...")
        design.reset_count(stack)
        assigned = design.submit(stack, warm.events)
        _wait(stack, team, lambda: design.done(stack, len(warm.events)), design.where)
        design.check_failures(stack, warm)
        check_oracle(stack, f"{design.label} (warm-up)", warm, assigned)
        yield team
    finally:
        if consumers is not None:
            consumers.close()
        workers.stop()


def measure(stack: Stack, team: Crew, stream: Stream, label: str) -> Run:
    """One measured window on warm workers: pause, submit, clock, resume, drained, checked."""
    design = team.design
    stack.progress(f"{label}: {len(stream.events)} events, {len(team.workers.processes)} "
                   "worker(s) ...")  # fmt: skip
    team.consumers.pause()
    design.reset_count(stack)
    started_cpu = time.process_time()
    started_publish = time.monotonic()
    assigned = design.submit(stack, stream.events)
    publish_s = time.monotonic() - started_publish
    publish_cpu_s = time.process_time() - started_cpu
    stack.progress(f"  {'published' if design.name == 'ours' else 'enqueued'} in "
                   f"{publish_s:.1f} s; consuming ...")  # fmt: skip
    roles = Roles(tuple(worker_pids(team.workers)), stack.redis_pid, stack.emulator_pid)
    requests_before = stack.emulator.requests_so_far()
    watch = SlowCallWatch(stack.client)
    watch.start()
    cpu_before = read_cpu(roles)
    with RssSampler(lambda: worker_pids(team.workers)) as rss:
        started = time.monotonic()
        team.consumers.resume()
        _wait(stack, team, lambda: design.done(stack, len(stream.events)), design.where, watch)
        seconds = time.monotonic() - started
        cpu_after = read_cpu(roles)
    requests = stack.emulator.requests_so_far() - requests_before
    slowest = watch.drain()
    try:
        design.check_failures(stack, stream)
    except BenchError as exc:  # the workers' logs say what went wrong (a lost connection...)
        raise BenchError(f"{exc}\n{_log_tails(team)}") from None
    check_oracle(stack, label, stream, assigned)
    run = Run(
        label=label,
        design=design.name,
        events=len(stream.events),
        seconds=seconds,
        requests=requests,
        cpu_s=cpu_used(cpu_before, cpu_after),
        publish_cpu_s=publish_cpu_s,
        publish_s=publish_s,
        peak_process_kib=rss.peak_process_kib,
        peak_total_kib=rss.peak_total_kib,
        slowest=slowest,
        counts=planner_counts(stack.client, stream.sources) if design.name == "ours" else None,
        sources=list(stream.sources),
    )
    stack.progress(f"  done in {seconds:.2f} s ({run.events_per_s:.1f} events/s), {requests} "
                   "Registry requests; the Registry equals the oracle's")  # fmt: skip
    return run


def check_oracle(stack: Stack, label: str, stream: Stream, assigned: dict[str, str]) -> None:
    """Raise BenchError unless every source of the stream holds what the oracle says, and the
    events that fail one by one are exactly those the stream was built to fail."""
    run = one_by_one(with_ids(stream.events, assigned))
    surprises = sorted(set(run.failed) ^ stream.failing)
    if surprises:
        first = surprises[0]
        why = run.failed.get(first, "it applies one by one, but the stream means it to fail")
        raise BenchError(
            f"{label}: {len(surprises)} events fail one by one other than the stream says, "
            f"e.g. event {first}: {why}"
        )
    expected = run.states
    sources = sorted(set(stream.sources) | set(expected))
    want = {source: expected.get(source) or normalized({}) for source in sources}
    got = {source: stack.emulator.state(source) for source in sources}
    problems = differences(want, got)
    if problems:
        raise BenchError(
            f"{label}: the final Registry state differs from the one-by-one oracle's: "
            + "; ".join(problems)
        )


def differences(expected: dict[str, State], actual: dict[str, State]) -> list[str]:
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


def wait_drained(stack: Stack, team: Crew) -> None:
    """Wait, with the deadline, until the design says the work is done (ours: backlog 0)."""
    _wait(stack, team, lambda: team.design.done(stack, 0), team.design.where)


def _wait(
    stack: Stack,
    team: Crew,
    done: Callable[[], bool],
    where: Callable[[], str],
    watch: SlowCallWatch | None = None,
) -> None:
    def finished() -> bool:
        if watch is not None:
            watch.poll()
        return bool(team.workers.alive() and stack.emulator.alive()) and done()

    try:
        wait_until(
            finished,
            timeout_s=stack.options.timeout_s,
            what="the run did not finish",
        )
    except StackError as exc:
        if "did not finish" not in str(exc):
            raise  # a process exited: its message says which, with its log
        slow = watch.drain() if watch is not None else None
        slowest = f"; slowest Redis call so far {slow.command} {slow.duration_ms:.1f} ms" if slow \
            else ""  # fmt: skip
        raise BenchError(f"{exc}: {where()}{slowest}\n{_log_tails(team)}") from None


def _log_tails(team: Crew) -> str:
    """The end of each worker's log, for a run that failed."""
    return "\n".join(
        f"--- {path.name} ---\n{path.read_text(encoding='utf-8', errors='replace')[-1500:]}"
        for _, path in team.workers.processes
    )

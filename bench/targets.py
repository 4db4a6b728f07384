"""The targets of the scheduler, judged on one benchmark's figures: met, not met, or not
measured, always with the figures (shown without flattering rounding: a figure that must stay
above a target is rounded down, one that must stay below it is rounded up)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from bench.benchmark import Report
    from bench.memory_runs import MemoryPair

WIDE_RATIO: Final = 20.0
HOT_RATIO: Final = 5.0
FAULTY_RATIO: Final = 10.0
REQUESTS_PER_100: Final = 2.0
FAULTY_REQUESTS_PER_100: Final = 4.0
READS_PER_EVENT: Final = 1.5
WORKER_CPU_SHARE: Final = 1 / 20
LATENCY_SLACK_MS: Final = 1000
SLOWEST_CALL_MS: Final = 5.0
MEMORY_FLAT_WITHIN: Final = 0.20


@dataclass(frozen=True)
class Target:
    """One target's verdict: met (True), not met (False) or not measured (None), and why."""

    name: str
    met: bool | None
    detail: str

    def line(self) -> str:
        verdict = {True: "met", False: "not met", None: "not measured"}[self.met]
        return f"Target: {self.name}: {verdict} ({self.detail})"


def floor(value: float, digits: int = 2) -> str:
    """`value` rounded down to `digits` decimals, for a figure that must reach a target."""
    scale = 10**digits
    return f"{math.floor(value * scale) / scale:.{digits}f}"


def ceil(value: float, digits: int = 2) -> str:
    """`value` rounded up to `digits` decimals, for a figure that must stay under a target."""
    scale = 10**digits
    return f"{math.ceil(value * scale) / scale:.{digits}f}"


def targets(report: Report) -> list[Target]:
    """Every target that applies to the report's stream and runs."""
    shape = report.options.stream
    found: list[Target] = []
    if shape == "wide":
        found += [
            _throughput(report, WIDE_RATIO),
            _requests(report, REQUESTS_PER_100),
            _worker_cpu(report),
        ]
    elif shape == "hot":
        found.append(_throughput(report, HOT_RATIO))
    elif shape == "fanin":
        found.append(_slowest_call(report))
    elif shape == "faulty":
        found += [
            _throughput(report, FAULTY_RATIO),
            _requests(report, FAULTY_REQUESTS_PER_100),
            _none_dead_lettered(report),
        ]
    found.append(_reads(report))
    if report.latency is not None:
        found.append(_latency(report))
    found += [_memory(pair) for pair in report.memory]
    return found


def _throughput(report: Report, ratio: float) -> Target:
    ours, naive = report.ours, report.naive
    detail = (f"{floor(report.ratio)}x: {ours.events_per_s:.1f} vs {naive.events_per_s:.1f} "
              "events/s")  # fmt: skip
    if report.chain is not None:
        detail += (f"; the chain bound is {report.chain.events_per_round_trip:.1f} events per "
                   "sequential round trip")  # fmt: skip
    return Target(f"throughput at least {ratio:.0f}x one task per event", report.ratio >= ratio,
                  detail)  # fmt: skip


def _requests(report: Report, most: float) -> Target:
    per_100 = report.ours.requests_per_1000 / 10
    return Target(
        f"at most {most:.0f} Registry requests per 100 events",
        per_100 <= most,
        f"{ceil(per_100)} per 100 events; one task per event: "
        f"{report.naive.requests_per_1000 / 10:.2f}",
    )


def _none_dead_lettered(report: Report) -> Target:
    """Checked before any figure is printed (`Design.check_failures`): a run that dead-lettered
    an event that applies one by one, or missed one that fails, raised and printed nothing."""
    return Target(
        "no event that succeeds one by one dead-lettered",
        True,
        f"{report.failing} dead-lettered, exactly the events that fail one by one; "
        f"the other {report.ours.events - report.failing} applied or coalesced",
    )


def _worker_cpu(report: Report) -> Target:
    share = report.worker_cpu_ratio
    name = "worker CPU per event at most 1/20 of one task per event's"
    if share is None:
        return Target(name, None, "one task per event used no measurable CPU")
    if share <= 0:
        return Target(name, True, "ours used no measurable worker CPU")
    relation = f"1/{floor(1 / share, 1)} of it" if share < 1 else f"{ceil(share)} times it"
    return Target(
        name,
        share <= WORKER_CPU_SHARE,
        f"{report.ours.worker_cpu_us:.1f} vs {report.naive.worker_cpu_us:.1f} CPU-us per event: "
        f"ours is {relation}",
    )


def _reads(report: Report) -> Target:
    name = f"each event read and planned at most {READS_PER_EVENT} times"
    reads, planned = report.ours.reads_per_event, report.ours.planned_per_event
    if reads is None or planned is None:
        return Target(name, None, "n/a: the scheduler keeps no `read`/`planned` counters")
    return Target(
        name,
        max(reads, planned) <= READS_PER_EVENT,
        f"{ceil(reads)} reads and {ceil(planned)} plans per event",
    )


def _latency(report: Report) -> Target:
    latency = report.latency
    assert latency is not None  # checked by the caller
    bound = report.linger_ms + LATENCY_SLACK_MS
    return Target(
        f"p99 from publish to outcome at most linger + 1 s ({bound} ms)",
        latency.p99_ms <= bound,
        f"p99 {latency.p99_ms:.0f} ms, p50 {latency.p50_ms:.0f} ms, at {latency.rate_per_s:.0f} "
        "events/s",
    )


def _slowest_call(report: Report) -> Target:
    slow = report.ours.slowest
    name = f"no single Redis call over {SLOWEST_CALL_MS:.0f} ms while draining"
    if slow is None:
        return Target(name, True, "none over 1 ms")
    return Target(name, slow.duration_ms <= SLOWEST_CALL_MS,
                  f"slowest {slow.command}: {slow.duration_ms:.1f} ms")  # fmt: skip


def _memory(pair: MemoryPair) -> Target:
    name = f"worker RSS flat within 20% with the backlog, {pair.payload_bytes} B events"
    growth = pair.growth
    if pair.skipped is not None or growth is None or pair.small is None or pair.large is None:
        return Target(name, None, pair.skipped or "not run")
    return Target(
        name,
        growth <= MEMORY_FLAT_WITHIN,
        f"peak RSS of one worker process {pair.large.peak_process_kib / 1024:.1f} MiB with "
        f"{pair.large.events} events vs {pair.small.peak_process_kib / 1024:.1f} MiB with "
        f"{pair.small.events}: {100 * growth:+.1f}%",
    )

"""The figures the benchmark prints: one table, the ratio, and a line per DESIGN target.

It reports; it does not judge: each target line says met or not met with its figures, and the
benchmark exits 0 either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from bench.runs import Run

THROUGHPUT_TARGET: Final = 20.0
"""DESIGN 7: end-to-end throughput at least this many times the one-task-per-event design."""
REQUESTS_TARGET: Final = 2.0
"""DESIGN 7: at most this many Registry requests per 100 events when bundles fill."""
MEMORY_TOLERANCE: Final = 0.10
"""Growth of the peak RSS of one worker process, from a backlog of N to one of 5N, still read as
flat: the sampling and the allocator move a process's RSS by a few per cent from run to run."""
KIB_PER_MIB: Final = 1024

HEADER: Final = (
    f"{'run':<28}{'events':>8}{'seconds':>10}{'events/s':>11}{'requests':>10}"
    f"{'per 100 ev':>12}{'peak RSS 1 proc MiB':>21}{'peak RSS all MiB':>18}"
)


@dataclass(frozen=True)
class Report:
    """Every run of one benchmark: the baseline, ours live, ours on a backlog of N and of 5N."""

    baseline: Run
    ours: Run
    backlog_small: Run
    backlog_large: Run
    workers: int
    decode_cache: int
    """Decoded events one pool process keeps at most (a bounded cache, see `memory_note`)."""

    @property
    def runs(self) -> list[Run]:
        return [self.baseline, self.ours, self.backlog_small, self.backlog_large]

    @property
    def ratio(self) -> float:
        base = self.baseline.events_per_s
        return self.ours.events_per_s / base if base > 0 else 0.0

    @property
    def memory_growth(self) -> float:
        """The relative change of the peak one-process RSS from the small to the large backlog."""
        small = self.backlog_small.peak_process_kib
        return (self.backlog_large.peak_process_kib - small) / small if small else 0.0


NOTE: Final = (
    "(seconds: until the work is done, publishing included; backlog rows: from the workers' "
    "start, start-up included)"
)


def render(report: Report) -> list[str]:
    """Everything the benchmark prints at the end: the table, then the verdicts."""
    return [*table(report), NOTE, "", *verdicts(report)]


def table(report: Report) -> list[str]:
    """The table of figures, one row per run."""
    rows = [HEADER]
    for run in report.runs:
        rows.append(
            f"{run.label:<28}{len(run.events):>8}{run.seconds:>10.2f}{run.events_per_s:>11.1f}"
            f"{run.requests:>10}{run.requests_per_100:>12.2f}"
            f"{run.peak_process_kib / KIB_PER_MIB:>21.1f}{run.peak_total_kib / KIB_PER_MIB:>18.1f}"
        )
    return rows


def verdicts(report: Report) -> list[str]:
    """The ratio, and one line per DESIGN target: met or not met, with its figures."""
    ours, base = report.ours, report.baseline
    small, large = report.backlog_small, report.backlog_large
    per_request = len(ours.events) / ours.requests if ours.requests else 0.0
    return [
        f"Throughput ratio, ours / one task per event: {report.ratio:.1f}x",
        f"Target: throughput at least {THROUGHPUT_TARGET:.0f}x one task per event: "
        f"{_met(report.ratio >= THROUGHPUT_TARGET)} ({report.ratio:.1f}x: "
        f"{ours.events_per_s:.1f} vs {base.events_per_s:.1f} events/s)",
        f"Target: at most {REQUESTS_TARGET:.0f} Registry requests per 100 events: "
        f"{_met(ours.requests_per_100 <= REQUESTS_TARGET)} ({ours.requests_per_100:.2f} per 100 "
        f"events, {per_request:.1f} events per request; one task per event: "
        f"{base.requests_per_100:.2f})",
        f"Target: worker memory does not grow with the backlog: "
        f"{_met(report.memory_growth <= MEMORY_TOLERANCE)} (peak RSS of one worker process "
        f"{large.peak_process_kib / KIB_PER_MIB:.1f} MiB with a backlog of {len(large.events)} vs "
        f"{small.peak_process_kib / KIB_PER_MIB:.1f} MiB with {len(small.events)}: "
        f"{100 * report.memory_growth:+.1f}%)",
        *memory_note(report),
        "Final Registry state equals the one-by-one oracle's: "
        + ", ".join(f"{run.label} {'yes' if run.matches_oracle else 'NO'}" for run in report.runs),
    ]


def memory_note(report: Report) -> list[str]:
    """Why the smaller backlog may show less memory: a bounded cache it does not fill.

    A pool process keeps the events it decoded in a cache of fixed size (so a flush that reads a
    buffer again decodes nothing twice). A backlog that gives each process fewer events than the
    cache holds leaves it part empty, and the comparison then measures the cache filling up, not
    memory following the backlog; from the size on where it fills, the peak stays put.
    """
    small = len(report.backlog_small.events)
    if small / report.workers >= report.decode_cache:
        return []
    enough = report.decode_cache * report.workers
    return [
        f"  (note: a pool process caches up to {report.decode_cache} decoded events; a backlog of "
        f"{small} over {report.workers} process(es) leaves that cache part empty, so the "
        f"difference includes it filling up; with --events {enough} or more both backlogs fill it)"
    ]


def _met(condition: bool) -> str:
    return "met" if condition else "not met"

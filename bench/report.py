"""What the benchmark prints on stdout: two tables, the figures around them, a line per target.

It reports; it does not judge the exit status: each target line says met, not met or not
measured, with its figures, and the benchmark exits 0 either way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from bench.targets import ceil, floor, targets

if TYPE_CHECKING:
    from bench.benchmark import Report
    from bench.runs import Run

KIB_PER_MIB: Final = 1024
RUN_WIDTH: Final = 40

RUN_HEADER: Final = (
    f"{'run':<{RUN_WIDTH}}{'events':>8}{'seconds':>9}{'events/s':>10}{'requests':>10}"
    f"{'req/1000 ev':>13}{'reads/ev':>10}{'plans/ev':>10}{'RSS 1 proc MiB':>16}{'RSS all MiB':>13}"
)
CPU_HEADER: Final = (
    f"{'CPU-us per event':<{RUN_WIDTH}}{'pool':>9}{'celery main':>13}{'workers':>9}{'redis':>8}"
    f"{'emulator':>10}{'publisher':>11}{'events/s':>10}"
)
NOTE: Final = (
    "(seconds: from consuming resumed on warm workers, the whole stream already published, "
    "until the work is done; workers = pool + celery main; publisher = the benchmark's own CPU "
    "while it published, before the clock)"
)


def render(report: Report) -> list[str]:
    """Everything printed at the end, in order."""
    clean = [report.ours_clean] if report.ours_clean is not None else []
    runs = [report.naive, report.ours, *clean] + [
        run for pair in report.memory for run in (pair.small, pair.large) if run is not None
    ]
    return [
        _stream_line(report),
        "",
        RUN_HEADER,
        *(_run_row(run) for run in runs),
        "",
        CPU_HEADER,
        *(_cpu_row(run) for run in runs),
        NOTE,
        "",
        *figures(report),
        "",
        *(target.line() for target in targets(report)),
    ]


def _stream_line(report: Report) -> str:
    options = report.options
    size = f"events of about {options.payload_bytes} B" if options.payload_bytes else "small events"
    refusals = ""
    if options.stream == "faulty" or options.bundle_failures != "first":
        refusals = f"; the emulator's bundle_failures: {options.bundle_failures}"
    return (
        f"Stream {options.stream}: {options.events} events over {report.sources} source(s), "
        f"{report.providers} providers and {report.offices} offices named, {size}, seed "
        f"{options.seed}; {options.workers} worker process(es) per design, one pool process each"
        f"{refusals}"
    )


def _run_row(run: Run) -> str:
    return (
        f"{run.label:<{RUN_WIDTH}}{run.events:>8}{run.seconds:>9.2f}{run.events_per_s:>10.1f}"
        f"{run.requests:>10}{run.requests_per_1000:>13.2f}{_maybe(run.reads_per_event):>10}"
        f"{_maybe(run.planned_per_event):>10}{run.peak_process_kib / KIB_PER_MIB:>16.1f}"
        f"{run.peak_total_kib / KIB_PER_MIB:>13.1f}"
    )


def _cpu_row(run: Run) -> str:
    return (
        f"{run.label:<{RUN_WIDTH}}{run.cpu_us('pool'):>9.1f}{run.cpu_us('celery_main'):>13.1f}"
        f"{run.worker_cpu_us:>9.1f}{run.cpu_us('redis'):>8.1f}{run.cpu_us('emulator'):>10.1f}"
        f"{run.cpu_us('publisher'):>11.1f}{run.events_per_s:>10.1f}"
    )


def _maybe(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def figures(report: Report) -> list[str]:
    """The lines between the tables and the targets: ratios, bounds, latency, Redis, machine."""
    cpu = report.worker_cpu_ratio
    lines = [
        f"Throughput ratio, ours / one task per event: {floor(report.ratio)}x; worker CPU per "
        f"event, ours / one task per event: {'n/a' if cpu is None else ceil(cpu, 3)}",
    ]
    if report.chain is not None:
        chain = report.chain
        lines.append(
            f"Chain bound: {chain.events} events / {chain.longest_chain} bundles in the longest "
            f"chain (each source's events planned at once with caps that never bind; the longest "
            f"is {chain.source}'s) = {chain.events_per_round_trip:.1f} events per sequential "
            "Registry round trip"
        )
    if report.failing:
        lines.append(_failing_line(report))
    lines.append(
        "Slowest Redis call while draining (SLOWLOG, over 1 ms): "
        + "; ".join(f"{run.label}: {_slowest(run)}" for run in (report.ours, report.naive))
    )
    if report.latency is not None:
        latency = report.latency
        lines.append(
            f"Latency from publish to outcome at half our peak ({latency.events} events at "
            f"{latency.rate_per_s:.0f} events/s asked, {latency.achieved_per_s:.0f} kept up): "
            f"p50 {latency.p50_ms:.0f} ms, p99 {latency.p99_ms:.0f} ms, max "
            f"{latency.max_ms:.0f} ms (linger {report.linger_ms} ms)"
        )
    for pair in report.memory:
        if pair.skipped is not None:
            lines.append(f"Memory with {pair.payload_bytes} B events: skipped: {pair.skipped}")
    lines += [
        "Final Registry state equals the one-by-one oracle's: every run (checked before its "
        "figures)",
        f"Machine: {report.cpus} CPUs, load average {report.load_start[0]:.2f} at the start, "
        f"{report.load_end[0]:.2f} at the end",
    ]
    return lines


def _failing_line(report: Report) -> str:
    events, failing = report.ours.events, report.failing
    line = (
        f"Events that fail one by one: {failing} of {events} ({100 * failing / events:.2f}%); "
        "dead-lettered by ours and failed by one task per event: exactly those (checked before "
        "the figures)"
    )
    extra, clean = report.extra_requests_per_failing_event, report.ours_clean
    if extra is not None and clean is not None:
        line += (
            f"; extra Registry requests per refused event: {ceil(extra)} (ours: "
            f"{report.ours.requests} requests, {clean.requests} for the same stream without them)"
        )
    return line


def _slowest(run: Run) -> str:
    slow = run.slowest
    return "none over 1 ms" if slow is None else f"{slow.command} {slow.duration_ms:.1f} ms"

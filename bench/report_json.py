"""The benchmark's figures as JSON (`--json FILE`), for scripts that compare runs over time.

At least `{"ratio", "ours": {"events_per_s", "http_requests_per_1000_events", "reads_per_event",
"p99_ms", "peak_rss_mib", "cpu_us_per_event"}, "naive": {"events_per_s", "cpu_us_per_event"}}`;
`cpu_us_per_event` is the workers' (pool + Celery main), the other kinds are beside it. A figure
that was not measured is null: `reads_per_event` when the scheduler keeps no counters, the
latencies when the latency run was skipped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bench.procstat import KINDS
from bench.targets import targets

if TYPE_CHECKING:
    from bench.benchmark import Report
    from bench.runs import Run


def to_json(report: Report) -> dict[str, Any]:
    """The report as a JSON-ready dict."""
    options, latency, chain = report.options, report.latency, report.chain
    ours = run_json(report.ours)
    ours["p50_ms"] = latency.p50_ms if latency else None
    ours["p99_ms"] = latency.p99_ms if latency else None
    return {
        "stream": options.stream,
        "events": options.events,
        "workers": options.workers,
        "seed": options.seed,
        "payload_bytes": options.payload_bytes,
        "bundle_failures": options.bundle_failures,
        "sources": report.sources,
        "providers": report.providers,
        "offices": report.offices,
        "linger_ms": report.linger_ms,
        "cpus": report.cpus,
        "load_average_start": list(report.load_start),
        "load_average_end": list(report.load_end),
        "ratio": report.ratio,
        "worker_cpu_ratio": report.worker_cpu_ratio,
        "ours": ours,
        "naive": run_json(report.naive),
        "failing_events": report.failing,
        "extra_requests_per_refused_event": report.extra_requests_per_failing_event,
        "ours_without_failing": None if report.ours_clean is None else run_json(report.ours_clean),
        "chain_bound": None
        if chain is None
        else {
            "longest_chain": chain.longest_chain,
            "events_per_round_trip": chain.events_per_round_trip,
            "source": chain.source,
        },
        "latency": None
        if latency is None
        else {
            "events": latency.events,
            "rate_per_s": latency.rate_per_s,
            "achieved_per_s": latency.achieved_per_s,
            "p50_ms": latency.p50_ms,
            "p99_ms": latency.p99_ms,
            "max_ms": latency.max_ms,
        },
        "memory": [
            {
                "payload_bytes": pair.payload_bytes,
                "skipped": pair.skipped,
                "growth": pair.growth,
                "small": None if pair.small is None else run_json(pair.small),
                "large": None if pair.large is None else run_json(pair.large),
            }
            for pair in report.memory
        ],
        "targets": [
            {"target": target.name, "met": target.met, "detail": target.detail}
            for target in targets(report)
        ],
    }


def run_json(run: Run) -> dict[str, Any]:
    """One run's figures."""
    slow = run.slowest
    return {
        "label": run.label,
        "events": run.events,
        "seconds": run.seconds,
        "events_per_s": run.events_per_s,
        "http_requests": run.requests,
        "http_requests_per_1000_events": run.requests_per_1000,
        "requests_per_100_events": run.requests_per_1000 / 10,
        "reads_per_event": run.reads_per_event,
        "planned_per_event": run.planned_per_event,
        "peak_rss_mib": run.peak_process_kib / 1024,
        "peak_rss_all_mib": run.peak_total_kib / 1024,
        "cpu_us_per_event": run.worker_cpu_us,
        "cpu_us_per_event_by_process": {kind: run.cpu_us(kind) for kind in (*KINDS, "publisher")},
        "publish_s": run.publish_s,
        "slowest_redis_call": None
        if slow is None
        else {"command": slow.command, "ms": slow.duration_ms},
    }

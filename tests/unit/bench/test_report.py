"""The benchmark's report: its targets per stream, rounding that never flatters, JSON fields,
and the helpers beside it (percentiles, the memory estimate, Redis' slow calls and counters)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import fakeredis
import pytest

from bench.benchmark import Report
from bench.chain import ChainBound
from bench.latency import Latency, percentile
from bench.memory_runs import MemoryPair, memory_available, memory_needed
from bench.options import Options
from bench.redis_probe import (
    SlowCall,
    SlowCallWatch,
    _command_name,
    planner_counts,
    script_names,
)
from bench.report import render
from bench.report_json import to_json
from bench.runs import Run
from bench.targets import ceil, floor, targets


def _run(label: str, design: str, *, events: int = 1000, seconds: float = 1.0, **kw) -> Run:
    values: dict[str, Any] = {
        "requests": events,
        "cpu_s": {"pool": 1.0, "celery_main": 0.5, "redis": 0.2, "emulator": 0.1},
        "publish_cpu_s": 0.05,
        "publish_s": 0.1,
        "peak_process_kib": 70 * 1024,
        "peak_total_kib": 260 * 1024,
        "slowest": None,
        "counts": None,
    }
    values.update(kw)
    return Run(label=label, design=design, events=events, seconds=seconds, **values)


def _report(stream: str = "wide", **kw) -> Report:
    values: dict[str, Any] = {
        "options": Options(stream=stream, events=1000),
        "linger_ms": 100,
        "providers": 40,
        "offices": 4,
        "sources": 2,
        "chain": None,
        "naive": _run("one task per event", "naive", seconds=2.0),
        "ours": _run("ours", "ours", seconds=0.1, requests=15,
                     cpu_s={"pool": 0.05, "celery_main": 0.02, "redis": 0.1, "emulator": 0.01}),
        "latency": Latency(events=500, rate_per_s=5000, achieved_per_s=4900, p50_ms=150,
                           p99_ms=900, max_ms=1000),
    }  # fmt: skip
    values.update(kw)
    return Report(**values)


def test_targets_of_each_stream() -> None:
    wide = [t.name for t in targets(_report("wide"))]
    hot = [t.name for t in targets(_report("hot"))]
    fanin = [t.name for t in targets(_report("fanin"))]

    assert wide[:3] == [
        "throughput at least 20x one task per event",
        "at most 2 Registry requests per 100 events",
        "worker CPU per event at most 1/20 of one task per event's",
    ]
    assert hot[0] == "throughput at least 5x one task per event"
    assert fanin[0] == "no single Redis call over 5 ms while draining"
    for names in (wide, hot, fanin):
        assert "each event read and planned at most 1.5 times" in names
        assert "p99 from publish to outcome at most linger + 1 s (1100 ms)" in names


def test_targets_are_met_or_not_on_the_raw_figures() -> None:
    report = _report("wide")  # 20x exactly, 1.5 requests per 100, worker CPU 70/1500
    verdicts = {t.name: t.met for t in targets(report)}

    assert verdicts["throughput at least 20x one task per event"] is True
    assert verdicts["at most 2 Registry requests per 100 events"] is True
    assert verdicts["worker CPU per event at most 1/20 of one task per event's"] is True
    assert verdicts["each event read and planned at most 1.5 times"] is None
    slower = _report("wide", ours=_run("ours", "ours", seconds=0.1001, requests=15))
    line = targets(slower)[0].line()
    assert line.startswith("Target: throughput at least 20x one task per event: not met (19.98x")


def test_faulty_targets_and_the_cost_of_its_failing_events() -> None:
    ours = _run("ours", "ours", seconds=0.1, requests=39)
    clean = _run("ours, without the failing events", "ours", events=975, requests=19)
    report = _report("faulty", ours=ours, ours_clean=clean, failing=25)

    verdicts = {t.name: (t.met, t.detail) for t in targets(report)}
    lines = render(report)

    assert verdicts["throughput at least 10x one task per event"][0] is True
    assert verdicts["at most 4 Registry requests per 100 events"] == (
        True,
        "3.90 per 100 events; one task per event: 100.00",
    )
    more = _report("faulty", ours=_run("ours", "ours", seconds=0.2, requests=41), failing=25)
    assert {t.name: t.met for t in targets(more)} == {
        "throughput at least 10x one task per event": True,
        "at most 4 Registry requests per 100 events": False,
        "no event that succeeds one by one dead-lettered": True,
        "each event read and planned at most 1.5 times": None,
        "p99 from publish to outcome at most linger + 1 s (1100 ms)": True,
    }
    assert more.extra_requests_per_failing_event is None
    assert verdicts["no event that succeeds one by one dead-lettered"] == (
        True,
        "25 dead-lettered, exactly the events that fail one by one; the other 975 applied or "
        "coalesced",
    )
    assert report.extra_requests_per_failing_event == pytest.approx(0.8)
    assert any("extra Registry requests per refused event: 0.80" in line for line in lines)
    assert any(line.startswith("ours, without the failing events ") for line in lines)
    assert lines[0].endswith("; the emulator's bundle_failures: first")
    assert not render(_report("wide"))[0].endswith("bundle_failures: first")
    figures = to_json(report)
    assert (figures["failing_events"], figures["extra_requests_per_refused_event"]) == (25, 0.8)
    assert figures["ours_without_failing"]["http_requests"] == 19


def test_rounding_never_flatters() -> None:
    assert floor(19.999) == "19.99"
    assert ceil(2.001) == "2.01"
    assert ceil(1.5) == "1.50"


def test_reads_target_uses_the_counters_when_the_scheduler_keeps_them() -> None:
    from bench.redis_probe import PlannerCounts

    ours = _run("ours", "ours", counts=PlannerCounts(read=1200, planned=1600))
    (reads,) = [t for t in targets(_report(ours=ours)) if t.name.startswith("each event")]

    assert reads.met is False
    assert reads.detail == "1.20 reads and 1.60 plans per event"


def test_fanin_slowest_call_target() -> None:
    slow = _run("ours", "ours", slowest=SlowCall("EVALSHA snapshot.lua", 5200))
    (target,) = [t for t in targets(_report("fanin", ours=slow)) if "Redis call" in t.name]

    assert target.met is False
    assert target.detail == "slowest EVALSHA snapshot.lua: 5.2 ms"


def test_render_prints_both_tables_the_chain_bound_and_memory(tmp_path: Path) -> None:
    pair = MemoryPair(1024, small=_run("ours, backlog of 10", "ours", events=10),
                      large=_run("ours, backlog of 20", "ours", events=20))  # fmt: skip
    skipped = MemoryPair(51_200, skipped="needs about 14.0 GiB, 2.0 GiB available")
    report = _report("hot", chain=ChainBound(1000, 40, "hot-a"), memory=[pair, skipped])

    lines = render(report)

    assert any(line.startswith("ours, backlog of 20 ") for line in lines)
    assert any(line.startswith("CPU-us per event") for line in lines)
    assert any(line.startswith("Chain bound: 1000 events / 40 bundles") for line in lines)
    assert "Memory with 51200 B events: skipped: needs about 14.0 GiB, 2.0 GiB available" in lines
    assert any("RSS flat within 20%" in line and ": met (" in line for line in lines)
    assert any("51200 B events: not measured (needs" in line for line in lines)


def test_json_has_the_documented_fields_with_numbers_or_null() -> None:
    data = json.loads(json.dumps(to_json(_report(latency=None))))

    assert data["ratio"] == pytest.approx(20.0)
    for field in ("events_per_s", "http_requests_per_1000_events", "peak_rss_mib",
                  "cpu_us_per_event"):  # fmt: skip
        assert isinstance(data["ours"][field], float), field
    assert data["ours"]["reads_per_event"] is None
    assert data["ours"]["p99_ms"] is None
    assert data["ours"]["cpu_us_per_event"] == pytest.approx(70.0)
    assert data["naive"]["cpu_us_per_event"] == pytest.approx(1500.0)
    assert set(data["naive"]["cpu_us_per_event_by_process"]) == {
        "pool", "celery_main", "redis", "emulator", "publisher"
    }  # fmt: skip


def test_percentile_is_nearest_rank() -> None:
    values = list(range(1, 101))

    assert percentile(values, 0.5) == 50
    assert percentile(values, 0.99) == 99
    assert percentile([7.0], 0.99) == 7.0
    with pytest.raises(ValueError, match="none"):
        percentile([], 0.5)


def test_memory_estimate_and_what_is_available(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 100 kB\nMemAvailable:    2048 kB\n")

    assert memory_available(meminfo) == 2048 * 1024
    assert memory_needed(200_000, 51_200) > 10 * 1024**3
    assert memory_available() > 0


def test_slow_call_names_a_worker_script_by_its_sha() -> None:
    sha = next(sha for sha, name in script_names().items() if name == "publish.lua")

    assert _command_name(f"EVALSHA {sha} 1 ingest:{{s}}:") == "EVALSHA publish.lua"
    assert _command_name(b"HGETALL key") == "HGETALL"
    assert _command_name("EVALSHA 0123456789abcdef0123 0") == "EVALSHA 0123456789ab"


def test_planner_counts_sum_the_sources_or_say_none() -> None:
    client = fakeredis.FakeRedis()
    client.hset("ingest:{s-a}:stats", mapping={"read": 10, "planned": 12})
    client.hset("ingest:{s-b}:stats", mapping={"read": 5, "planned": 5, "buffered": 0})

    counts = planner_counts(client, ["s-a", "s-b"])

    assert counts is not None
    assert (counts.read, counts.planned) == (15, 17)
    client.hset("ingest:{s-c}:stats", mapping={"buffered": 3})
    assert planner_counts(client, ["s-a", "s-c"]) is None


class _SlowLog:
    """The SLOWLOG commands of a client: the latest entries, newest first."""

    def __init__(self) -> None:
        self.log: list[dict[str, object]] = []

    def slowlog_get(self, count: int) -> list[dict[str, object]]:
        return list(reversed(self.log))[:count]

    def slowlog_reset(self) -> None:
        self.log.clear()

    def config_set(self, name: str, value: int) -> bool:
        return True


def test_slow_call_watch_keeps_the_slowest_across_readings() -> None:
    client = _SlowLog()
    watch = SlowCallWatch(cast(Any, client), every_s=0.0)
    watch.start()
    client.log += [{"id": 0, "duration": 3000, "command": "HGETALL k"},
                   {"id": 1, "duration": 9000, "command": "DEL k"}]  # fmt: skip
    watch.poll()
    del client.log[:2]  # the log keeps its latest entries only
    client.log.append({"id": 2, "duration": 4000, "command": "SET k v"})

    slowest = watch.drain()

    assert slowest == SlowCall("DEL", 9000)
    assert watch.drain() == SlowCall("DEL", 9000)  # nothing counted twice, nothing lost


def test_check_failed_wants_exactly_the_events_that_fail_one_by_one() -> None:
    from bench.designs import check_failed
    from bench.stack import BenchError

    check_failed("ours", "dead letters", {"e1": "e1: record NOT_FOUND"}, {"e1"})
    with pytest.raises(BenchError, match=r"1 events that apply one by one, e.g. e2: record"):
        check_failed("ours", "dead letters", {"e1": "e1: x", "e2": "e2: record X"}, {"e1"})
    with pytest.raises(BenchError, match=r"not 1 events that fail one by one, e.g. \['e3'\]"):
        check_failed("one task per event", "failed writes", {"e1": "e1: x"}, {"e1", "e3"})

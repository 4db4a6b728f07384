"""`clinia-ingest bench` end to end on tiny streams: every row, figure and target line printed,
the JSON complete, every Registry equal to the oracle's.

No assertion on speed or memory: the benchmark reports figures, it does not judge them.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from bench.cli import parse_options
from tests.conftest import IN_CI
from worker.cli import main

pytestmark = [pytest.mark.integration]

EVENTS = 300
NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
FIGURE_OR_NA = re.compile(r"-?\d+(?:\.\d+)?|n/a")
ORACLE_LINE = "Final Registry state equals the one-by-one oracle's: every run"
TARGETS = {
    "wide": [
        "Target: throughput at least 20x one task per event: ",
        "Target: at most 2 Registry requests per 100 events: ",
        "Target: worker CPU per event at most 1/20 of one task per event's: ",
        "Target: each event read and planned at most 1.5 times: ",
        "Target: p99 from publish to outcome at most linger + 1 s (1100 ms): ",
        "Target: worker RSS flat within 20% with the backlog, 1024 B events: ",
    ],
    "hot": [
        "Target: throughput at least 5x one task per event: ",
        "Target: each event read and planned at most 1.5 times: ",
    ],
    "fanin": [
        "Target: no single Redis call over 5 ms while draining: ",
        "Target: each event read and planned at most 1.5 times: ",
    ],
    "faulty": [
        "Target: throughput at least 10x one task per event: ",
        "Target: at most 4 Registry requests per 100 events: ",
        "Target: no event that succeeds one by one dead-lettered: met (",
        "Target: each event read and planned at most 1.5 times: ",
    ],
}
RUN_FIELDS = {
    "events_per_s",
    "http_requests_per_1000_events",
    "reads_per_event",
    "peak_rss_mib",
    "cpu_us_per_event",
}
NULLABLE = {"reads_per_event", "planned_per_event", "p50_ms", "p99_ms", "slowest_redis_call"}
CPU_KINDS = {"pool", "celery_main", "redis", "emulator", "publisher"}


def _require_redis_server() -> None:
    if shutil.which("redis-server") is None:
        if IN_CI:
            pytest.fail("the benchmark needs redis-server, which CI=true requires")
        pytest.skip("the benchmark needs redis-server")


def _row(lines: list[str], label: str, fields: int, pattern: re.Pattern[str]) -> list[str]:
    row = next((line for line in lines if line.startswith(label + " ")), None)
    assert row is not None, (label, lines)
    values = row[len(label) :].split()
    assert len(values) == fields, row
    assert all(pattern.fullmatch(value) for value in values), row
    return values


def _check_run_json(run: dict[str, Any], events: int) -> None:
    for name in RUN_FIELDS | {"planned_per_event", "http_requests", "peak_rss_all_mib"}:
        value = run[name]
        assert isinstance(value, int | float) or (value is None and name in NULLABLE), (name, run)
    assert run["events"] == events
    assert run["events_per_s"] > 0
    assert set(run["cpu_us_per_event_by_process"]) == CPU_KINDS
    assert all(v >= 0 for v in run["cpu_us_per_event_by_process"].values())


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_bench_wide_with_memory_and_json_prints_every_figure_and_matches_the_oracle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _require_redis_server()
    path = tmp_path / "bench.json"

    code = main(["bench", "--stream", "wide", "--events", str(EVENTS), "--timeout-s", "60",
                 "--warmup-events", "50", "--latency-s", "1", "--memory", "--memory-small",
                 "200", "--memory-large", "400", "--memory-payloads", "1024",
                 "--json", str(path)])  # fmt: skip

    captured = capsys.readouterr()
    assert code == 0, captured.err
    lines = captured.out.splitlines()
    # Progress went to stderr, the report to stdout
    assert "Benchmark: --stream wide" in captured.err
    assert not any(line.startswith("Benchmark:") for line in lines)
    # Every row of both tables, numbers in every column (n/a where the counters are absent)
    for label in ["one task per event", "ours", "ours, backlog of 200, 1 KB events",
                  "ours, backlog of 400, 1 KB events"]:  # fmt: skip
        values = _row(lines, label, 9, FIGURE_OR_NA)
        assert float(values[0]) in {EVENTS, 200, 400}, values
        assert float(values[2]) > 0, values
    cpu_start = lines.index(next(line for line in lines if line.startswith("CPU-us per event")))
    cpu_rows = lines[cpu_start + 1 : cpu_start + 5]
    assert all(len(NUMBER.findall(row)) >= 7 for row in cpu_rows), cpu_rows
    # The figures between the tables and the targets
    assert any(
        re.match(r"Throughput ratio, ours / one task per event: \d+\.\d\dx", ln) for ln in lines
    )
    assert any(line.startswith("Slowest Redis call while draining") for line in lines)
    assert any(re.match(r"Latency from publish to outcome .*p99 \d+ ms", ln) for ln in lines)
    assert ORACLE_LINE in captured.out
    for target in TARGETS["wide"]:
        line = next((line for line in lines if line.startswith(target)), None)
        assert line is not None, (target, lines)
        assert re.match(r"(met|not met|not measured) \(", line[len(target) :]), line
    # The baseline sent one Registry request per event; ours carried them in fewer
    report = json.loads(path.read_text())
    assert report["naive"]["http_requests"] == EVENTS
    assert report["ours"]["http_requests"] < EVENTS
    # The JSON: the documented fields, numbers or null where documented
    assert isinstance(report["ratio"], float)
    assert report["ratio"] > 0
    _check_run_json(report["ours"], EVENTS)
    _check_run_json(report["naive"], EVENTS)
    assert isinstance(report["ours"]["p99_ms"], float)
    assert report["chain_bound"] is None
    (pair,) = report["memory"]
    assert pair["payload_bytes"] == 1024
    assert isinstance(pair["growth"], float)
    _check_run_json(pair["small"], 200)
    _check_run_json(pair["large"], 400)
    assert {t["target"] for t in report["targets"]} >= {t.split(": ")[1] for t in TARGETS["wide"]}


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("stream", ["hot", "fanin"])
def test_bench_hot_and_fanin_print_their_own_targets(
    stream: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _require_redis_server()

    code = main(["bench", "--stream", stream, "--events", str(EVENTS), "--timeout-s", "60",
                 "--warmup-events", "50", "--latency-s", "0"])  # fmt: skip

    captured = capsys.readouterr()
    assert code == 0, captured.err
    lines = captured.out.splitlines()
    _row(lines, "one task per event", 9, FIGURE_OR_NA)
    _row(lines, "ours", 9, FIGURE_OR_NA)
    assert ORACLE_LINE in captured.out
    for target in TARGETS[stream]:
        assert any(line.startswith(target) for line in lines), (target, lines)
    chain = [line for line in lines if line.startswith("Chain bound: ")]
    if stream == "hot":
        assert re.match(
            rf"Chain bound: {EVENTS} events / \d+ bundles in the longest chain .* = "
            r"\d+\.\d events per sequential Registry round trip",
            chain[0],
        ), chain
    else:
        assert chain == []


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("failures", ["first", "all"])
def test_bench_faulty_checks_its_failures_and_prints_what_they_cost(
    failures: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _require_redis_server()
    path = tmp_path / "bench.json"

    code = main(["bench", "--stream", "faulty", "--events", str(EVENTS), "--timeout-s", "60",
                 "--warmup-events", "50", "--latency-s", "0", "--bundle-failures", failures,
                 "--json", str(path)])  # fmt: skip

    captured = capsys.readouterr()
    assert code == 0, captured.err
    lines = captured.out.splitlines()
    assert lines[0].endswith(f"the emulator's bundle_failures: {failures}")
    _row(lines, "one task per event", 9, FIGURE_OR_NA)
    _row(lines, "ours", 9, FIGURE_OR_NA)
    clean = _row(lines, "ours, without the failing events", 9, FIGURE_OR_NA)
    failing = round(EVENTS * 0.025)
    assert int(clean[0]) == EVENTS - failing
    assert any(
        re.match(
            rf"Events that fail one by one: {failing} of {EVENTS} .* exactly those .*extra "
            r"Registry requests per refused event: -?\d+\.\d\d \(ours: \d+ requests",
            line,
        )
        for line in lines
    ), lines
    for target in TARGETS["faulty"]:
        assert any(line.startswith(target) for line in lines), (target, lines)
    report = json.loads(path.read_text())
    assert (report["failing_events"], report["bundle_failures"]) == (failing, failures)
    assert isinstance(report["extra_requests_per_refused_event"], float)
    _check_run_json(report["ours_without_failing"], EVENTS - failing)


def test_bench_without_redis_server_exits_1_and_says_why(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))

    code = main(["bench", "--events", "10"])

    captured = capsys.readouterr()
    assert code == 1
    assert captured.err.strip().endswith(
        "bench: the benchmark needs `redis-server` on the PATH (Redis 7)"
    )
    assert captured.out == ""


def test_bench_help_names_every_stream_and_the_memory_runs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "--help"])

    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for word in ["--stream", "wide", "hot", "fanin", "faulty", "--bundle-failures", "--memory",
                 "--json", "--payload-bytes"]:  # fmt: skip
        assert word in text


def test_bench_options_refuse_a_bad_stream_or_size() -> None:
    with pytest.raises(SystemExit) as exit_:
        parse_options(["--stream", "narrow"])
    assert exit_.value.code == 2
    with pytest.raises(SystemExit):
        parse_options(["--events", "5"])
    with pytest.raises(SystemExit):
        parse_options(["--memory-payloads", "0"])
    assert parse_options(["--memory-payloads", "1024,51200"]).memory_payloads == (1024, 51200)

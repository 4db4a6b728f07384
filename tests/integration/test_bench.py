"""The benchmark runs end to end on a tiny stream: every figure printed, every Registry right.

No assertion on speed or memory: the benchmark reports figures, it does not judge them.
"""

from __future__ import annotations

import re
import shutil

import pytest

from bench.report import render
from bench.run import main, parse_options, run_benchmark
from bench.stream import oracle
from tests.conftest import IN_CI

pytestmark = [pytest.mark.integration]

EVENTS = 200
NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
ROWS = [
    "one task per event",
    "ours, publishing live",
    f"ours, backlog of {EVENTS}",
    f"ours, backlog of {5 * EVENTS}",
]
TARGETS = [
    "Target: throughput at least 20x one task per event: ",
    "Target: at most 2 Registry requests per 100 events: ",
    "Target: worker memory does not grow with the backlog: ",
]


def _require_redis_server() -> None:
    if shutil.which("redis-server") is None:
        if IN_CI:
            pytest.fail("the benchmark needs redis-server, which CI=true requires")
        pytest.skip("the benchmark needs redis-server")


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_bench_on_a_tiny_stream_prints_every_figure_and_ends_in_the_oracle_state() -> None:
    _require_redis_server()
    progress: list[str] = []
    options = parse_options(["--events", str(EVENTS), "--workers", "1", "--timeout-s", "60"])

    report = run_benchmark(options, progress.append)
    lines = render(report)

    # Every row of the table is there, with seven numbers after its label
    for label in ROWS:
        row = next((line for line in lines if line.startswith(label)), None)
        assert row is not None, (label, lines)
        fields = row[len(label) :].split()
        assert len(fields) == 7, row
        assert all(NUMBER.fullmatch(field) for field in fields), row
        events, seconds, per_s, requests, _, rss_one, rss_all = map(float, fields)
        assert events in {EVENTS, 5 * EVENTS}
        assert seconds > 0, row
        assert per_s > 0, row
        assert requests > 0, row
        assert 0 < rss_one <= rss_all, row
    # ... the ratio, and a line per DESIGN target saying met or not met with its figures
    ratio = next(line for line in lines if line.startswith("Throughput ratio"))
    assert re.fullmatch(r"Throughput ratio, ours / one task per event: \d+\.\dx", ratio)
    for target in TARGETS:
        line = next((line for line in lines if line.startswith(target)), None)
        assert line is not None, (target, lines)
        verdict = line[len(target) :]
        assert re.match(r"(met|not met) \(", verdict), line
        assert NUMBER.search(verdict), line
    final = next(line for line in lines if line.startswith("Final Registry state"))
    assert final.count(" yes") == len(ROWS), final
    assert "NO" not in final, final

    # The baseline sent one Registry request per event; ours carried them in fewer
    assert report.baseline.requests == EVENTS
    assert report.ours.requests < EVENTS
    # Every run left the Registry the oracle gives (computed here again), and not an empty one
    for run in report.runs:
        written = {s: state for s, state in run.actual.items() if any(state.values())}
        assert written == oracle(run.events), run.label
        assert sum(len(state["resources"]) for state in written.values()) > 0, run.label


def test_bench_without_redis_server_exits_1_and_says_why(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    lines: list[str] = []

    code = main(["--events", "10"], out=lines.append)

    assert code == 1
    assert lines == ["bench: the benchmark needs `redis-server` on the PATH (Redis 7)"]

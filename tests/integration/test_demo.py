"""The demo runs the whole service end to end: a private Redis, the emulator, two workers."""

from __future__ import annotations

import re
import shutil

import pytest

from tests.conftest import IN_CI
from worker.demo import NOT_YET, run_demo

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(180)]


def test_run_demo_drains_the_stream_and_reports_every_outcome() -> None:
    if shutil.which("redis-server") is None:
        if IN_CI:
            pytest.fail("the demo needs redis-server, which CI=true requires")
        pytest.skip("the demo needs redis-server")
    lines: list[str] = []
    assert run_demo(lines.append) == 0
    out = "\n".join(lines)
    assert "backlog 0 after" in out
    assert "refused: event demo-no-type: type: is required" in out
    assert "10 duplicates" in out
    # Every event has a final outcome: 600 applied or coalesced, the 4 bad ones the Registry
    # refused and the one refused at publish dead-lettered.
    outcomes = out.split("3. What became of every event")[1].split("Registry requests")[0]
    counts = {
        status: int(count)
        for status, count in re.findall(r"^\s+(\w+)\s+(\d+)$", outcomes, flags=re.MULTILINE)
    }
    assert counts.get("applied", 0) + counts.get("coalesced", 0) == 600
    assert counts["dead_lettered"] == 5
    assert "unknown" not in counts
    # The injected faults: a 429; a lost answer resolved by reading back, nothing sent twice.
    assert "1 answer 429 paused demo-network" in out
    assert re.search(r"1 bundle request, [1-9]\d* reads of the Registry \(read-back\), 0 ev", out)
    assert "pending" not in out.split("3. What became of every event")[1].split("Registry")[0]
    assert "ALREADY_EXISTS: record with id 'o-1' already exists" in out
    # off its profile: refused at publish, never sent
    assert "demo-unknown-property: data.UNKNOWN: is not a property of the profile" in out
    assert "demo-unknown-property: applied on attempt 1, under the same event id" in out
    assert "clinia-ingest status demo-office-1: applied" in out
    assert NOT_YET in out

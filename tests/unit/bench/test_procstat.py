"""Reading CPU time from /proc: the stat line's fields, differences between readings."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bench.procstat import (
    CLOCK_TICKS_PER_S,
    CpuReading,
    Roles,
    cpu_seconds,
    cpu_used,
    parse_cpu_ticks,
    per_event_us,
    read_cpu,
)
from tests.waiting import wait_for

# /proc/<pid>/stat of a process whose name holds a space and parentheses; utime 1200, stime 34
STAT = (
    "4242 (celery (pool) 1) S 4200 4242 4200 0 -1 4194560 12000 0 0 0 1200 34 0 0 20 0 3 0 "
    "5000 700000000 30000 18446744073709551615 1 1 0 0 0 0 0 16781312 0 0 0 0 17 1 0 0 0 0 0"
)


def test_parse_cpu_ticks_adds_utime_and_stime_counting_from_the_last_parenthesis() -> None:
    assert parse_cpu_ticks(STAT) == 1234


@pytest.mark.parametrize("text", ["", "4242 celery S 1 2 3", "4242 (x) S 1 2"])
def test_parse_cpu_ticks_refuses_what_is_not_a_stat_line(text: str) -> None:
    with pytest.raises(ValueError, match="stat line"):
        parse_cpu_ticks(text)


def test_cpu_seconds_of_this_process_follows_its_work_and_none_for_a_gone_one() -> None:
    start = cpu_seconds(os.getpid())
    assert start is not None
    target = start + 3 / CLOCK_TICKS_PER_S
    wait_for(lambda: sum(range(20_000)) and (cpu_seconds(os.getpid()) or 0) >= target)

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert cpu_seconds(child.pid) is None


def test_cpu_used_counts_differences_and_new_processes_from_zero() -> None:
    before = {"pool": {10: 1.0, 11: 2.0}, "redis": {20: 5.0}}
    after = {"pool": {10: 1.5, 12: 0.25}, "redis": {20: 5.5}, "emulator": {30: 1.0}}

    used = cpu_used(before, after)

    assert used == {"pool": 0.75, "celery_main": 0.0, "redis": 0.5, "emulator": 1.0}
    assert per_event_us(used, 1000)["pool"] == pytest.approx(750.0)
    with pytest.raises(ValueError, match="events"):
        per_event_us(used, 0)


def test_read_cpu_finds_a_parent_and_its_children_by_kind() -> None:
    code = "import subprocess, sys, time; c = subprocess.Popen([sys.executable, '-c', " \
        "'import time; time.sleep(30)']); time.sleep(30)"  # fmt: skip
    parent = subprocess.Popen([sys.executable, "-c", code])
    try:
        roles = Roles(celery_mains=(parent.pid,), redis=os.getpid(), emulator=parent.pid)

        def with_child() -> CpuReading | None:
            found = read_cpu(roles)
            return found if found["pool"] else None

        reading = wait_for(with_child, timeout_s=10)

        assert set(reading["celery_main"]) == {parent.pid}
        assert len(reading["pool"]) == 1
        assert os.getpid() in reading["redis"]
    finally:
        for pid in reading_pool(parent.pid):
            os.kill(pid, 9)
        parent.kill()
        parent.wait()


def reading_pool(pid: int) -> list[int]:
    """The children of `pid`, to end them."""
    return Roles(celery_mains=(pid,), redis=pid, emulator=pid).pids()["pool"]

"""Faults that need a real socket: a dropped connection, answers later than the client waits,
and two pollers at once, seen through uvicorn on loopback with plain httpx."""

from __future__ import annotations

import threading

import httpx
import pytest

from tests.integration.emulator.conftest import SOURCE, Emulator, seed
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

S = f"/sources/{SOURCE}/v1"
SHORT = httpx.Timeout(5.0, read=0.2)
"""A client that waits 0.2 s for an answer: shorter than every delay the faults below add."""


def add_fault(emulator: Emulator, rule: dict[str, object]) -> None:
    emulator.admin("POST", "/faults", json=rule)


def written_ids(emulator: Emulator) -> list[str]:
    return [write["id"] for write in emulator.admin("GET", "/writes")]


@pytest.mark.parametrize(
    ("apply_first", "applied"), [(False, []), (True, ["1", "2", "office.1,provider.2"])]
)
def test_emulator_drop_closes_the_connection_without_an_answer(
    emulator: Emulator, apply_first: bool, applied: list[str]
):
    add_fault(
        emulator,
        {"route": "bundle", "times": 1, "effect": {"kind": "drop", "apply_first": apply_first}},
    )
    with emulator.client() as http:
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            http.post(f"{S}/bundle", json=seed("bundle-guide.use-case-request"))
        assert written_ids(emulator) == applied
        # the server is still up, and the rule has used its single firing
        assert http.get(f"{S}/profiles/office").status_code == 200
    (entry,) = [e for e in emulator.admin("GET", "/requests") if e["route"] == "bundle"]
    assert entry["dropped"] is True


def test_emulator_late_answer_times_out_after_the_write_applied(emulator: Emulator):
    add_fault(emulator, {"route": "bundle", "effect": {"kind": "late", "seconds": 1.0}})
    with emulator.client(timeout=SHORT) as http, pytest.raises(httpx.ReadTimeout):
        http.post(f"{S}/bundle", json=seed("bundle-guide.use-case-request"))
    assert written_ids(emulator) == ["1", "2", "office.1,provider.2"]


def test_emulator_late_answer_in_async_mode_leaves_an_accepted_task(emulator: Emulator):
    emulator.admin("PATCH", "/config", json={"mode": "async", "task_pending_polls": 0})
    add_fault(emulator, {"route": "bundle", "effect": {"kind": "late", "seconds": 1.0}})
    with emulator.client(timeout=SHORT) as http, pytest.raises(httpx.ReadTimeout):
        http.post(f"{S}/bundle", json=seed("bundle-guide.use-case-request"))
    (task_id,) = emulator.admin("GET", f"/sources/{SOURCE}/tasks")
    assert task_id.startswith("bd_")
    # nothing polls the lost task; it still applies once it is due (here, at the next access)
    assert wait_for(lambda: written_ids(emulator)) == ["1", "2", "office.1,provider.2"]


def test_emulator_latency_beyond_the_read_timeout_still_applies_later(emulator: Emulator):
    add_fault(emulator, {"route": "bundle", "effect": {"kind": "latency", "seconds": 1.0}})
    with emulator.client(timeout=SHORT) as http, pytest.raises(httpx.ReadTimeout):
        http.post(f"{S}/bundle", json=seed("bundle-guide.use-case-request"))
    assert written_ids(emulator) == []  # still waiting out the latency
    applied = wait_for(lambda: written_ids(emulator))
    assert applied == ["1", "2", "office.1,provider.2"]


def test_emulator_429_over_the_wire_carries_retry_after(emulator: Emulator):
    add_fault(
        emulator,
        {"route": "bundle", "effect": {"kind": "status", "status": 429, "retry_after": "3"}},
    )
    with emulator.client() as http:
        answer = http.post(f"{S}/bundle", json=seed("bundle-guide.use-case-request"))
    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "3"
    assert answer.json()["details"] == []


def test_emulator_counts_two_concurrent_pollers_of_one_task(emulator: Emulator):
    emulator.admin("PATCH", "/config", json={"mode": "async", "task_pending_polls": 100})
    with emulator.client() as http:
        accepted = http.post(f"{S}/bundle", json=seed("bundle-guide.use-case-request"))
        task_id = accepted.json()["taskId"]
    add_fault(emulator, {"route": "task_status", "effect": {"kind": "latency", "seconds": 1.0}})
    statuses: list[int] = []

    def poll() -> None:
        with emulator.client() as http:
            statuses.append(http.get(f"{S}/tasks/{task_id}").status_code)

    pollers = [threading.Thread(target=poll) for _ in range(2)]
    for poller in pollers:
        poller.start()
    wait_for(lambda: emulator.admin("GET", "/concurrency")["current"].get(task_id) == 2)
    for poller in pollers:
        poller.join(timeout=10)
    assert statuses == [200, 200]
    assert emulator.admin("GET", "/concurrency") == {"highest": {task_id: 2}, "current": {}}

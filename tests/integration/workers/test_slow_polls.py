"""A slow poll round is not a dead worker: tasks in review, polled slowly, are never poison.

Two real workers poll tasks that the emulator keeps PENDING (in review) for many polls, and every
GET of a task takes a latency longer than a third of the claim TTL, so a round that polled all the
tasks under one claim would outrun it. No worker dies: no claim may be counted as taken over from
a gone worker (`prcv`), and no event may be dead-lettered as POISON, with a recovery cap of 2.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.workers.checks import wait_drained
from tests.integration.workers.conftest import Emulator, Workers
from tests.waiting import wait_for
from worker.deadletters import list_dead_letters
from worker.pipeline import Deps
from worker.publisher import publish
from worker.results import event_status
from worker.store.keys import SourceKeys

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(120)]

SOURCE = "hospital-a"
TASKS = 8
REVIEW_POLLS = 8
"""Polls each task answers PENDING (in review) before it ends."""
POLL_LATENCY_S = 0.25
"""Each GET of a task: 8 of them (2 s) outrun the claim TTL below (1.5 s)."""
SLOW_REGISTRY: dict[str, Any] = {
    "claim_ttl_ms": 1500,
    "http_deadline_s": 1.0,
    "http_connect_timeout_s": 0.5,
    "http_read_timeout_s": 0.8,
    "max_bundle_recoveries": 2,
    "max_bundle_ops": 1,  # one bundle, so one task, per event
    "poll_first_ms": 600,
    "poll_cap_ms": 600,
    "tick_interval_ms": 500,  # a tick hands out every task due meanwhile, in one round
}
FINAL_TIMEOUT_S = 60.0


def counted_takeovers(deps: Deps) -> dict[str, int]:
    """Bundle id -> times a claim on it was counted as taken over from a gone worker."""
    counted = {}
    for key in deps.store.client.scan_iter(match=SourceKeys(SOURCE).bundle("*"), count=1000):
        bundle_id = str(key).rpartition(":bd:")[2]
        fields = deps.store.bundle_fields(SOURCE, bundle_id, "rcv", "prcv")
        total = sum(int(fields.get(name) or 0) for name in ("rcv", "prcv"))
        if total:
            counted[bundle_id] = total
    return counted


def test_slow_poll_rounds_of_tasks_in_review_never_count_a_death(
    deps: Deps, emulator: Emulator, workers: Workers
) -> None:
    # Given an asynchronous Registry whose tasks stay in review and answer each poll slowly ...
    emulator.admin("PATCH", "/config", json={"mode": "async"})
    emulator.admin(
        "POST",
        "/faults",
        json=[
            {"route": "bundle", "effect": {"kind": "pending", "polls": REVIEW_POLLS}},
            {"route": "task_status", "effect": {"kind": "latency", "seconds": POLL_LATENCY_S}},
        ],
    )
    events: list[dict[str, Any]] = [
        {"eventId": f"e{i}", "sourceKey": SOURCE, "target": "resource", "action": "UPSERT",
         "type": "office", "id": f"o{i}", "data": {"name": f"Office {i}"}}
        for i in range(TASKS)
    ]  # fmt: skip
    assert publish(deps, events).errors == []

    # ... when two workers poll them until the Registry ends every task ...
    workers.start(2, concurrency=1, **SLOW_REGISTRY)

    def settled() -> bool:
        statuses = {event_status(deps, e["eventId"]).status for e in events}
        return statuses <= {"applied", "dead_lettered"}

    try:
        wait_for(settled, timeout_s=FINAL_TIMEOUT_S)
    except AssertionError:
        counted = counted_takeovers(deps)
        raise AssertionError(f"not settled; counted: {counted}\n{workers.logs()}") from None

    # ... then no claim was counted as a dead worker's, and nothing was dead-lettered.
    letters = [(letter.event_id, letter.error_type) for letter in list_dead_letters(deps)]
    assert letters == []
    assert counted_takeovers(deps) == {}
    assert {event_status(deps, e["eventId"]).status for e in events} == {"applied"}
    wait_drained(deps, workers, 10.0)

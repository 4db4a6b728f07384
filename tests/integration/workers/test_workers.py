"""Real worker processes drain a published stream: every outcome recorded, the Registry right.

Each test starts its own `celery worker` processes (prefork) on the test's private Redis, against
the emulator on a loopback port, publishes a stream, waits with a deadline until the backlog is
0, then checks what the emulator saw against an oracle that applies the events one by one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest

from tests.integration.workers.checks import (
    check_registry_matches_oracle,
    publish_all,
    wait_drained,
)
from tests.integration.workers.conftest import Emulator, Workers
from tests.integration.workers.stream import make_stream, writes_allowed
from worker.pipeline import Deps
from worker.results import EventStatus, backlog, event_status

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(150)]

SOURCES = ["hospital-a", "hospital-b"]
EVENTS = 10_000
GROUPS = 200
DRAIN_TIMEOUT_S = 90.0
FINAL_STATUSES = frozenset({"applied", "coalesced"})
MAX_REQUESTS_PER_100_EVENTS = 5


def check_every_outcome_recorded(deps: Deps, events: Sequence[dict[str, Any]]) -> list[EventStatus]:
    statuses = [event_status(deps, event["eventId"]) for event in events]
    counts = Counter(status.status for status in statuses)
    assert set(counts) <= FINAL_STATUSES, counts
    assert sum(counts.values()) == len(events)
    return statuses


def check_no_operation_applied_twice(
    emulator: Emulator, events: Sequence[dict[str, Any]], statuses: Sequence[EventStatus]
) -> None:
    """No entity written more often than its events allow, and no bundle applied twice.

    Every applied or coalesced event names the one bundle (and, when ACCEPTED, the one task) that
    carried it. A bundle sent twice and applied twice would show as more successful requests
    (synchronous answers) or more tasks that wrote (asynchronous ones) than bundles recorded.
    A bundle refused with a FAILURE receipt applied nothing (bundles are atomic), so sending its
    operations again is a replay, not a double write.
    """
    writes = emulator.admin("GET", "/writes")
    written: Counter[tuple[str, str, str, str]] = Counter(
        (w["source"], w["target"], w["type"], w["id"]) for w in writes
    )
    allowed = writes_allowed(events)
    too_many = {key: n for key, n in written.items() if n > allowed[key]}
    assert too_many == {}
    bundles = {s.bundle_id for s in statuses}
    assert None not in bundles
    synchronous_writes = [w for w in writes if w["taskId"] is None]
    if synchronous_writes:
        went_in = [
            r
            for r in emulator.admin("GET", "/requests")
            if r["route"] == "bundle" and r["status"] == 200
        ]
        assert len(went_in) == len(bundles)
    tasks_that_wrote = {w["taskId"] for w in writes if w["taskId"] is not None}
    assert tasks_that_wrote == {s.task_id for s in statuses if s.task_id is not None}


def test_workers_drain_a_stream_published_before_they_start(
    deps: Deps, emulator: Emulator, workers: Workers
) -> None:
    # Given the whole stream buffered before any worker runs (synchronous Registry) ...
    events = make_stream(sources=SOURCES, groups=GROUPS, events=EVENTS)
    publish_all(deps, events)
    assert backlog(deps).total > 0

    # ... when two workers start, their tickers flush every group.
    workers.start(2, concurrency=2)
    wait_drained(deps, workers, DRAIN_TIMEOUT_S)

    statuses = check_every_outcome_recorded(deps, events)
    check_registry_matches_oracle(emulator, events, SOURCES)
    check_no_operation_applied_twice(emulator, events, statuses)
    requests = emulator.admin("GET", "/requests")
    assert len(requests) * 100 <= MAX_REQUESTS_PER_100_EVENTS * len(events), len(requests)


def test_workers_drain_a_stream_published_while_they_run_async(
    deps: Deps, emulator: Emulator, workers: Workers
) -> None:
    # Given a Registry that answers ACCEPTED and keeps each task PENDING for a poll ...
    emulator.admin("PATCH", "/config", json={"mode": "async", "task_pending_polls": 1})
    workers.start(2, concurrency=2)
    events = make_stream(sources=SOURCES, groups=GROUPS, events=EVENTS, seed=29)

    # ... when the stream is published while the workers run ...
    publish_all(deps, events, batch=500)
    wait_drained(deps, workers, DRAIN_TIMEOUT_S)

    # ... every event ends recorded and the Registry matches the oracle.
    statuses = check_every_outcome_recorded(deps, events)
    check_registry_matches_oracle(emulator, events, SOURCES)
    check_no_operation_applied_twice(emulator, events, statuses)
    highest = emulator.admin("GET", "/concurrency")["highest"]
    assert highest, "no task was polled"
    assert max(highest.values()) == 1


def test_three_workers_poll_each_task_alone(
    deps: Deps, emulator: Emulator, workers: Workers
) -> None:
    # Given tasks that stay PENDING for three polls, and work due before any worker runs ...
    emulator.admin("PATCH", "/config", json={"mode": "async", "task_pending_polls": 3})
    events = make_stream(sources=SOURCES, groups=60, events=1200, seed=5, deletes=False)
    publish_all(deps, events)

    # ... when three workers (three tickers, three pollers) start on the same Redis ...
    workers.start(3, concurrency=1)
    wait_drained(deps, workers, DRAIN_TIMEOUT_S)

    # ... every task was polled, never by two workers at once, and nothing was applied twice.
    highest = emulator.admin("GET", "/concurrency")["highest"]
    statuses = check_every_outcome_recorded(deps, events)
    assert {s.task_id for s in statuses} <= set(highest)
    assert max(highest.values()) == 1
    check_registry_matches_oracle(emulator, events, SOURCES)
    check_no_operation_applied_twice(emulator, events, statuses)

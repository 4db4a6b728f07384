"""A task held PENDING in review past its poll deadline: STALE, still polled, then recorded."""

from __future__ import annotations

import time
from typing import Any

import pytest

from worker.pipeline import run_due
from worker.results import backlog, event_status

from .checks import check_against_oracle
from .conftest import SOURCE, HarnessFactory

pytestmark = pytest.mark.integration

REVIEW_POLLS = 12
"""Polls the emulator answers PENDING (receipts IN_REVIEW) before the task ends."""


def task_polls(harness) -> int:
    return sum(1 for r in harness.requests() if r["route"] == "task_status")


def test_pipeline_task_in_review_past_its_deadline_is_stale_then_recorded(
    harness_factory: HarnessFactory,
):
    # Given a bundle whose task stays PENDING (in review) for many polls, and a short deadline
    harness = harness_factory(
        poll_first_ms=10, poll_cap_ms=20, poll_deadline_ms=150, poll_slow_cap_ms=40
    )
    harness.add_fault(
        {"route": "bundle", "times": 1, "effect": {"kind": "pending", "polls": REVIEW_POLLS}}
    )
    events: list[dict[str, Any]] = [
        {"eventId": f"r{i}", "sourceKey": SOURCE, "target": "resource", "action": "UPSERT",
         "type": "office", "id": f"o{i}", "data": {"name": f"Office {i}"}}
        for i in range(3)
    ]  # fmt: skip
    harness.publish(events)

    # When run_due runs until the task is past its deadline
    deadline = time.monotonic() + 20
    while event_status(harness.deps, "r0").status != "stale":
        assert time.monotonic() < deadline, event_status(harness.deps, "r0").to_dict()
        if run_due(harness.deps).idle:
            time.sleep(0.005)

    # Then every event of it shows STALE, the backlog counts it, and the task is not failed
    assert {event_status(harness.deps, e["eventId"]).status for e in events} == {"stale"}
    current = backlog(harness.deps)
    assert current.stale == 1
    assert current.in_flight == 3
    assert current.total > 0
    polls_when_stale = task_polls(harness)
    assert polls_when_stale < REVIEW_POLLS + 2

    # And it is still polled (at the slow cap) until it ends, then recorded once
    harness.drain(deadline_s=30)
    assert task_polls(harness) > polls_when_stale
    assert {event_status(harness.deps, e["eventId"]).status for e in events} == {"applied"}
    assert backlog(harness.deps).stale == 0
    check_against_oracle(harness.deps, harness.registry, SOURCE, harness.stored_events())
    with harness.admin() as admin:
        highest = admin.get("/_emulator/concurrency").json()["highest"]
    assert set(highest.values()) == {1}  # one poller at a time

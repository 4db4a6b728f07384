"""A message delivered again, or late, changes nothing but timing: it never skips a schedule.

A poll message handled twice polls the task once, the second copy finding its next poll not due;
a recover message for a released bundle before its retry time leaves it alone, and the bundle is
sent again at its retry time, not before.
"""

from __future__ import annotations

from typing import Any

import pytest

from emulator.config import EmulatorConfig, SourceMode
from tests.waiting import wait_for
from worker.flow.pausing import active_pauses
from worker.pipeline import claim_due, flush, poll, recover
from worker.results import event_status
from worker.store.keys import SourceKeys

from .conftest import SOURCE, Harness, HarnessFactory

pytestmark = pytest.mark.integration

EVENTS: list[dict[str, Any]] = [
    {"eventId": f"ev-o{i}", "sourceKey": SOURCE, "target": "resource", "action": "UPSERT",
     "type": "office", "id": f"o{i}", "data": {"name": f"Office {i}"}}
    for i in range(2)
]  # fmt: skip


def routes(harness: Harness, route: str) -> list[dict[str, Any]]:
    return [r for r in harness.requests() if r["route"] == route]


def test_repeats_poll_message_handled_twice_polls_the_task_once(
    harness_factory: HarnessFactory,
) -> None:
    harness = harness_factory(
        EmulatorConfig(mode=SourceMode.ASYNC, task_pending_polls=5), poll_first_ms=10
    )
    harness.publish(EVENTS)
    wait_for(lambda: claim_due(harness.deps, limit=10).flush)
    assert flush(harness.deps, SOURCE).accepted == 1
    bundle = event_status(harness.deps, "ev-o0").bundle_id
    assert bundle

    # the ticker hands the due poll out once; its message is delivered twice
    wait_for(lambda: claim_due(harness.deps, limit=10).poll.get(SOURCE) == [bundle])
    first = poll(harness.deps, SOURCE, [bundle])
    again = poll(harness.deps, SOURCE, [bundle])

    assert len(routes(harness, "task_status")) == 1
    assert (first.polled, first.pending) == (1, 1)
    assert (again.polled, again.early) == (0, 1)
    fields = harness.deps.store.bundle_fields(SOURCE, bundle, "pn", "prcv")
    assert fields == {"pn": "1"}  # one poll written, no claimant counted as gone
    harness.drain(deadline_s=20)
    assert {event_status(harness.deps, e["eventId"]).status for e in EVENTS} == {"applied"}


def test_repeats_recover_message_before_the_retry_time_does_not_resubmit(
    harness_factory: HarnessFactory,
) -> None:
    # a refused key: the source pauses briefly, the bundle is released for seconds
    harness = harness_factory(pause_base_ms=20, retry_base_ms=3000, retry_cap_ms=3000)
    harness.add_fault({"route": "bundle", "first": 1, "effect": {"kind": "status", "status": 401}})
    harness.publish(EVENTS)
    wait_for(lambda: claim_due(harness.deps, limit=10).flush)
    assert flush(harness.deps, SOURCE).released == 1
    bundle = event_status(harness.deps, "ev-o0").bundle_id
    assert bundle
    retry_at = harness.deps.store.client.zscore(SourceKeys(SOURCE).claims, bundle)
    assert retry_at is not None
    assert retry_at - harness.deps.now_ms() > 1000
    wait_for(lambda: not active_pauses(harness.deps, [SOURCE], harness.deps.now_ms()))

    # a recover message for it (a nudge, a copy) arrives before its retry time
    early = recover(harness.deps, SOURCE, [bundle])

    assert len(routes(harness, "bundle")) == 1
    assert (early.claimed, early.early, early.resubmitted) == (0, 1, 0)
    harness.drain(deadline_s=20)
    assert [r["status"] for r in routes(harness, "bundle")] == [401, 200]
    assert {event_status(harness.deps, e["eventId"]).status for e in EVENTS} == {"applied"}

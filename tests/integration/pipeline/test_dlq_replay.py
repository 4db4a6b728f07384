"""Dead letters replayed with corrected data, and a STALE task abandoned by an operator."""

from __future__ import annotations

import time
from typing import Any

import pytest

from worker.abandon import STALE, abandon
from worker.deadletters import Correction, DlqFilter, list_dead_letters, replay, show
from worker.pipeline import run_due
from worker.results import backlog, event_status
from worker.store.keys import SourceKeys

from .conftest import SOURCE, Harness, HarnessFactory

pytestmark = pytest.mark.integration


def office(event_id: str, office_id: str, **data: Any) -> dict[str, Any]:
    data = {"name": f"Office {office_id}", **data}
    return {"eventId": event_id, "sourceKey": SOURCE, "target": "resource", "action": "UPSERT",
            "type": "office", "id": office_id, "data": data}  # fmt: skip


def attempts(harness: Harness, event_id: str) -> int:
    return int(harness.deps.store.client.hget(SourceKeys(SOURCE).event(event_id), "att") or 0)


def test_dlq_replay_with_corrected_data_lands_under_the_same_event_id(
    harness_factory: HarnessFactory,
):
    # Given an event the Registry refuses (an unknown property), dead-lettered
    # the Registry's refusal of off-profile content is under test: no pre-validation
    harness = harness_factory(profile_validation=False)
    harness.publish([office("bad-1", "o1", colour="blue")])
    harness.drain(deadline_s=20)
    assert event_status(harness.deps, "bad-1").status == "dead_lettered"
    [letter] = list_dead_letters(harness.deps, DlqFilter(event_id="bad-1"))
    assert letter.stage == "record"
    assert letter.error_type == "FAILED_PRECONDITION"  # the emulator's type for it
    assert letter.message == "invalid schema for office"
    assert attempts(harness, "bad-1") == 1

    # When it is replayed with corrected data
    [item] = replay(
        harness.deps,
        DlqFilter(sources=(SOURCE,), event_id="bad-1"),
        correction=Correction(data={"name": "Office o1"}),
    )
    assert item.outcome == "replayed"
    harness.drain(deadline_s=20)

    # Then it lands: APPLIED, the same event id, its second attempt; its entry is gone
    status = event_status(harness.deps, "bad-1")
    assert status.status == "applied"
    assert attempts(harness, "bad-1") == 2
    assert show(harness.deps, "bad-1") == []

    # And a replay of the applied event is refused (even from a stale copy of its entry)
    harness.deps.store.client.xadd(
        SourceKeys(SOURCE).dlq,
        {"eventId": "bad-1", "stage": "record", "error": "{}", "event": letter.event,
         "failedAt": "1"},
    )  # fmt: skip
    [again] = replay(harness.deps, DlqFilter(event_id="bad-1"))
    assert again.outcome == "refused"
    assert "applied" in again.detail
    assert event_status(harness.deps, "bad-1").status == "applied"
    assert attempts(harness, "bad-1") == 2


def test_dlq_abandon_of_a_stale_task_releases_its_locks(harness_factory: HarnessFactory):
    # Given a task held PENDING in review past its poll deadline (STALE)
    harness = harness_factory(
        poll_first_ms=10, poll_cap_ms=20, poll_deadline_ms=100, poll_slow_cap_ms=40
    )
    harness.add_fault(
        {"route": "bundle", "times": 1, "effect": {"kind": "pending", "polls": 100_000}}
    )
    harness.publish([office("s1", "o1"), office("s2", "o2")])
    deadline = time.monotonic() + 20
    while event_status(harness.deps, "s1").status != "stale":
        assert time.monotonic() < deadline, event_status(harness.deps, "s1").to_dict()
        if run_due(harness.deps).idle:
            time.sleep(0.005)
    task_id = event_status(harness.deps, "s1").to_dict()["taskId"]
    assert task_id
    assert backlog(harness.deps).stale == 1

    # When an operator abandons it
    result = abandon(harness.deps, task_id)

    # Then its events are dead-lettered with the reason STALE and its locks released
    assert result.done, result.to_dict()
    assert result.dead_letters == 2
    assert {event_status(harness.deps, e).status for e in ("s1", "s2")} == {"dead_lettered"}
    letters = list_dead_letters(harness.deps, DlqFilter(error_type=STALE))
    assert {(x.event_id, x.reason) for x in letters} == {("s1", STALE), ("s2", STALE)}
    names = SourceKeys(SOURCE)
    assert harness.deps.store.client.hlen(names.hold_writer) == 0
    assert harness.deps.store.client.zscore(names.polls, result.bundle_id) is None
    assert backlog(harness.deps).total == 0
    assert abandon(harness.deps, task_id).code == "unknown"

    # And a later event on the same entity goes through
    harness.publish([office("s3", "o1")])
    harness.drain(deadline_s=20)
    assert event_status(harness.deps, "s3").status == "applied"

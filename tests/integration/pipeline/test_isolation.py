"""Failure isolation end to end: a bundle refused as a whole is bisected down to the bad operation,
and an innocent cancelled once too often is dead-lettered with the cap as its reason."""

from __future__ import annotations

import json
from typing import Any

import pytest

from worker.deadletters import show
from worker.results import event_status

from .conftest import SOURCE, HarnessFactory
from .oracle import one_by_one

pytestmark = pytest.mark.integration


def office(i: str, action: str = "UPSERT") -> dict[str, Any]:
    event: dict[str, Any] = {
        "eventId": f"ev-{i}", "sourceKey": SOURCE, "target": "resource", "action": action,
        "type": "office", "id": i,
    }  # fmt: skip
    if action != "DELETE":
        event["data"] = {"name": f"Office {i}"}
    return event


def test_isolation_refused_whole_is_bisected_down_to_the_bad_operation(
    harness_factory: HarnessFactory,
) -> None:
    harness = harness_factory(max_bisect_depth=8)
    ids = [f"o{n}" for n in range(1, 9)]
    harness.add_fault(
        {"route": "bundle", "op_id": "o6", "effect": {"kind": "status", "status": 400}}
    )
    harness.publish([office(i) for i in ids])

    harness.drain(deadline_s=30)

    statuses = {i: event_status(harness.deps, f"ev-{i}", source=SOURCE) for i in ids}
    assert statuses["o6"].status == "dead_lettered"
    assert {i for i, s in statuses.items() if s.status == "applied"} == set(ids) - {"o6"}
    (letter,) = show(harness.deps, "ev-o6", sources=[SOURCE])
    assert letter.stage == "record"
    assert "refused as a whole" in letter.reason
    assert json.loads(letter.event)["id"] == "o6"
    assert statuses["o6"].error["code"] == 400
    sent = [(r["status"], r["ids"]) for r in harness.requests() if r["route"] == "bundle"]
    assert sent == [
        (400, ids),
        (200, ids[:4]),
        (400, ids[4:]),
        (400, ["o5", "o6"]),
        (200, ["o5"]),
        (400, ["o6"]),
        (200, ["o7", "o8"]),
    ]
    kept = [e for e in harness.stored_events() if e.event_id != "ev-o6"]
    assert harness.registry.snapshot(SOURCE) == one_by_one(SOURCE, kept).state.snapshot()


def test_isolation_cancelled_innocent_is_dead_lettered_at_the_cap(
    harness_factory: HarnessFactory,
) -> None:
    # no foresight: the DELETE of an office never seen would be sent alone, cancelling nobody
    harness = harness_factory(max_event_attempts=1, foresight=False)
    # the DELETE of a missing office fails (NOT_FOUND) and cancels the innocent sharing its bundle
    harness.publish([office("gone", "DELETE"), office("innocent")])

    harness.drain(deadline_s=30)

    gone = event_status(harness.deps, "ev-gone", source=SOURCE)
    innocent = event_status(harness.deps, "ev-innocent", source=SOURCE)
    assert (gone.status, gone.fate) == ("dead_lettered", "FAILED")
    assert (innocent.status, innocent.attempts) == ("dead_lettered", 1)
    assert innocent.reason is not None
    assert "max_event_attempts (1) reached" in innocent.reason
    (letter,) = show(harness.deps, "ev-innocent", sources=[SOURCE])
    assert "cancelled by a neighbour's failure at submission 1" in letter.reason
    assert harness.registry.snapshot(SOURCE) == one_by_one(SOURCE, []).state.snapshot()


def test_isolation_cancelled_innocent_below_the_cap_is_resubmitted_and_lands(
    harness_factory: HarnessFactory,
) -> None:
    harness = harness_factory(max_event_attempts=2, foresight=False)  # shared, as above
    harness.publish([office("gone", "DELETE"), office("innocent")])

    harness.drain(deadline_s=30)

    innocent = event_status(harness.deps, "ev-innocent", source=SOURCE)
    assert (innocent.status, innocent.attempts) == ("applied", 2)
    kept = [e for e in harness.stored_events() if e.event_id != "ev-gone"]
    assert harness.registry.snapshot(SOURCE) == one_by_one(SOURCE, kept).state.snapshot()

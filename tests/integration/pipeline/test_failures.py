"""A client error during submit or poll never loses an event or corrupts a record.

Certainly-not-processed answers (429, 503, 401) release the bundle and it is submitted again;
a worker that dies before sending leaves a record that recovery submits. Maybe-applied answers
are resolved by reading back (test_readback.py); a refusal without receipts is bisected
(test_isolation.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from worker.pipeline import flush
from worker.results import event_status

from .checks import check_against_oracle
from .conftest import SOURCE

pytestmark = pytest.mark.integration


def offices(*ids: str) -> list[dict[str, Any]]:
    return [
        {"eventId": f"ev-{i}", "sourceKey": SOURCE, "target": "resource", "action": "UPSERT",
         "type": "office", "id": i, "data": {"name": f"Office {i}"}}
        for i in ids
    ]  # fmt: skip


@pytest.mark.parametrize(
    "effect",
    [
        {"kind": "status", "status": 429, "retry_after": "0"},
        {"kind": "status", "status": 503},
        {"kind": "status", "status": 401},
        {"kind": "status", "status": 403},
    ],
    ids=["429", "503", "401", "403"],
)
def test_failures_certainly_not_processed_is_submitted_again(harness_factory, effect):
    harness = harness_factory()
    harness.add_fault({"route": "bundle", "first": 2, "effect": effect})
    harness.publish(offices("o1", "o2"))

    harness.drain(deadline_s=20)

    bundles = [r for r in harness.requests() if r["route"] == "bundle"]
    assert [r["status"] for r in bundles] == [effect["status"]] * 2 + [200]
    assert {event_status(harness.deps, e).status for e in ("ev-o1", "ev-o2")} == {"applied"}
    check_against_oracle(harness.deps, harness.registry, SOURCE, harness.stored_events())


def test_failures_worker_dying_before_sending_is_recovered_and_submitted(harness_factory):
    harness = harness_factory(http_deadline_s=0.2, claim_ttl_ms=300)
    harness.publish(offices("o1", "o2"))
    store = harness.deps.store
    original = store.mark_sending

    def crash(*args: Any, **kwargs: Any) -> bool:
        raise RuntimeError("worker killed before sending")

    store.mark_sending = crash
    with pytest.raises(RuntimeError):
        flush(harness.deps, SOURCE, ["office:o1", "office:o2"])
    store.mark_sending = original
    assert event_status(harness.deps, "ev-o1").status == "in_flight"

    harness.drain(deadline_s=10)

    assert {event_status(harness.deps, e).status for e in ("ev-o1", "ev-o2")} == {"applied"}
    check_against_oracle(harness.deps, harness.registry, SOURCE, harness.stored_events())


def test_failures_poll_errors_are_retried_until_the_task_ends(harness_factory):
    harness = harness_factory()
    harness.add_fault({"route": "bundle", "times": 1, "effect": {"kind": "force_async"}})
    harness.add_fault(
        {"route": "task_status", "first": 6, "effect": {"kind": "status", "status": 500}}
    )
    harness.publish(offices("o1", "o2"))

    harness.drain(deadline_s=20)

    assert {event_status(harness.deps, e).status for e in ("ev-o1", "ev-o2")} == {"applied"}
    check_against_oracle(harness.deps, harness.registry, SOURCE, harness.stored_events())

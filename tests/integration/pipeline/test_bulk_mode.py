"""A backfill published in bulk mode leaves in bulk requests and ends like the one-by-one oracle.

The events are buffered apart (bulk buffers), flushed by `run_due` into resource and relationship
bulk requests, polled as `bk_` tasks and recorded per event: a failed operation fails alone.
"""

from __future__ import annotations

from typing import Any, cast

import pytest

from worker.results import event_status
from worker.store.keys import SourceKeys

from .checks import check_against_oracle
from .conftest import SOURCE, HarnessFactory

pytestmark = pytest.mark.integration

OFFICES = 80
PROVIDERS = 120
LINKS = 150


def office(eid: str, office_id: str, action: str = "UPSERT") -> dict[str, Any]:
    return {"eventId": eid, "sourceKey": SOURCE, "target": "resource", "action": action,
            "type": "office", "id": office_id, "data": {"name": f"Office {office_id}"}}  # fmt: skip


def provider(index: int) -> dict[str, Any]:
    return {"eventId": f"bf-p{index}", "sourceKey": SOURCE, "target": "resource",
            "action": "UPSERT", "type": "provider", "id": f"p{index}",
            "data": {"name": f"Provider {index}", "practiceNumber": index}}  # fmt: skip


def link(index: int) -> dict[str, Any]:
    return {"eventId": f"bf-l{index}", "sourceKey": SOURCE, "target": "relationship",
            "action": "UPSERT", "type": "provider-office",
            "from": {"type": "office", "id": f"o{index % OFFICES}"},
            "to": {"type": "provider", "id": f"p{(index * 7) % PROVIDERS}"},
            "data": {"description": f"link {index}"}}  # fmt: skip


def backfill() -> list[dict[str, Any]]:
    """Offices, then providers (one CREATE of an office that exists among them), then links."""
    events = [office(f"bf-o{i}", f"o{i}") for i in range(1, OFFICES)]
    providers = [provider(i) for i in range(PROVIDERS)]
    middle = PROVIDERS // 2
    clash = office("bf-clash", "o0", action="CREATE")
    events += [*providers[:middle], clash, *providers[middle:]]
    events += [link(i) for i in range(LINKS)]
    return events


def test_bulk_mode_backfill_ends_like_one_by_one_in_bulk_requests(
    harness_factory: HarnessFactory,
) -> None:
    harness = harness_factory()
    harness.publish([office("live-o0", "o0")])
    harness.drain(deadline_s=20)
    before = len(harness.requests())

    report = harness.publish(backfill(), mode="bulk")
    assert report.errors == []
    harness.drain(deadline_s=60)

    _, statuses = check_against_oracle(
        harness.deps, harness.registry, SOURCE, harness.stored_events()
    )
    clash = statuses["bf-clash"]
    assert clash.status == "dead_lettered"
    assert isinstance(clash.error, dict)
    assert clash.error.get("type") == "ALREADY_EXISTS"
    neighbours = [f"bf-p{PROVIDERS // 2 - 1}", f"bf-p{PROVIDERS // 2}"]
    assert [statuses[e].status for e in neighbours] == ["applied", "applied"]
    dlq = SourceKeys(SOURCE).dlq
    letters = cast(list[tuple[str, dict[str, str]]], harness.deps.store.client.xrange(dlq))
    assert [fields.get("eventId") for _, fields in letters] == ["bf-clash"]
    routes = [r["route"] for r in harness.requests()[before:]]
    writes = [r for r in routes if r in ("bundle", "resources_bulk", "relationships_bulk")]
    assert "bundle" not in writes
    assert {"resources_bulk", "relationships_bulk"} <= set(writes)
    assert "task_status" in routes  # `bk_` task ids are polled on /tasks/{taskId}
    pattern = SourceKeys(SOURCE).prefix + "task:*"
    tasks = [str(key) for key in harness.deps.store.client.keys(pattern)]
    assert tasks
    assert all(key.rsplit(":", 1)[1].startswith("bk_") for key in tasks)
    backfilled = [e for e in harness.published if e.startswith("bf-")]
    assert len(backfilled) == OFFICES - 1 + PROVIDERS + 1 + LINKS
    assert all(event_status(harness.deps, e, source=SOURCE).status != "pending" for e in backfilled)


def test_bulk_mode_refused_request_fails_only_the_bad_event_and_lands_the_rest(
    harness_factory: HarnessFactory,
) -> None:
    # Given a backfill with one office the profile refuses: the Registry validates a bulk request
    # before accepting it, so it answers REJECTED with receipts (FAILURE for it, CANCELLED for
    # the others) and applies nothing.
    # the Registry's refusal of off-profile content is under test: no pre-validation
    harness = harness_factory(profile_validation=False)
    bad = office("bf-bad", "o-bad")
    bad["data"] = {"name": "Office o-bad", "UNKNOWN": "x"}
    events = [office(f"bf-o{i}", f"o{i}") for i in range(10)]
    events.insert(5, bad)

    report = harness.publish(events, mode="bulk")
    assert report.errors == []
    harness.drain(deadline_s=30)

    # Then only the bad event is dead-lettered; the cancelled innocents were sent again and landed.
    _, statuses = check_against_oracle(
        harness.deps, harness.registry, SOURCE, harness.stored_events()
    )
    assert statuses["bf-bad"].status == "dead_lettered"
    assert all(statuses[f"bf-o{i}"].status == "applied" for i in range(10))
    refusals = [r for r in harness.requests() if r["route"] == "resources_bulk"]
    assert refusals[0]["status"] == 400, "the first bulk request was refused before acceptance"
    assert any(r["status"] == 202 for r in refusals[1:]), "the innocents were resubmitted"


@pytest.mark.parametrize(
    ("settings", "most_ops"),
    [
        ({"max_bulk_ops": 7}, 7),
        # every operation carries a 200-character name, so 4 of them fill 1000 bytes
        ({"max_bulk_bytes": 1000}, (1000 - len('{"operations":[]}')) // 201),
    ],
    ids=["operations", "bytes"],
)
def test_bulk_mode_requests_keep_the_caps_the_settings_give(
    harness_factory: HarnessFactory, settings: dict[str, int], most_ops: int
) -> None:
    harness = harness_factory(**settings)
    events = [office(f"bf-o{i}", f"o{i}") for i in range(20)]
    for event in events:
        event["data"] = {"name": f"{event['id']:<200}"}

    report = harness.publish(events, mode="bulk")
    assert report.errors == []
    harness.drain(deadline_s=30)

    counts = [r["opCount"] for r in harness.requests() if r["route"] == "resources_bulk"]
    assert sum(counts) == len(events)
    assert max(counts) <= most_ops
    assert len(counts) >= -(-len(events) // most_ops)
    statuses = [event_status(harness.deps, e["eventId"], source=SOURCE).status for e in events]
    assert statuses == ["applied"] * len(events)

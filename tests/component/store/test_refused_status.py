"""An event refused at publish says so in its status, and stays free to be published again."""

from __future__ import annotations

from typing import Any

from worker.publisher import publish
from worker.results import event_status

from .conftest import SOURCE


def upsert(eid: str, **fields: Any) -> dict[str, Any]:
    return {"eventId": eid, "sourceKey": SOURCE, "target": "resource", "action": "UPSERT",
            "type": "provider", "id": "p1", "data": {"name": eid}, **fields}  # fmt: skip


def test_refused_by_the_publisher_is_dead_lettered_at_publish_with_its_problems(store):
    missing_type = upsert("bad-1")
    del missing_type["type"]

    publish(store, [missing_type])

    status = event_status(store, "bad-1")
    assert (status.status, status.source_key, status.fate) == ("dead_lettered", SOURCE, "FAILED")
    assert status.reason == "refused at publish"
    assert status.error == {"problems": [{"field": "type", "reason": "is required"}]}
    assert SOURCE in store.sources()  # its dead letters are listed with the source's


def test_refused_by_the_publish_script_is_dead_lettered_at_publish(store):
    publish(store, [upsert("a1")])

    # an atomic batch part of which was published before is refused whole, by the script
    publish(store, [upsert("a1"), upsert("a2", id="p2")], atomic=True)

    status = event_status(store, "a2")
    assert status.status == "dead_lettered"
    assert isinstance(status.error, dict)
    assert status.error["field"] == "atomicBatch"
    assert event_status(store, "a1").status == "pending"  # known before: left as it was


def test_a_refused_event_published_again_corrected_is_not_a_duplicate(store):
    missing_type = upsert("e1")
    del missing_type["type"]
    publish(store, [missing_type])

    report = publish(store, [upsert("e1")])

    assert [a.event_id for a in report.accepted] == ["e1"]
    assert event_status(store, "e1").status == "pending"


def test_a_bad_publish_never_overwrites_an_event_known_under_that_id(store):
    publish(store, [upsert("e1")])
    bad = upsert("e1")
    del bad["type"]

    publish(store, [bad])

    assert event_status(store, "e1").status == "pending"

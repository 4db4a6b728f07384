"""Rule F: a bundle sending events again holds back only the followers that share an entity
with it; a refused merged DELETE unmerges its cancelled neighbours instead of retrying them."""

from __future__ import annotations

from typing import Any

import pytest

from worker.pipeline import flush
from worker.results import event_status

from .checks import check_against_oracle
from .conftest import SOURCE, HarnessFactory

pytestmark = pytest.mark.integration


def office(eid: str, action: str, id_: str, **fields: Any) -> dict[str, Any]:
    event = {"eventId": eid, "sourceKey": SOURCE, "target": "resource", "action": action,
             "type": "office", "id": id_, "group": "g", **fields}  # fmt: skip
    if action != "DELETE":
        event.setdefault("data", {"name": eid})
    return event


def test_followers_sharing_nothing_with_a_refused_bundle_still_go_in_the_same_flush(
    harness_factory: HarnessFactory,
):
    harness = harness_factory(foresight=False)  # foresight would not merge the UPSERT+DELETE
    harness.publish([office("ev-p1", "UPSERT", "p1")])
    harness.drain(deadline_s=20)
    harness.publish(
        [
            # a merged UPSERT+DELETE of an office that never existed: refused NOT_FOUND
            office("ev-u9", "UPSERT", "o9"),
            office("ev-d9", "DELETE", "o9"),
            # a DELETE then a re-create of p1: two bundles, the second a follower
            office("ev-del", "DELETE", "p1"),
            office("ev-new", "UPSERT", "p1"),
        ]
    )

    result = flush(harness.deps, SOURCE, ["g"])

    # the merged DELETE, unmerged: planned again where it was, not sent back to the log
    assert (result.events_replanned, result.events_rebuffered) == (2, 0)
    assert event_status(harness.deps, "ev-new").status == "applied"  # not held back by it
    harness.drain(deadline_s=20)
    check_against_oracle(harness.deps, harness.registry, SOURCE, harness.stored_events())


def test_foresight_does_not_merge_an_upsert_and_delete_of_an_entity_it_knows_absent(
    harness_factory: HarnessFactory,
):
    harness = harness_factory()
    harness.publish([office("ev-e1", "UPSERT", "e1"), office("ev-e2", "UPSERT", "e2")])
    harness.drain(deadline_s=20)
    harness.publish([office("ev-x2", "DELETE", "e2")])
    harness.drain(deadline_s=20)  # e1 known to exist, e2 known absent
    harness.publish(
        [
            office("ev-u1", "UPSERT", "e1"),  # e1 exists: merged with its DELETE, applies
            office("ev-d1", "DELETE", "e1"),
            office("ev-u2", "UPSERT", "e2"),  # e2 absent: merged, it would be refused
            office("ev-d2", "DELETE", "e2"),
        ]
    )
    requests_before = len([r for r in harness.requests() if r["route"] == "bundle"])
    harness.drain(deadline_s=20)

    bundles = [r for r in harness.requests() if r["route"] == "bundle"][requests_before:]
    assert all(r["status"] == 200 for r in bundles), bundles  # nothing refused
    # e1's merged DELETE in a bundle of its kind, e2's UPSERT, then e2's DELETE: one op each
    assert [r["opCount"] for r in bundles] == [1, 1, 1]
    fates = {eid: event_status(harness.deps, eid) for eid in ("ev-u1", "ev-d1", "ev-u2", "ev-d2")}
    assert {eid: (s.fate, s.attempts) for eid, s in fates.items()} == {
        "ev-u1": ("COALESCED", 1),
        "ev-d1": ("APPLIED", 1),
        "ev-u2": ("APPLIED", 1),
        "ev-d2": ("APPLIED", 1),
    }
    check_against_oracle(harness.deps, harness.registry, SOURCE, harness.stored_events())


def test_merged_deletes_cancelled_by_a_neighbour_are_replayed_unmerged(
    harness_factory: HarnessFactory,
):
    harness = harness_factory(foresight=False)  # foresight would not merge o2's UPSERT+DELETE
    harness.publish([office("ev-e1", "UPSERT", "e1")])
    harness.drain(deadline_s=20)
    harness.publish(
        [
            office("ev-u1", "UPSERT", "e1"),  # e1 exists: this merge alone would apply
            office("ev-d1", "DELETE", "e1"),
            office("ev-u2", "UPSERT", "o2"),  # o2 never existed: refused NOT_FOUND
            office("ev-d2", "DELETE", "o2"),
        ]
    )

    requests_before = len([r for r in harness.requests() if r["route"] == "bundle"])
    flush(harness.deps, SOURCE, ["g"])
    harness.drain(deadline_s=20)

    # both merged DELETEs were planned again unmerged (one refused, one cancelled), and sent
    # by the same flush: each event alone, the UPSERTs then the DELETEs, none refused again
    bundles = [r for r in harness.requests() if r["route"] == "bundle"][requests_before:]
    assert [r["opCount"] for r in bundles] == [2, 2, 2]
    for eid in ("ev-u1", "ev-d1", "ev-u2", "ev-d2"):
        status = event_status(harness.deps, eid)
        assert (status.status, status.attempts) == ("applied", 2), eid
    check_against_oracle(harness.deps, harness.registry, SOURCE, harness.stored_events())

"""The request log and the per-task in-flight counter."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from emulator.requestlog import (
    ConcurrencyTracker,
    RequestLog,
    RequestRecord,
    payload_ids,
    summarise_operations,
)

AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_request_log_keeps_the_last_entries_in_order():
    log = RequestLog(max_entries=2)
    for path in ("/a", "/b", "/c"):
        log.append(RequestRecord(method="GET", path=path, at=AT))
    entries = log.entries()
    assert [entry["path"] for entry in entries] == ["/b", "/c"]
    assert [entry["seq"] for entry in entries] == [2, 3]
    assert entries[0]["at"] == "2026-01-02T03:04:05Z"
    log.clear()
    assert log.entries() == []


def test_request_log_refuses_a_zero_size():
    with pytest.raises(ValueError, match="max_entries"):
        RequestLog(max_entries=0)


def test_concurrency_tracker_counts_overlapping_requests_per_key():
    tracker = ConcurrencyTracker()
    with tracker.track("bk_1"), tracker.track("bk_1"):
        assert tracker.current() == {"bk_1": 2}
        with tracker.track("bk_2"):
            pass
    with tracker.track("bk_1"):
        pass
    assert tracker.highest() == {"bk_1": 2, "bk_2": 1}
    assert tracker.current() == {}
    tracker.clear()
    assert tracker.highest() == {}


def test_concurrency_tracker_releases_on_error():
    tracker = ConcurrencyTracker()
    with pytest.raises(RuntimeError), tracker.track("t"):
        raise RuntimeError("boom")
    assert tracker.current() == {}


def test_concurrency_tracker_is_thread_safe():
    tracker = ConcurrencyTracker()
    inside = threading.Barrier(4)

    def worker() -> None:
        with tracker.track("t"):
            inside.wait(timeout=5)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    assert tracker.highest() == {"t": 4}


def test_summarise_operations_counts_bulk_and_bundle_operations():
    bundle = {
        "resourceOperations": [
            {"action": "UPSERT", "upsert": {"id": "1", "type": "office", "data": {}}},
            {"action": "CREATE", "create": {"type": "provider", "data": {}}},
        ],
        "relationshipOperations": [
            {
                "action": "UPSERT",
                "upsert": {"type": "r", "from": {"id": "1"}, "to": {"id": "2"}},
            }
        ],
    }
    assert summarise_operations(bundle) == (3, ("1", "2"))
    bulk = {"operations": [{"action": "DELETE", "delete": {"id": "9", "type": "office"}}, "junk"]}
    assert summarise_operations(bulk) == (2, ("9",))
    assert summarise_operations([1, 2]) == (0, ())


def test_payload_ids_reads_id_from_and_to():
    assert payload_ids({"id": "a", "from": {"id": "b"}, "to": {"id": "c"}}) == ("a", "b", "c")
    assert payload_ids({"from": {"id": 3}}) == ()
    assert payload_ids(None) == ()

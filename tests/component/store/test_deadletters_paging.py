"""`dlq purge` and `dlq replay` page through a stream: memory holds one page, not the stream.

A stream far larger than a page (2,000 entries of about 2 KB, pages of 50) is purged and replayed;
the XRANGE/XREVRANGE calls are counted (never more than a page held), and tracemalloc's peak stays
far below the stream's payload bytes (about 4 MB, which a whole-stream read would hold at once).
"""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest
import redis

from worker.deadletters import DlqFilter, purge, replay
from worker.store import Store
from worker.store.keys import SourceKeys

from .conftest import SOURCE, fast_settings

ENTRIES = 2000
PAGE = 50
PAYLOAD = 2000
STREAM_BYTES = ENTRIES * PAYLOAD


def fill(client: redis.Redis, numbers: range = range(ENTRIES), *, failed_at: int = 1) -> None:
    """A dead letter for each event e<number>, in order, as record.lua writes them."""
    dlq = SourceKeys(SOURCE).dlq
    pipe = client.pipeline(transaction=False)
    pipe.sadd("ingest:sources", SOURCE)
    for i in numbers:
        event = {
            "eventId": f"e{i}", "sourceKey": SOURCE, "target": "resource", "action": "UPSERT",
            "type": "provider", "id": f"p{i}", "data": {"note": "x" * PAYLOAD},
        }  # fmt: skip
        error = json.dumps({"type": "INVALID_ARGUMENT", "message": "bad"})
        fields = {"eventId": f"e{i}", "stage": "record", "error": error,
                  "event": json.dumps(event), "failedAt": str(failed_at)}  # fmt: skip
        pipe.xadd(dlq, fields)  # type: ignore[arg-type]
    pipe.execute()


@pytest.fixture
def paged(client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> tuple[Store, list[int]]:
    """A store with small pages, and the size of every page the stream was read in."""
    sizes: list[int] = []

    def counted(real: Callable[..., Any]) -> Callable[..., Any]:
        def read(*args: Any, **kwargs: Any) -> Any:
            page = real(*args, **kwargs)
            sizes.append(len(page))
            return page

        return read

    monkeypatch.setattr(client, "xrange", counted(client.xrange))
    monkeypatch.setattr(client, "xrevrange", counted(client.xrevrange))
    return Store(client, fast_settings(dlq_page_size=PAGE)), sizes


def peak_bytes(run: Callable[[], int]) -> tuple[int, int]:
    """(what `run` returned, tracemalloc's peak while it ran)."""
    tracemalloc.start()
    try:
        result = run()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_purge_holds_one_page_at_a_time(client, paged):
    store, sizes = paged
    fill(client)

    count, peak = peak_bytes(lambda: sum(1 for _ in purge(store, DlqFilter(sources=(SOURCE,)))))

    assert count == ENTRIES
    assert client.xlen(SourceKeys(SOURCE).dlq) == 0
    assert max(sizes) <= PAGE
    assert len(sizes) >= ENTRIES // PAGE
    assert peak < STREAM_BYTES / 8, f"peak {peak} bytes for a {STREAM_BYTES}-byte stream"


def test_purge_dry_run_pages_too_and_removes_nothing(client, paged):
    store, sizes = paged
    fill(client)

    count, peak = peak_bytes(
        lambda: sum(1 for _ in purge(store, DlqFilter(stage="record"), dry_run=True))
    )

    assert count == ENTRIES
    assert client.xlen(SourceKeys(SOURCE).dlq) == ENTRIES
    assert max(sizes) <= PAGE
    assert peak < STREAM_BYTES / 8


def test_replay_dry_run_holds_one_page_at_a_time(client, paged):
    store, sizes = paged
    fill(client)

    def run() -> int:
        items = replay(store, DlqFilter(sources=(SOURCE,)), dry_run=True)
        return sum(1 for item in items if item.outcome == "would-replay")

    count, peak = peak_bytes(run)

    assert count == ENTRIES
    assert max(sizes) <= PAGE
    assert peak < STREAM_BYTES / 4  # each event is also validated: a few copies of one page


def test_replay_takes_the_latest_entry_and_removes_older_ones_on_other_pages(client, paged):
    store, _ = paged
    names = SourceKeys(SOURCE)
    fill(client, range(1), failed_at=1)  # e0's old entry
    fill(client, range(1, PAGE + 10), failed_at=2)  # more than a page of other events
    fill(client, range(1), failed_at=3)  # e0's latest entry
    for i in range(PAGE + 10):  # each dead-lettered in its hash, as record.lua leaves it
        client.hset(names.event(f"e{i}"), mapping={"st": "dead_lettered", "stage": "record"})

    items = list(replay(store, DlqFilter(sources=(SOURCE,))))

    outcomes = [(i.event_id, i.outcome) for i in items if i.event_id == "e0"]
    assert outcomes == [("e0", "replayed"), ("e0", "superseded")]
    assert sum(i.outcome == "replayed" for i in items) == PAGE + 10
    assert items[0].event_id == "e0"  # newest first: its latest entry is the one replayed
    assert client.xlen(names.dlq) == 0
    assert client.hget(names.event("e0"), "st") == "pending"

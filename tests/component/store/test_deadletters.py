"""Reopening publishes (a DLQ replay) and the dead-letter reads and purge on the private Redis."""

from __future__ import annotations

import json

import redis

from worker.abandon import abandon
from worker.deadletters import DlqFilter, list_dead_letters, purge, scan, show
from worker.store import Store
from worker.store.keys import INVALID_DLQ, SourceKeys, reopen_key
from worker.store.reopening import publish_reopening

from .conftest import NOW, SOURCE, fast_settings, item, put, resource


def dead_letter_it(client: redis.Redis, names: SourceKeys, event_id: str, attempts: int) -> None:
    """The event hash as record.lua leaves a FAILED event (out of the ready log, final)."""
    client.zrem(names.ready, event_id)
    client.hset(names.event(event_id), mapping={"st": "dead_lettered", "stage": "record",
                                                 "att": attempts, "fate": "FAILED"})  # fmt: skip


def test_reopen_dead_lettered_event_is_ready_again_with_its_attempts(store: Store, client):
    names = SourceKeys(SOURCE)
    event = resource(eid="r1", id_="p1")
    [first] = put(store, event)
    dead_letter_it(client, names, "r1", attempts=1)

    replies = publish_reopening(store, {SOURCE: [item(event)]}, [], NOW + 10)

    assert [r.kind for r in replies[SOURCE]] == ["ok"]
    fields = client.hgetall(names.event("r1"))
    assert fields["st"] == "pending"
    assert fields["att"] == "1"
    assert fields["rp"] == "1"
    assert client.zrange(names.ready, 0, -1, withscores=True) == [("r1", first.seq + 1)]
    assert not client.exists(reopen_key(SOURCE, "r1"))


def test_reopen_refuses_pending_and_applied_events(store: Store, client):
    names = SourceKeys(SOURCE)
    pending, applied = resource(eid="p", id_="p1"), resource(eid="a", id_="p2")
    put(store, pending, applied)
    client.hset(names.event("a"), "st", "applied")
    before = client.zrange(names.ready, 0, -1)

    replies = publish_reopening(store, {SOURCE: [item(pending), item(applied)]}, [], NOW + 10)

    assert [(r.kind, r.status) for r in replies[SOURCE]] == [("dup", "pending"), ("dup", "applied")]
    assert client.zrange(names.ready, 0, -1) == before
    assert client.hget(names.event("a"), "st") == "applied"
    assert "rp" not in client.hgetall(names.event("p"))


def add_letter(client: redis.Redis, stream: str, entry_ms: int, **fields: str) -> str:
    values = {"stage": "record", "error": "{}", "event": '{"secret":"payload"}', **fields}
    return str(client.xadd(stream, values, id=f"{entry_ms}-0"))  # type: ignore[arg-type]


def seed_letters(client: redis.Redis) -> None:
    dlq = SourceKeys(SOURCE).dlq
    add_letter(client, dlq, 1000, eventId="e1",
               error=json.dumps({"type": "NOT_FOUND", "message": "missing"}))  # fmt: skip
    add_letter(client, dlq, 2000, eventId="e2", stage="publish",
               error=json.dumps({"problems": [{"field": "id", "reason": "bad"}]}))  # fmt: skip
    add_letter(client, dlq, 3000, eventId="e3", reason="STALE",
               error=json.dumps({"type": "STALE", "message": "abandoned"}))  # fmt: skip
    add_letter(client, INVALID_DLQ, 1500, stage="publish", error=json.dumps({"field": "sourceKey",
               "reason": "is required"}))  # fmt: skip
    client.sadd("ingest:sources", SOURCE)


def test_dlq_list_filters_by_stage_type_event_and_time(store: Store, client):
    seed_letters(client)

    every = list_dead_letters(store)
    by_type = list_dead_letters(store, DlqFilter(error_type="not_found"))
    by_stage = list_dead_letters(store, DlqFilter(stage="publish"))
    by_time = list_dead_letters(store, DlqFilter(sources=(SOURCE,), since_ms=1500, until_ms=2500))

    assert [x.event_id for x in every] == ["e1", "e2", "e3", None]
    assert [(x.event_id, x.message) for x in by_type] == [("e1", "missing")]
    assert [(x.source, x.error_type) for x in by_stage] == [
        (SOURCE, "INVALID_EVENT"),
        ("_invalid", "INVALID_EVENT"),
    ]
    assert [x.event_id for x in by_time] == ["e2"]
    assert all("payload" not in json.dumps(x.summary()) for x in every)
    assert list_dead_letters(store, limit=2)[-1].event_id == "e2"


def test_dlq_scan_reads_long_streams_a_page_at_a_time(client):
    store = Store(client, fast_settings(dlq_page_size=3))
    dlq = SourceKeys(SOURCE).dlq
    for i in range(1, 11):
        add_letter(client, dlq, i, eventId=f"e{i}")

    found = [x.event_id for x in scan(store, DlqFilter(sources=(SOURCE,)))]

    assert found == [f"e{i}" for i in range(1, 11)]


def test_dlq_show_gives_the_stored_event(store: Store, client):
    seed_letters(client)

    [entry] = show(store, "e3")

    assert entry.to_dict()["event"] == {"secret": "payload"}
    assert entry.reason == "STALE"
    assert show(store, "nobody") == []


def test_dlq_purge_dry_run_keeps_and_purge_removes(store: Store, client):
    seed_letters(client)

    would = list(purge(store, DlqFilter(stage="publish"), dry_run=True))
    assert client.xlen(SourceKeys(SOURCE).dlq) == 3
    removed = list(purge(store, DlqFilter(stage="publish")))

    assert len(would) == len(removed) == 2
    assert [x.event_id for x in list_dead_letters(store)] == ["e1", "e3"]
    assert client.xlen(INVALID_DLQ) == 0


def test_abandon_refuses_unknown_and_non_stale_records(store: Store, client):
    names = SourceKeys(SOURCE)
    client.sadd("ingest:sources", SOURCE)
    client.hset(names.bundle("b1"), mapping={"st": "sent", "task": "t1", "fence": 1})
    client.hset(names.task("t1"), "bd", "b1")

    assert abandon(store, "nothing", now_ms=NOW).code == "unknown"
    refused = abandon(store, "t1", now_ms=NOW)

    assert refused.code == "not-stale"
    assert refused.bundle_id == "b1"
    assert client.hget(names.bundle("b1"), "fence") == "1"

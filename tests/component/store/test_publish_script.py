"""publish.lua: dedupe, refs, placement, due times and caps, atomic batches, dead letters."""

from __future__ import annotations

import json

import redis

from worker.store import InvalidEntry, Store
from worker.store.keys import INVALID_DLQ, SOURCES, SourceKeys

from .conftest import NOW, SOURCE, fast_settings, item, letters, link, put, resource


def test_publish_buffers_events_in_seq_order_with_their_bookkeeping(store, client, names):
    first, second = resource(eid="a"), link(eid="b")

    replies = put(store, first, second)

    assert [(r.kind, r.seq) for r in replies] == [("ok", 1), ("ok", 2)]
    assert client.zrange(names.buffer("provider:p1"), 0, -1, withscores=True) == [("a", 1.0)]
    assert client.zrange(names.buffer("office:o1"), 0, -1) == ["b"]
    assert client.hget(names.where, "res:src-a:provider:p1") == "provider:p1"
    assert client.hgetall(names.touch("res:src-a:provider:p1")) == {
        "provider:p1": "1",
        "office:o1": "1",
    }
    assert client.hget(names.stats, "buffered") == "2"
    assert client.hget(names.event("a"), "st") == "pending"
    assert json.loads(client.hget(names.event("a"), "body"))["eventId"] == "a"
    assert client.ttl(names.event("a")) == -1  # pending work never expires
    assert client.smembers(SOURCES) == {SOURCE}


def test_publish_duplicate_event_id_keeps_its_first_result(store, client, names):
    created = item(resource("CREATE", id_="gen1", eid="c"), assigned_id="gen1")
    put(store, created)

    again = put(store, item(resource("CREATE", id_="gen2", eid="c"), assigned_id="gen2"))

    assert again[0].kind == "dup"
    assert again[0].assigned_id == "gen1"
    assert again[0].status == "pending"
    assert client.zcard(names.buffer("provider:gen1")) == 1
    assert not client.exists(names.buffer("provider:gen2"))


def test_publish_event_joins_the_buffer_holding_its_entity(store, client, names):
    put(store, resource(eid="x1", group="west"))

    replies = put(store, resource(eid="x2", group="east"))

    assert replies[0].group == "west"
    assert client.zrange(names.buffer("west"), 0, -1) == ["x1", "x2"]
    assert not client.exists(names.buffer("east"))
    assert client.hget(names.where_count, "res:src-a:provider:p1") == "2"


def test_publish_live_ref_defined_again_is_refused_and_dead_lettered(store, client, names):
    put(store, item(resource("CREATE", id_="id1", eid="r1"), ref_defined=("new", "id1")))

    replies = put(store, item(resource("CREATE", id_="id2", eid="r2"), ref_defined=("new", "id2")))

    assert replies[0].kind == "err"
    assert replies[0].field == "ref"
    assert client.get(names.ref("new")) == "id1"
    assert 0 < client.ttl(names.ref("new")) <= 3600
    (entry,) = letters(client, names.dlq)
    fields = entry
    assert fields["eventId"] == "r2"
    assert fields["stage"] == "publish"
    assert json.loads(fields["error"])["field"] == "ref"
    assert json.loads(fields["event"])["eventId"] == "r2"
    assert "component-key" not in json.dumps(fields)


def test_publish_ref_resolved_to_another_id_is_refused(store, client, names):
    put(store, item(resource("CREATE", id_="id1", eid="r1"), ref_defined=("new", "id1")))

    replies = put(store, item(link(provider="stale", eid="l1"), refs_used={"new": "stale"}))

    assert replies[0].kind == "err"
    refused = client.hgetall(names.event("l1"))  # only the mark of a refusal: status, error
    assert (refused["st"], refused["stage"], "body" in refused) == (
        "dead_lettered",
        "publish",
        False,
    )
    assert client.ttl(names.event("l1")) > 0


def test_publish_due_time_lingers_after_the_last_event_within_max_age(client, names):
    store = Store(client, fast_settings(linger_ms=100, max_age_ms=250))
    put(store, resource(eid="d1"), now=NOW)
    assert client.zscore(names.due, "provider:p1") == NOW + 100

    put(store, resource(eid="d2"), now=NOW + 80)
    assert client.zscore(names.due, "provider:p1") == NOW + 180

    put(store, resource(eid="d3"), now=NOW + 170)
    assert client.zscore(names.due, "provider:p1") == NOW + 250  # first-buffered + max age


def test_publish_group_reaching_its_operation_cap_is_due_now(client, names):
    store = Store(client, fast_settings(max_bundle_ops=3))
    put(store, resource(eid="k1"), resource(eid="k2"), now=NOW)
    assert client.zscore(names.due, "provider:p1") == NOW + 100

    put(store, resource(eid="k3"), now=NOW + 10)

    assert client.zscore(names.due, "provider:p1") == NOW + 10


def test_publish_group_reaching_its_byte_cap_is_due_now(client, names):
    store = Store(client, fast_settings(max_bundle_bytes=1000))
    put(store, resource(eid="big1", data={"name": "x" * 600}), now=NOW)
    put(store, resource(eid="big2", data={"name": "y" * 600}), now=NOW + 5)

    assert client.zscore(names.due, "provider:p1") == NOW + 5


def test_publish_due_group_is_never_postponed(store, client, names):
    put(store, resource(eid="n1"), now=NOW)
    client.zadd(names.due, {"provider:p1": NOW})

    put(store, resource(eid="n2"), now=NOW + 50)

    assert client.zscore(names.due, "provider:p1") == NOW


def test_publish_atomic_batch_goes_whole_into_the_buffer_holding_a_member(store, client, names):
    put(store, resource(eid="h1", group="holder"))
    batch = [
        resource(eid="m1", atomicBatch="B"),
        resource(id_="p9", eid="m2", atomicBatch="B"),
    ]

    replies = put(store, *batch)

    assert {r.group for r in replies} == {"holder"}
    assert client.zrange(names.buffer("holder"), 0, -1) == ["h1", "m1", "m2"]


def test_publish_atomic_batch_pending_in_two_buffers_is_refused_whole(store, client, names):
    put(store, resource(eid="h1", group="one"), resource(id_="p2", eid="h2", group="two"))
    batch = [resource(eid="m1", atomicBatch="B"), resource(id_="p2", eid="m2", atomicBatch="B")]

    replies = put(store, *batch)

    assert [r.kind for r in replies] == ["err", "err"]
    assert "several groups" in replies[0].reason
    assert client.hget(names.event("m1"), "st") == "dead_lettered"
    assert not client.hexists(names.event("m1"), "seq")  # never buffered
    assert client.xlen(names.dlq) == 2


def test_publish_invalid_entries_are_dead_lettered_per_source(store: Store, client: redis.Redis):
    invalid = [
        InvalidEntry(SOURCE, 0, "bad1", '{"problems":[]}', '{"eventId":"bad1"}'),
        InvalidEntry("_invalid", 1, None, '{"problems":[]}', "{}"),
    ]

    store.publish({}, invalid, NOW)

    (entry,) = letters(client, SourceKeys(SOURCE).dlq)
    assert entry["eventId"] == "bad1"
    assert entry["stage"] == "publish"
    (other,) = letters(client, INVALID_DLQ)
    assert "eventId" not in other
    assert INVALID_DLQ == "ingest:{_invalid}:dlq"

"""publish.lua: dedupe, refs, the ready log, due times and caps, atomic batches, dead letters."""

from __future__ import annotations

import json

import redis

from worker.domain.events import ChangeEvent
from worker.store import InvalidEntry, Store
from worker.store.keys import INVALID_DLQ, PLAN_DUE, SOURCES, SourceKeys
from worker.store.records import PublishItem

from .conftest import NOW, SOURCE, fast_settings, item, letters, link, put, resource


def test_publish_appends_events_to_the_ready_log_in_seq_order(store, client, names):
    first, second = resource(eid="a"), link(eid="b")

    replies = put(store, first, item(second, size=40))

    assert [(r.kind, r.group, r.seq) for r in replies] == [
        ("ok", "provider:p1", 1),
        ("ok", "office:o1", 2),
    ]
    assert client.zrange(names.ready, 0, -1, withscores=True) == [("a", 1.0), ("b", 2.0)]
    stored = client.hgetall(names.event("b"))
    assert (stored["st"], stored["seq"], stored["g"], stored["b"]) == (
        "pending",
        "2",
        "office:o1",
        "40",
    )
    assert stored["k"] == "rel:src-a:provider-office:office:o1:provider:p1"
    assert set(stored["tr"].split()) == {"res:src-a:office:o1", "res:src-a:provider:p1"}
    assert "bk" not in stored
    size_a = sum(len(part.encode()) for part in first.stored_parts())
    assert client.hmget(names.stats, "buffered", "rbytes", "rfirst", "published") == [
        "2",
        str(size_a + 40),
        str(NOW),
        "2",
    ]
    assert json.loads(client.hget(names.event("a"), "h"))["eventId"] == "a"
    assert json.loads(client.hget(names.event("a"), "d")) == {"data": {"name": "a"}}
    assert client.ttl(names.event("a")) == -1  # pending work never expires
    assert client.smembers(SOURCES) == {SOURCE}


def test_publish_duplicate_event_id_keeps_its_first_result(store, client, names):
    created = item(resource("CREATE", id_="gen1", eid="c"), assigned_id="gen1")
    put(store, created)

    again = put(store, item(resource("CREATE", id_="gen2", eid="c"), assigned_id="gen2"))

    assert again[0].kind == "dup"
    assert again[0].assigned_id == "gen1"
    assert again[0].status == "pending"
    assert client.zcard(names.ready) == 1
    assert json.loads(client.hget(names.event("c"), "h"))["id"] == "gen1"
    assert client.hget(names.stats, "published") == "1"


def test_publish_group_is_a_packing_preference_never_a_place_to_wait(store, client, names):
    put(store, resource(eid="x1", group="west"))

    replies = put(store, resource(eid="x2", group="east"))

    # the second event on the entity keeps the group it named, behind the first in one log
    assert replies[0].group == "east"
    assert client.zrange(names.ready, 0, -1) == ["x1", "x2"]
    assert client.hmget(names.event("x1"), "g") == ["west"]
    assert client.hmget(names.event("x2"), "g") == ["east"]


def test_publish_bulk_item_is_flagged(store, client, names):
    put(store, item(resource(eid="b1"), bulk=True), resource(id_="p2", eid="n1"))

    assert client.hget(names.event("b1"), "bk") == "1"
    assert client.hget(names.event("n1"), "bk") is None
    assert client.zrange(names.ready, 0, -1) == ["b1", "n1"]


def test_publish_live_ref_defined_again_is_refused_and_dead_lettered(store, client, names):
    put(store, item(resource("CREATE", id_="id1", eid="r1"), ref_defined=("new", "id1")))

    replies = put(store, item(resource("CREATE", id_="id2", eid="r2"), ref_defined=("new", "id2")))

    assert replies[0].kind == "err"
    assert replies[0].field == "ref"
    assert client.get(names.ref("new")) == "id1"
    assert client.ttl(names.ref("new")) == -1  # its CREATE is still pending
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
    assert (refused["st"], refused["stage"], "h" in refused) == (
        "dead_lettered",
        "publish",
        False,
    )
    assert client.ttl(names.event("l1")) > 0


def test_publish_due_time_lingers_after_the_last_event_within_max_age(client, names):
    store = Store(client, fast_settings(linger_ms=100, max_age_ms=250))
    put(store, resource(eid="d1"), now=NOW)
    assert client.zscore(names.due, PLAN_DUE) == NOW + 100

    put(store, resource(id_="p2", eid="d2"), now=NOW + 80)
    assert client.zscore(names.due, PLAN_DUE) == NOW + 180

    put(store, resource(id_="p3", eid="d3"), now=NOW + 170)
    assert client.zscore(names.due, PLAN_DUE) == NOW + 250  # first ready + max age


def test_publish_ready_log_reaching_a_bundle_of_operations_is_due_now(client, names):
    store = Store(client, fast_settings(max_bundle_ops=3))
    put(store, resource(eid="k1"), resource(id_="p2", eid="k2", group="other"), now=NOW)
    assert client.zscore(names.due, PLAN_DUE) == NOW + 100

    put(store, resource(id_="p3", eid="k3", group="third"), now=NOW + 10)

    assert client.zscore(names.due, PLAN_DUE) == NOW + 10


def test_publish_ready_log_reaching_a_bundle_of_bytes_is_due_now(client, names):
    store = Store(client, fast_settings(max_bundle_bytes=1000))
    put(store, resource(eid="big1", data={"name": "x" * 600}), now=NOW)
    assert client.zscore(names.due, PLAN_DUE) == NOW + 100

    put(store, resource(id_="p2", eid="big2", data={"name": "y" * 600}), now=NOW + 5)

    assert client.zscore(names.due, PLAN_DUE) == NOW + 5


def test_publish_due_source_is_never_postponed(store, client, names):
    put(store, resource(eid="n1"), now=NOW)
    client.zadd(names.due, {PLAN_DUE: NOW})

    put(store, resource(eid="n2"), now=NOW + 50)

    assert client.zscore(names.due, PLAN_DUE) == NOW


def test_publish_atomic_batch_goes_in_contiguous_whatever_is_pending(store, client, names):
    put(store, resource(eid="h1", group="one"), resource(id_="p2", eid="h2", group="two"))
    batch = [resource(eid="m1", atomicBatch="B"), resource(id_="p2", eid="m2", atomicBatch="B")]

    replies = put(store, *batch)

    # its entities are pending under two other groups: no matter, it follows them in the log
    assert [(r.kind, r.seq) for r in replies] == [("ok", 3), ("ok", 4)]
    assert client.zrange(names.ready, 0, -1) == ["h1", "h2", "m1", "m2"]
    assert client.hmget(names.event("m2"), "ab", "g") == ["B", "provider:p2"]


def test_publish_atomic_batch_with_a_refused_member_is_refused_whole(store, client, names):
    put(store, item(resource("CREATE", id_="id1", eid="r1"), ref_defined=("new", "id1")))
    batch: list[ChangeEvent | PublishItem] = [
        resource(id_="p2", eid="m1", atomicBatch="B"),
        item(resource("CREATE", id_="id2", eid="m2", atomicBatch="B"), ref_defined=("new", "id2")),
    ]

    replies = put(store, *batch)

    assert [r.kind for r in replies] == ["err", "err"]
    assert "m2" in replies[0].reason
    assert client.hget(names.event("m1"), "st") == "dead_lettered"
    assert not client.hexists(names.event("m1"), "seq")  # never in the ready log
    assert client.zrange(names.ready, 0, -1) == ["r1"]
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

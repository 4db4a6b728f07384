"""snapshot.lua and reserve.lua: one atomic read, then bundles taken all or nothing, in order."""

from __future__ import annotations

import json

from worker.domain.grouping import flush_set
from worker.domain.keys import ResourceKey, parse_key
from worker.store.records import BundleToReserve, GroupDue, RejectedEvent

from .conftest import NOW, letters, link, put, resource

P1 = "res:src-a:provider:p1"
O1 = "res:src-a:office:o1"
REL = "rel:src-a:provider-office:office:o1:provider:p1"


def bundle(bid, *event_ids, writes=(), reads=(), groups=()) -> BundleToReserve:
    return BundleToReserve(bid, tuple(event_ids), tuple(writes), tuple(reads), "{}", tuple(groups))


def reserve(store, *bundles, rejected=(), groups=(), snapshot_seq=1000, now=NOW):
    return store.reserve(
        "src-a",
        bundles=list(bundles),
        rejected=list(rejected),
        groups=list(groups),
        snapshot_seq=snapshot_seq,
        now_ms=now,
    )


def test_snapshot_reads_due_buffers_then_the_buffers_sharing_their_resources(store):
    put(store, resource(eid="a", group="g1"), link(eid="b", group="g2"))
    put(store, resource("UPSERT", "office", "o1", eid="c", group="g3"))
    put(store, resource("UPSERT", "office", "o9", eid="d", group="g4"))

    snap = store.snapshot("src-a", ["g2"], limit=100, max_groups=10)

    assert snap.groups[0].group == "g2"
    assert {g.group for g in snap.groups} == {"g1", "g2", "g3"}
    assert sorted(e.event_id for e in snap.events) == ["a", "b", "c"]
    by_id = {e.event_id: e for e in snap.events}
    assert by_id["b"].entity == REL
    assert set(by_id["b"].resources) == {O1, P1}
    assert by_id["a"].body["eventId"] == "a"  # decoded with the snapshot
    assert snap.touch[P1] == {"g1": 1, "g2": 1}
    assert snap.seq == 4
    assert snap.locks[P1].writer is None


def flush_set_of(snap, cap):
    """`grouping.flush_set` from g1 over the data a snapshot returned."""
    resources: dict[str, set[str]] = {}
    for e in snap.events:
        resources.setdefault(e.group, set()).update(e.resources)
    return flush_set(
        "g1",
        resources_of=lambda g: [
            k for r in sorted(resources.get(g, ())) if isinstance(k := parse_key(r), ResourceKey)
        ],
        groups_touching=lambda r: sorted(snap.touch.get(str(r), {})),
        max_groups=cap,
    ).groups


def test_snapshot_closure_is_the_flush_set_walk(store):
    # a chain g1 - g2 - g3 - g4 over shared resources
    put(store, resource(eid="a", group="g1"), link(eid="b", group="g2"))
    put(store, resource("UPSERT", "office", "o1", eid="c", group="g3"))
    put(store, link(office="o1", provider="p7", eid="e", group="g3"))
    put(store, resource(id_="p7", eid="f", group="g4"))

    for cap in (1, 2, 3, 10):
        snap = store.snapshot("src-a", ["g1"], limit=100, max_groups=cap)
        assert {g.group for g in snap.groups} == set(flush_set_of(snap, cap))


def test_snapshot_limit_leaves_the_rest_and_names_the_first_unread(store):
    put(store, resource(eid="a"), resource(eid="b"), resource(eid="c", atomicBatch="B"))

    snap = store.snapshot("src-a", ["provider:p1"], limit=2, max_groups=10)

    (group,) = snap.groups
    assert (group.total, group.read, group.next_seq, group.next_batch) == (3, 2, 3, "B")
    assert [e.event_id for e in snap.events] == ["a", "b"]


def test_reserve_takes_a_bundle_with_its_locks_and_leaves_a_claimed_record(store, client, names):
    put(store, resource(eid="a"), link(eid="b"))
    groups = [GroupDue("provider:p1", "wait"), GroupDue("office:o1", "wait")]

    result = reserve(
        store,
        bundle("B1", "a", "b", writes=[P1, REL], reads=[O1], groups=["provider:p1", "office:o1"]),
        groups=groups,
    )

    assert result == {"B1": "taken"}
    assert client.hgetall(names.xlock) == {P1: "B1", REL: "B1"}
    assert client.smembers(names.slock(O1)) == {"B1"}
    assert client.zcard(names.buffer("provider:p1")) == 0
    assert client.hgetall(names.where) == {}
    assert not client.exists(names.touch(P1))
    assert client.hgetall(names.group_stats) == {}
    assert client.zcard(names.due) == 0
    record = client.hgetall(names.bundle("B1"))
    assert (record["st"], record["fence"], int(record["cexp"])) == ("planned", "1", NOW + 3000)
    assert json.loads(record["ev"]) == ["a", "b"]
    assert client.zscore(names.claims, "B1") == NOW + 3000
    assert client.hget(names.event("a"), "st") == "in_flight"
    assert client.hget(names.event("a"), "bd") == "B1"
    assert client.hmget(names.stats, "buffered", "inflight", "bundles") == ["0", "2", "1"]
    assert client.ttl(names.bundle("B1")) == -1


def test_reserve_conflicting_bundle_takes_nothing_and_blocks_what_depends_on_it(
    store, client, names
):
    o2 = "res:src-a:office:o2"
    put(store, resource(eid="a"), link(eid="b"), resource("UPSERT", "office", "o1", eid="c"))
    put(store, resource("UPSERT", "office", "o2", eid="d"))
    client.hset(names.xlock, P1, "OTHER")

    result = reserve(
        store,
        bundle("B1", "a", writes=[P1]),
        bundle("B2", "b", writes=[REL], reads=[O1, P1]),
        bundle("B3", "c", writes=[O1]),
        bundle("B4", "d", writes=[o2]),
    )

    # B1 conflicts with OTHER's lock: nothing of it is taken; B2 reads what B1 writes, and B3
    # writes what B2 reads: both skipped; B4 depends on none of them
    assert result == {"B1": "skipped", "B2": "skipped", "B3": "skipped", "B4": "taken"}
    assert client.hgetall(names.xlock) == {P1: "OTHER", o2: "B4"}
    assert not client.exists(names.slock(O1))
    assert client.zrange(names.buffer("provider:p1"), 0, -1) == ["a"]
    assert not client.exists(names.bundle("B1"))


def test_reserve_shared_reader_blocks_a_writer(store, client, names):
    put(store, resource(eid="a"))
    client.sadd(names.slock(P1), "READER")

    assert reserve(store, bundle("B1", "a", writes=[P1])) == {"B1": "skipped"}


def test_reserve_event_no_longer_buffered_is_a_race_and_its_group_is_due_now(store, client, names):
    put(store, resource(eid="a"), resource(eid="b"))
    reserve(store, bundle("B0", "a", writes=[P1]))
    client.hdel(names.xlock, P1)

    result = reserve(
        store,
        bundle("B1", "a", "b", writes=[P1], groups=["provider:p1"]),
        groups=[GroupDue("provider:p1", "wait")],
        now=NOW + 5,
    )

    assert result == {"B1": "raced"}
    assert client.zrange(names.buffer("provider:p1"), 0, -1) == ["b"]
    assert client.zscore(names.due, "provider:p1") == NOW + 5


def test_reserve_group_waits_for_a_live_blocker_and_not_for_a_recorded_one(store, client, names):
    put(store, resource(eid="a", group="g1"), resource(id_="p2", eid="b", group="g2"))
    client.hset(names.bundle("LIVE"), "st", "sent")
    client.hset(names.bundle("DONE"), "st", "recorded")

    reserve(
        store,
        groups=[GroupDue("g1", "wait", ("LIVE",)), GroupDue("g2", "wait", ("DONE",))],
        now=NOW,
    )

    assert client.smembers(names.waiting("LIVE")) == {"g1"}
    assert not client.exists(names.waiting("DONE"))
    assert client.zscore(names.due, "g1") == NOW + 1000  # max age, as a fallback
    assert client.zscore(names.due, "g2") == NOW


def test_reserve_hints_now_and_linger(store, client, names):
    put(store, resource(eid="a", group="g1"), resource(id_="p2", eid="b", group="g2"))

    reserve(store, groups=[GroupDue("g1", "now"), GroupDue("g2", "linger")], now=NOW)

    assert client.zscore(names.due, "g1") == NOW
    assert client.zscore(names.due, "g2") == NOW + 100


def test_reserve_rejected_event_is_dead_lettered_from_its_buffer(store, client, names):
    put(store, resource(eid="a"))

    reserve(store, rejected=[RejectedEvent("a", '{"type":"CONTENT_TOO_LARGE"}')])

    assert client.zcard(names.buffer("provider:p1")) == 0
    assert client.hget(names.event("a"), "st") == "dead_lettered"
    assert 0 < client.ttl(names.event("a")) <= 3600
    (entry,) = letters(client, names.dlq)
    assert entry["stage"] == "flush"
    assert client.hget(names.stats, "buffered") == "0"

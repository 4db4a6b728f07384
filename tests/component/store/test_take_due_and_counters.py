"""take_due.lua, the counters behind the backlog, the eviction-policy check, and key names."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
import redis

from worker.results import backlog
from worker.store import EvictionPolicyError, Store
from worker.store.keys import SourceKeys
from worker.store.records import BundleToReserve, EventOutcomeRecord, GroupDue

from .conftest import NOW, SOURCE, fast_settings, item, put, resource

P1 = "res:src-a:provider:p1"


def test_take_due_rescores_what_it_hands_out_and_never_pops_it(store, client, names):
    client.zadd(names.due, {"g1": NOW - 5, "g2": NOW, "g3": NOW + 5})

    taken = store.take_due([SOURCE], NOW, groups=10, polls=10, claims=10)

    assert taken[SOURCE].groups == ("g1", "g2")
    assert client.zrange(names.due, 0, -1, withscores=True) == [
        ("g3", NOW + 5.0),
        ("g1", NOW + 500.0),
        ("g2", NOW + 500.0),
    ]
    assert store.take_due([SOURCE], NOW + 1, groups=10, polls=10, claims=10)[SOURCE].groups == ()


def test_take_due_respects_the_limit_per_kind(store, client, names):
    client.zadd(names.polls, {f"b{i}": NOW - i for i in range(5)})

    taken = store.take_due([SOURCE], NOW, groups=10, polls=2, claims=10)[SOURCE]

    assert taken.polls == ("b4", "b3")
    assert client.zcount(names.polls, "-inf", NOW) == 3


def test_take_due_three_concurrent_callers_never_get_the_same_id(redis_url, client, names):
    client.zadd(names.due, {f"g{i}": NOW - 1 for i in range(600)})
    stores = [Store(redis.Redis.from_url(redis_url, decode_responses=True), fast_settings())
              for _ in range(3)]  # fmt: skip
    results: list[list[str]] = [[] for _ in stores]
    start = threading.Barrier(len(stores))

    def work(index: int) -> None:
        start.wait()
        for _ in range(20):
            taken = stores[index].take_due([SOURCE], NOW, groups=17, polls=0, claims=0)
            results[index].extend(taken[SOURCE].groups)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    handed_out = Counter(g for result in results for g in result)
    assert len(handed_out) == 600
    assert set(handed_out.values()) == {1}
    assert all(results)  # each caller got some
    for s in stores:
        s.client.close()


def test_counters_follow_events_through_buffers_and_bundles_to_zero(store, client):
    put(store, resource(eid="a"), resource(eid="b"))
    assert (backlog(store).buffered, backlog(store).in_flight, backlog(store).total) == (2, 0, 2)

    store.reserve(
        SOURCE,
        bundles=[BundleToReserve("B1", ("a", "b"), (P1,), (), "{}", ("provider:p1",))],
        rejected=[],
        groups=[GroupDue("provider:p1", "wait")],
        snapshot_seq=100,
        now_ms=NOW,
    )
    current = backlog(store)
    assert (current.buffered, current.in_flight, current.total) == (0, 2, 2)
    assert current.sources[SOURCE].bundles == 1

    store.record(
        SOURCE,
        "B1",
        1,
        [EventOutcomeRecord("a", "COALESCED"), EventOutcomeRecord("b", "APPLIED")],
        status="PERSISTED",
        now_ms=NOW,
    )
    assert backlog(store).total == 0
    assert backlog(store).to_dict()["sources"][SOURCE]["bundles"] == 0


def test_backlog_counts_due_polls(store, client, names):
    client.zadd(names.polls, {"b1": 1, "b2": 2, "b3": 2**52})
    client.sadd("ingest:sources", SOURCE)

    assert backlog(store).due_polls == 2


def test_check_noeviction_accepts_noeviction_and_refuses_anything_else(store, client):
    store.check_noeviction()
    client.config_set("maxmemory-policy", "allkeys-lru")
    try:
        with pytest.raises(EvictionPolicyError, match="allkeys-lru"):
            store.check_noeviction()
    finally:
        client.config_set("maxmemory-policy", "noeviction")


def test_store_sources_lists_sources_with_state(store):
    put(store, resource(eid="a"))

    store.publish({"src-b": [item(resource(eid="z", source="src-b"))]}, [], NOW)

    assert store.sources() == ["src-a", "src-b"]


def test_keys_in_the_scripts_are_the_keys_module_names(store, client, names):
    # everything a publish, a reserve and a record write lives under SourceKeys' names
    put(store, resource(eid="a"))
    expected = {
        names.seq, names.event("a"), names.buffer("provider:p1"), names.group_stats,
        names.where, names.where_count, names.touch(P1), names.due, names.stats,
    }  # fmt: skip
    assert set(client.keys("*")) == expected | {"ingest:sources"}
    assert SourceKeys(SOURCE).prefix == "ingest:{src-a}:"

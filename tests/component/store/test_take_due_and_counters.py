"""take_due.lua, the counters behind the backlog, the eviction-policy check, and key names."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
import redis

from worker.results import backlog
from worker.store import EvictionPolicyError, Store
from worker.store.keys import PLAN_DUE, SourceKeys
from worker.store.records import EventOutcomeRecord

from .conftest import NOW, SOURCE, bundle, commit_bundles, fast_settings, item, link, put, resource

P1 = "res:src-a:provider:p1"
O1 = "res:src-a:office:o1"
REL = "rel:src-a:provider-office:office:o1:provider:p1"


def test_take_due_rescores_what_it_hands_out_and_never_pops_it(store, client):
    due = {"src-a": NOW - 5, "src-b": NOW, "src-c": NOW + 5}
    for source, at in due.items():
        client.zadd(SourceKeys(source).due, {PLAN_DUE: at})

    taken = store.take_due(list(due), NOW, groups=10, polls=10, claims=10)

    assert {s: t.groups for s, t in taken.items()} == {
        "src-a": (PLAN_DUE,),
        "src-b": (PLAN_DUE,),
        "src-c": (),
    }
    assert [client.zscore(SourceKeys(s).due, PLAN_DUE) for s in due] == [
        NOW + 500,
        NOW + 500,
        NOW + 5,
    ]
    again = store.take_due(list(due), NOW + 1, groups=10, polls=10, claims=10)
    assert all(t.groups == () for t in again.values())


def test_take_due_respects_the_limit_per_kind(store, client, names):
    client.zadd(names.polls, {f"b{i}": NOW - i for i in range(5)})

    taken = store.take_due([SOURCE], NOW, groups=10, polls=2, claims=10)[SOURCE]

    assert taken.polls == ("b4", "b3")
    assert client.zcount(names.polls, "-inf", NOW) == 3


def test_take_due_three_concurrent_callers_never_get_the_same_id(redis_url, client, names):
    client.zadd(names.claims, {f"b{i}": NOW - 1 for i in range(600)})
    stores = [Store(redis.Redis.from_url(redis_url, decode_responses=True), fast_settings())
              for _ in range(3)]  # fmt: skip
    results: list[list[str]] = [[] for _ in stores]
    start = threading.Barrier(len(stores))

    def work(index: int) -> None:
        start.wait()
        for _ in range(20):
            taken = stores[index].take_due([SOURCE], NOW, groups=0, polls=0, claims=10)
            results[index].extend(taken[SOURCE].claims)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    handed_out = Counter(g for result in results for g in result)
    assert len(handed_out) == 600
    assert set(handed_out.values()) == {1}
    # 3 callers x 20 calls x 10 ids is exactly 600: all handed out means each took its share
    assert [len(result) for result in results] == [200, 200, 200]
    for s in stores:
        s.client.close()


def test_counters_follow_events_through_the_ready_log_and_bundles_to_zero(store, client):
    put(store, resource(eid="a"), resource(eid="b"))
    assert (backlog(store).buffered, backlog(store).in_flight, backlog(store).total) == (2, 0, 2)

    commit_bundles(store, [bundle("B1", "a", "b", writes=[P1])])
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
    # everything publish, read, commit and record write lives under SourceKeys' names
    def written() -> set[str]:
        return set(client.keys("*")) - {"ingest:sources"}

    put(store, resource(eid="a"), link(eid="b"))
    assert written() == {
        names.seq, names.event("a"), names.event("b"), names.ready, names.due, names.stats,
    }  # fmt: skip
    assert client.zrange(names.due, 0, -1) == [PLAN_DUE]

    round_ = store.read_ready(SOURCE, token="t", lease_ms=10_000, limit=10, max_bytes=10**6)
    assert client.get(names.plan_lock) == "t"
    store.commit(
        SOURCE,
        round_,
        bundles=[bundle("B1", "a", writes=[P1]), bundle("B2", "b", writes=[REL], reads=[O1, P1])],
        rejected=[],
        now_ms=NOW,
    )
    assert written() == {
        names.seq, names.event("a"), names.event("b"), names.stats, names.hold_writer,
        names.hold_readers(O1), names.hold_readers(P1), names.hold_reader_count,
        names.dependents("B1"), names.bundle("B1"), names.bundle("B2"), names.claims,
        names.commit_seq,
    }  # fmt: skip

    # B1 sends `a` back: B2 (which references p1) is dissolved, both events are ready again
    store.record(SOURCE, "B1", 1, [EventOutcomeRecord("a", "CANCELLED")], status="X", now_ms=NOW)
    assert written() == {
        names.seq, names.event("a"), names.event("b"), names.stats, names.bundle("B1"),
        names.ready, names.due, names.sent_back_epoch, names.sent_back_keys, names.commit_seq,
    }  # fmt: skip
    assert SourceKeys(SOURCE).prefix == "ingest:{src-a}:"

"""read.lua and commit.lua: a planning round under the source's lease, bundles written in plan
order behind the holders of their keys; and the dependency graph record.lua walks."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import Any

import pytest
import redis

from worker.store import Store
from worker.store.codec import text
from worker.store.keys import PLAN_DUE, SENT_BACK_EPOCH, SENT_BACK_KEYS
from worker.store.records import (
    BundleToCommit,
    CommitStatus,
    EventOutcomeRecord,
    PublishItem,
    ReadRound,
    RejectedEvent,
)

from .conftest import (
    NOW,
    SOURCE,
    bundle,
    commit_bundles,
    fast_settings,
    item,
    letters,
    link,
    put,
    resource,
)

P1, P2, P3, P4 = (f"res:src-a:provider:p{i}" for i in range(1, 5))
O1 = "res:src-a:office:o1"
REL, REL2, REL3 = (f"rel:src-a:provider-office:office:o1:provider:p{i}" for i in range(1, 4))
REL_O2 = "rel:src-a:provider-office:office:o2:provider:p1"
LEASE = 10_000


def read(store: Store, *, limit: int = 100, max_bytes: int = 1_000_000, token: str = "t1"):
    return store.read_ready(SOURCE, token=token, lease_ms=LEASE, limit=limit, max_bytes=max_bytes)


def ids(round_: ReadRound) -> list[str]:
    return [e.event_id for e in round_.events]


def commit(
    store: Store,
    round_: ReadRound,
    *bundles: BundleToCommit,
    rejected: Iterable[RejectedEvent] = (),
    now: int = NOW,
) -> dict[str, tuple[CommitStatus, int]] | None:
    return store.commit(SOURCE, round_, bundles=list(bundles), rejected=list(rejected), now_ms=now)


def record(store: Store, bid: str, *outcomes: tuple[str, str], now: int = NOW, fence: int = 1):
    return store.record(
        SOURCE,
        bid,
        fence,
        [EventOutcomeRecord(eid, fate) for eid, fate in outcomes],
        status="PERSISTED",
        now_ms=now,
    )


# -- the planning lease ---------------------------------------------------------------------------


def test_read_takes_the_lease_and_a_second_reader_is_busy(store, client, names):
    put(store, resource(eid="a"))

    first = read(store, token="t1")
    second = read(store, token="t2")

    assert (ids(first), first.busy, first.token) == (["a"], False, "t1")
    assert (second.busy, second.events) == (True, ())
    assert client.get(names.plan_lock) == "t1"
    assert 0 < client.pttl(names.plan_lock) <= LEASE
    assert client.hget(names.stats, "read") == "1"  # the busy read read nothing


def test_commit_under_a_lost_lease_returns_none_and_writes_nothing(store, client, names):
    put(store, resource(eid="a"))
    stale = read(store, token="t1")
    client.delete(names.plan_lock)  # t1's lease expired...
    fresh = read(store, token="t2")  # ...and another planner took it

    lost = commit(store, stale, bundle("B1", "a", writes=[P1]), rejected=[RejectedEvent("a", "{}")])

    assert lost is None
    assert not client.exists(names.bundle("B1"))
    assert client.zrange(names.ready, 0, -1) == ["a"]
    assert client.hget(names.event("a"), "st") == "pending"
    assert client.xlen(names.dlq) == 0
    assert client.hmget(names.stats, "planned", "inflight", "bundles") == [None, None, None]
    assert client.get(names.plan_lock) == "t2"
    assert commit(store, fresh, bundle("B1", "a", writes=[P1])) == {"B1": ("ready", 1)}


def test_commit_releases_the_lease_and_a_read_of_nothing_keeps_none(store, client, names):
    put(store, resource(eid="a"), resource(id_="p2", eid="b"))
    commit(store, read(store, limit=1, token="t1"), bundle("B1", "a", writes=[P1]))
    assert not client.exists(names.plan_lock)

    second = read(store, token="t2")
    assert ids(second) == ["b"]
    commit(store, second, bundle("B2", "b", writes=[P2]))
    empty = read(store, token="t3")

    assert (empty.busy, empty.events) == (False, ())
    assert not client.exists(names.plan_lock)


# -- what a read takes ----------------------------------------------------------------------------


def test_read_returns_what_planning_needs_of_each_event(store, client, names):
    put(store, link(eid="l1", group="links"))
    client.hset(names.event("l1"), "nm", 1)  # as record.lua leaves an UNMERGED event

    (event,) = read(store).events

    assert (event.event_id, event.seq, event.entity, event.group) == ("l1", 1, REL, "links")
    assert event.no_merge
    assert set(event.resources) == {O1, P1}
    assert event.body["to"] == {"type": "provider", "id": "p1"}  # decoded with the read


def test_read_stops_at_the_count_limit_in_seq_order(store, client, names):
    put(store, resource(eid="a"), resource(id_="p2", eid="b"), resource(id_="p3", eid="c"))

    round_ = read(store, limit=2)

    assert ids(round_) == ["a", "b"]
    assert [e.seq for e in round_.events] == [1, 2]
    assert (round_.more, round_.seq, round_.bulk) == (True, 3, False)
    assert client.zrange(names.ready, 0, -1) == ["a", "b", "c"]  # reading takes nothing out
    assert client.hget(names.stats, "read") == "2"


@pytest.mark.parametrize(
    ("max_bytes", "expected", "more"),
    [(500, ["a"], True), (900, ["a", "b"], True), (1000, ["a", "b", "c"], False)],
)
def test_read_stops_at_the_byte_limit_but_always_reads_one_event(store, max_bytes, expected, more):
    put(
        store,
        item(resource(eid="a"), size=600),  # larger than the smallest limit: read alone
        item(resource(id_="p2", eid="b"), size=300),
        item(resource(id_="p3", eid="c"), size=100),
    )

    round_ = read(store, max_bytes=max_bytes)

    assert (ids(round_), round_.more) == (expected, more)


def batch(*eids: str, first: int = 2) -> list[Any]:
    return [resource(id_=f"p{first + i}", eid=e, atomicBatch="B") for i, e in enumerate(eids)]


def test_read_leaves_an_atomic_batch_that_does_not_fit_whole_for_the_next_round(store):
    put(store, resource(eid="x"), *batch("m1", "m2", "m3"), resource(id_="p9", eid="y"))

    first = read(store, limit=2)
    commit(store, first, bundle("B1", "x", writes=[P1]))
    second = read(store, limit=2)

    assert (ids(first), first.more) == (["x"], True)
    assert (ids(second), second.more) == (["m1", "m2", "m3"], True)  # first now: whole


def test_read_reads_an_atomic_batch_at_the_head_whole_past_both_limits(store):
    put(store, *batch("m1", "m2", "m3"), resource(id_="p9", eid="y"))

    round_ = read(store, limit=1, max_bytes=1)

    assert (ids(round_), round_.more) == (["m1", "m2", "m3"], True)


def test_a_round_reads_in_calls_of_at_most_chunk_events_never_cutting_a_batch(store, client, names):
    # Given 9 events, an atomic batch of 3 from the 3rd
    singles = [resource(id_=f"p{10 + i}", eid=f"s{i}") for i in range(6)]
    put(store, *singles[:2], *batch("m1", "m2", "m3"), *singles[2:])
    calls: list[int] = []
    one_call = store._read_call

    def counted(source: str, arguments: Any) -> Any:
        meta, events = one_call(source, arguments)
        calls.append(len(events))
        return meta, events

    store._read_call = counted

    # When a round of at most 8 events reads in calls of at most 2
    round_ = store.read_ready(SOURCE, token="t1", lease_ms=LEASE, limit=8, max_bytes=10**6, chunk=2)

    # Then it reads what one call would, in 4 calls (2, the batch whole, 2, 1), under one lease
    assert ids(round_) == ["s0", "s1", "m1", "m2", "m3", "s2", "s3", "s4"]
    assert round_.more
    assert calls == [2, 3, 2, 1]
    assert client.get(names.plan_lock) == "t1"
    assert client.hget(names.stats, "read") == "8"
    assert commit(store, round_) == {}
    assert client.get(names.plan_lock) is None


def test_read_plans_one_kind_of_request_per_round(store):
    bulk = [
        item(resource(id_="p2", eid="b1"), bulk=True),
        item(resource(id_="p3", eid="b2"), bulk=True),
    ]
    put(store, resource(eid="n1"), *bulk, resource(id_="p4", eid="n2"))
    keys = {"n1": P1, "b1": P2, "b2": P3, "n2": P4}

    rounds = []
    for number in range(3):
        round_ = read(store)
        rounds.append((ids(round_), round_.bulk, round_.more))
        written = [keys[e] for e in ids(round_)]
        commit(store, round_, bundle(f"B{number}", *ids(round_), writes=written))

    # bulk events after bundle ones are left for a round of their own, and so on
    assert rounds == [(["n1"], False, True), (["b1", "b2"], True, True), (["n2"], False, False)]


# -- commit: bundles in plan order, behind the holders of their keys ------------------------------


def test_commit_ready_bundle_is_claimed_by_its_planner_or_left_to_the_ticker(store, client, names):
    put(store, resource(eid="a"), resource(id_="p2", eid="b"))

    result = commit(
        store,
        read(store),
        bundle("B1", "a", writes=[P1], groups=["provider:p1"]),
        bundle("B2", "b", writes=[P2], claim=False),
        now=NOW + 7,
    )

    assert result == {"B1": ("ready", 1), "B2": ("ready", 0)}
    assert client.zrange(names.claims, 0, -1, withscores=True) == [
        ("B2", NOW + 7),
        ("B1", NOW + 7 + 3000),
    ]
    stored = client.hgetall(names.bundle("B1"))
    assert (stored["st"], stored["np"], stored["fence"]) == ("planned", "0", "1")
    assert (json.loads(stored["ev"]), json.loads(stored["x"])) == (["a"], [P1])
    assert json.loads(stored["groups"]) == ["provider:p1"]
    assert client.ttl(names.bundle("B1")) == -1
    assert client.hmget(names.event("a"), "st", "bd") == ["in_flight", "B1"]
    assert client.zcard(names.ready) == 0
    (claimed,) = store.claim(SOURCE, ["B2"], NOW + 8, "recover")
    assert (claimed.code, claimed.fence) == ("ok", 1)


def test_commit_conflicting_bundles_of_one_plan_second_waits_for_the_first(store, client, names):
    put(store, resource(eid="a"), resource(eid="b"))

    result = commit(
        store,
        read(store),
        bundle("B1", "a", writes=[P1]),
        bundle("B2", "b", writes=[P1], after=["B1"]),
    )

    assert result == {"B1": ("ready", 1), "B2": ("waiting", 0)}
    assert client.hmget(names.bundle("B2"), "st", "np", "fence") == ["waiting", "1", "0"]
    assert client.smembers(names.dependents("B1")) == {"B2"}
    assert client.hgetall(names.hold_writer) == {P1: "B2"}
    assert client.zscore(names.claims, "B2") is None
    assert client.hmget(names.event("b"), "st", "bd") == ["in_flight", "B2"]


def test_bundle_committed_while_another_holds_its_key_waits_for_it(store, client, names):
    put(store, resource(eid="a"))
    commit_bundles(store, [bundle("B1", "a", writes=[P1])])
    put(store, resource(eid="b"), resource(id_="p2", eid="c"))

    result = commit(
        store, read(store), bundle("B2", "b", writes=[P1]), bundle("B3", "c", writes=[P2])
    )

    assert result == {"B2": ("waiting", 0), "B3": ("ready", 1)}
    assert client.hget(names.bundle("B2"), "np") == "1"
    assert client.smembers(names.dependents("B1")) == {"B2"}


def test_readers_of_a_resource_do_not_wait_for_each_other(store, client, names):
    put(store, link(eid="l1"))
    commit_bundles(store, [bundle("R1", "l1", writes=[REL], reads=[O1, P1])])
    put(store, link(provider="p2", eid="l2"))

    commit_bundles(store, [bundle("R2", "l2", writes=[REL2], reads=[O1, P2])])

    assert client.smembers(names.hold_readers(O1)) == {"R1", "R2"}
    assert client.hget(names.hold_reader_count, O1) == "2"
    assert not client.exists(names.dependents("R1"))


def test_writer_waits_for_every_reader_since_and_the_last_writer(store, client, names):
    office = resource("UPSERT", "office", "o1", eid="w0")
    put(store, office, link(eid="l1"), link(provider="p2", eid="l2"))
    commit_bundles(
        store,
        [
            bundle("W0", "w0", writes=[O1]),
            bundle("R1", "l1", writes=[REL], reads=[O1, P1], after=["W0"]),
            bundle("R2", "l2", writes=[REL2], reads=[O1, P2], after=["W0"]),
        ],
        expect={"W0": "ready", "R1": "waiting", "R2": "waiting"},
    )
    put(store, resource("UPSERT", "office", "o1", eid="w1"))

    commit_bundles(store, [bundle("W1", "w1", writes=[O1])], expect={"W1": "waiting"})

    assert client.hget(names.bundle("W1"), "np") == "3"
    assert [client.sismember(names.dependents(b), "W1") for b in ("W0", "R1", "R2")] == [1, 1, 1]
    assert client.hget(names.hold_writer, O1) == "W1"
    assert not client.exists(names.hold_readers(O1))
    assert client.hget(names.hold_reader_count, O1) is None
    # a reader after W1 waits for W1 alone
    put(store, link(provider="p3", eid="l3"))
    commit_bundles(
        store, [bundle("R3", "l3", writes=[REL3], reads=[O1, P3])], expect={"R3": "waiting"}
    )
    assert client.hget(names.bundle("R3"), "np") == "1"
    assert client.smembers(names.dependents("W1")) == {"R3"}


def test_commit_aborts_a_bundle_whose_event_left_the_ready_log_and_what_follows_it(
    store, client, names
):
    put(store, resource(eid="a"))
    commit_bundles(store, [bundle("B1", "a", writes=[P1])])
    put(store, resource(eid="b"), resource(id_="p3", eid="c"))

    result = commit(
        store,
        read(store),
        bundle("B2", "b", "a", writes=[P1]),  # `a` is in flight in B1
        bundle("B3", "c", writes=[P3], after=["B2"]),
        now=NOW + 4,
    )

    assert result == {"B2": ("aborted", 0), "B3": ("aborted", 0)}
    assert client.zrange(names.ready, 0, -1) == ["b", "c"]
    assert client.hmget(names.event("b"), "st", "bd") == ["pending", None]
    assert not client.exists(names.bundle("B2"), names.bundle("B3"))
    assert client.hgetall(names.hold_writer) == {P1: "B1"}
    assert client.zscore(names.due, PLAN_DUE) == NOW + 4  # planned again at once


def test_a_round_commits_in_calls_of_whole_bundles_and_an_abort_carries_over(client, names):
    store = Store(client, fast_settings(flush_chunk=2))
    put(store, resource(eid="a"))
    commit_bundles(store, [bundle("B1", "a", writes=[P1])])
    put(store, resource(eid="b"), resource(id_="p3", eid="c"), resource(id_="p4", eid="d"))
    round_ = read(store)
    held: list[bool] = []
    one_call = store._run

    def counted(script: Any, source: str, *args: Any) -> Any:
        reply = one_call(script, source, *args)
        if script is store._scripts.commit:
            held.append(client.get(names.plan_lock) == "t1")
        return reply

    store._run = counted  # type: ignore[method-assign]

    # When the round commits B2 (b and a: `a` is in flight in B1), B3 (c, after B2) and B4 (d)
    result = commit(
        store,
        round_,
        bundle("B2", "b", "a", writes=[P1]),
        bundle("B3", "c", writes=[P3], after=["B2"]),
        bundle("B4", "d", writes=[P4]),
        now=NOW + 4,
    )

    # Then in 2 calls (B2; B3 and B4): B2 is aborted, and so is B3 in the next call; the lease
    # is kept until the last
    assert held == [True, False]
    assert result == {"B2": ("aborted", 0), "B3": ("aborted", 0), "B4": ("ready", 1)}
    assert client.zrange(names.ready, 0, -1) == ["b", "c"]
    assert client.zscore(names.due, PLAN_DUE) == NOW + 4


def test_commit_after_a_send_back_on_its_key_aborts_it_and_what_follows_it(store, client, names):
    # Given B1 in flight on p1, and a round read before B1 sends its event back
    put(store, resource(eid="a"))
    commit_bundles(store, [bundle("B1", "a", writes=[P1])])
    put(store, resource(eid="b"), resource(id_="p3", eid="x"), resource(id_="p3", eid="y"))
    put(store, resource(id_="p4", eid="z"))
    stale = read(store)
    record(store, "B1", ("a", "CANCELLED"), now=NOW + 10)
    assert client.hgetall(names.prefix + SENT_BACK_KEYS) == {P1: "1"}

    # When that round commits
    result = commit(
        store,
        stale,
        bundle("B2", "b", "x", writes=[P1, P3]),
        bundle("B3", "y", writes=[P3], after=["B2"]),
        bundle("B4", "z", writes=[P4]),
        now=NOW + 20,
    )

    # Then nothing on p1 overtakes `a`, nor what follows it in the plan; the rest goes
    assert result == {"B2": ("aborted", 0), "B3": ("aborted", 0), "B4": ("ready", 1)}
    assert client.zrange(names.ready, 0, -1, withscores=True) == [
        ("a", 1.0),
        ("b", 2.0),
        ("x", 3.0),
        ("y", 4.0),
    ]
    assert client.hgetall(names.hold_writer) == {P4: "B4"}
    assert client.zscore(names.due, PLAN_DUE) == NOW + 10  # due since the send-back
    # a round read after the send-back reads `a` first, and commits
    fresh = read(store)
    assert (stale.epoch, fresh.epoch, ids(fresh)[0]) == (0, 1, "a")
    assert commit(store, fresh, bundle("B5", "a", "b", writes=[P1])) == {"B5": ("ready", 1)}


def test_commit_dead_letters_rejected_events_at_stage_flush(store, client, names):
    put(store, resource(eid="a", group="g1"), resource(id_="p2", eid="b"))
    error = json.dumps({"code": 413, "type": "CONTENT_TOO_LARGE", "message": "too large"})

    commit_bundles(
        store,
        [bundle("B1", "b", writes=[P2])],
        rejected=[RejectedEvent("a", error), RejectedEvent("b", error)],  # b: in B1, kept
        now=NOW + 3,
    )

    assert client.hmget(names.event("a"), "st", "stage", "fate", "err") == [
        "dead_lettered",
        "flush",
        "FAILED",
        error,
    ]
    assert 0 < client.ttl(names.event("a")) <= 3600
    assert client.hget(names.event("b"), "st") == "in_flight"
    (entry,) = letters(client, names.dlq)
    assert (entry["eventId"], entry["stage"], entry["group"], entry["error"]) == (
        "a",
        "flush",
        "g1",
        error,
    )
    assert (entry["publishedAt"], entry["failedAt"]) == (str(NOW), str(NOW + 3))
    assert json.loads(entry["event"])["eventId"] == "a"
    assert client.hmget(names.stats, "buffered", "planned", "inflight") == ["0", "2", "1"]


# -- the planning due time (publish's side: test_publish_script.py) -------------------------------


def test_commit_of_a_cut_read_is_due_at_once(store, client, names):
    put(store, resource(eid="a"), resource(id_="p2", eid="b"))

    commit(store, read(store, limit=1), bundle("B1", "a", writes=[P1]), now=NOW + 20)

    assert client.zscore(names.due, PLAN_DUE) == NOW + 20


def test_commit_that_plans_everything_leaves_the_source_not_due(store, client, names):
    put(store, resource(eid="a"))

    commit_bundles(store, [bundle("B1", "a", writes=[P1])])

    assert client.zscore(names.due, PLAN_DUE) is None
    assert client.hmget(names.stats, "buffered", "rbytes", "rfirst") == ["0", "0", None]
    assert store.take_due([SOURCE], NOW + 10**6, groups=1, polls=0, claims=0)[SOURCE].groups == ()


@pytest.mark.parametrize(
    ("commit_at", "due"),
    [(NOW + 620, NOW + 720), (NOW + 950, NOW + 1001)],
    ids=["linger", "max-age"],
)
def test_commit_leaves_events_published_meanwhile_due_by_linger_within_max_age(
    store, client, names, commit_at, due
):
    put(store, resource(eid="a"), now=NOW)
    round_ = read(store)
    put(store, resource(id_="p2", eid="b"), now=NOW + 1)
    store.take_due([SOURCE], NOW + 600, groups=1, polls=0, claims=0)  # the ticker's lease
    assert client.zscore(names.due, PLAN_DUE) == NOW + 1100

    commit(store, round_, bundle("B1", "a", writes=[P1]), now=commit_at)

    # linger after the commit, never past b's publish time + max age
    assert client.zscore(names.due, PLAN_DUE) == due
    assert client.hget(names.stats, "rfirst") == str(NOW + 1)


def test_stats_counters_follow_events_through_a_round(store, client, names):
    counters = ("published", "buffered", "read", "planned", "inflight", "bundles")

    def stats() -> dict[str, int]:
        found = client.hgetall(names.stats)
        return {name: int(found[name]) for name in counters if name in found}

    put(store, resource(eid="a"), resource(id_="p2", eid="b"), resource(id_="p3", eid="c"))
    assert stats() == {"published": 3, "buffered": 3}

    round_ = read(store, limit=2)
    read(store, token="other")  # busy: counts nothing
    assert stats() == {"published": 3, "buffered": 3, "read": 2}

    commit(store, round_, bundle("B1", "a", "b", writes=[P1, P2]))
    assert stats() == {"published": 3, "buffered": 1, "read": 2, "planned": 2, "inflight": 2,
                       "bundles": 1}  # fmt: skip

    record(store, "B1", ("a", "APPLIED"), ("b", "CANCELLED"))
    assert stats() == {"published": 3, "buffered": 2, "read": 2, "planned": 2, "inflight": 0,
                       "bundles": 0}  # fmt: skip


# -- record.lua: the dependency graph -------------------------------------------------------------


def test_record_of_the_predecessor_makes_the_dependent_ready(store, client, names):
    put(store, resource(eid="a"), resource(eid="b"))
    commit_bundles(
        store,
        [bundle("B1", "a", writes=[P1]), bundle("B2", "b", writes=[P1], after=["B1"])],
        expect={"B1": "ready", "B2": "waiting"},
    )

    result = record(store, "B1", ("a", "APPLIED"), now=NOW + 5)

    assert (result.done, result.ready) == (True, ("B2",))
    assert client.hmget(names.bundle("B2"), "st", "np") == ["planned", "0"]
    assert client.zscore(names.claims, "B2") == NOW + 5
    assert not client.exists(names.dependents("B1"))
    assert client.hgetall(names.hold_writer) == {P1: "B2"}
    (claimed,) = store.claim(SOURCE, ["B2"], NOW + 6, "recover")
    assert (claimed.code, claimed.fence) == ("ok", 1)


def test_dependent_of_two_bundles_is_ready_once_both_are_recorded(store, client, names):
    put(store, resource(eid="a"), resource(id_="p2", eid="b"))
    commit_bundles(store, [bundle("B1", "a", writes=[P1]), bundle("B2", "b", writes=[P2])])
    put(store, resource(eid="c"), resource(id_="p2", eid="d"))
    commit_bundles(store, [bundle("B3", "c", "d", writes=[P1, P2])], expect={"B3": "waiting"})
    assert client.hget(names.bundle("B3"), "np") == "2"

    first = record(store, "B1", ("a", "APPLIED"))
    assert (first.ready, client.hmget(names.bundle("B3"), "st", "np")) == ((), ["waiting", "1"])

    second = record(store, "B2", ("b", "APPLIED"))
    assert (second.ready, client.hget(names.bundle("B3"), "st")) == (("B3",), "planned")


def b1_and_its_followers(store: Store) -> None:
    """B1 (`a` on p1, `c` on p2); B2 (p1, p3) and B3 (p2) wait for it; B4 (p3) waits for B2."""
    put(store, resource(eid="a"), resource(id_="p2", eid="c"))
    commit_bundles(store, [bundle("B1", "a", "c", writes=[P1, P2])])
    put(store, resource(eid="b"), resource(id_="p3", eid="e"), resource(id_="p2", eid="d"))
    put(store, resource(id_="p3", eid="f"))
    commit_bundles(
        store,
        [
            bundle("B2", "b", "e", writes=[P1, P3]),
            bundle("B3", "d", writes=[P2]),
            bundle("B4", "f", writes=[P3], after=["B2"]),
        ],
        expect={"B2": "waiting", "B3": "waiting", "B4": "waiting"},
    )


def test_record_sending_an_event_back_trims_the_waiting_bundles_on_its_entity_only(
    store, client, names
):
    b1_and_its_followers(store)

    # When B1 sends `a` (p1) back and applies `c` (p2)
    result = record(store, "B1", ("a", "CANCELLED"), ("c", "APPLIED"), now=NOW + 9)

    # Then B2 gives back its operation on p1 and keeps p3's, ready now; B4 (p3) still waits for
    # it; B3 only loses its predecessor
    assert (result.rebuffered, result.ready) == (1, ("B2", "B3"))
    assert client.zrange(names.ready, 0, -1, withscores=True) == [("a", 1.0), ("b", 3.0)]
    assert client.hmget(names.bundle("B2"), "ev", "x", "st") == ['["e"]', f'["{P3}"]', "planned"]
    assert client.hmget(names.bundle("B4"), "st", "np") == ["waiting", "1"]
    assert client.smembers(names.dependents("B2")) == {"B4"}
    assert client.hmget(names.event("b"), "st", "bd") == ["pending", ""]
    assert client.hgetall(names.hold_writer) == {P2: "B3", P3: "B4"}
    assert client.hget(names.bundle("B3"), "st") == "planned"
    assert client.zscore(names.claims, "B3") == NOW + 9
    assert client.zscore(names.due, PLAN_DUE) == NOW + 9
    assert client.hmget(names.stats, "buffered", "inflight", "bundles", "trimmed") == [
        "2",
        "3",
        "3",
        "1",
    ]
    assert set(client.hgetall(names.prefix + SENT_BACK_KEYS)) == {P1}
    assert client.get(names.prefix + SENT_BACK_EPOCH) == "1"
    # a layout a trim rewrote is checked again before it is sent
    claims = store.claim(SOURCE, ["B2", "B3"], NOW + 10, "recover")
    assert [(c.code, c.trimmed) for c in claims] == [("ok", True), ("ok", False)]


def test_events_sent_again_are_planned_in_the_recorded_bundles_place_ahead_of_its_followers(
    store, client, names
):
    b1_and_its_followers(store)

    # When B1 applies `c` (p2) and sends `a` (p1) again, planned again as R1
    result = store.record(
        SOURCE,
        "B1",
        1,
        [EventOutcomeRecord("a", "CANCELLED"), EventOutcomeRecord("c", "APPLIED")],
        status="PERSISTED",
        now_ms=NOW + 9,
        replan=[replace(bundle("R1", "a", writes=[P1]), claim=False)],
    )

    # Then R1 takes B1's place: ready at once, B2 (p1) waits for it and keeps everything; B3
    # (p2 only) is ready; nothing went back to the log and nothing was trimmed
    assert (result.replanned, result.rebuffered, result.ready) == (1, 0, ("B3", "R1"))
    assert client.zcard(names.ready) == 0
    assert client.hmget(names.bundle("R1"), "st", "ev", "np") == ["planned", '["a"]', "0"]
    assert client.hmget(names.event("a"), "st", "bd", "fate") == ["in_flight", "R1", "CANCELLED"]
    assert client.hmget(names.bundle("B2"), "st", "np", "ev") == ["waiting", "1", '["b","e"]']
    assert json.loads(client.hget(names.bundle("B2"), "pre")) == ["B1", "R1"]
    assert client.smembers(names.dependents("R1")) == {"B2"}
    assert client.hget(names.bundle("B3"), "st") == "planned"
    # p1 stays B2's (a later writer, which follows R1); R1 sorts between B1 and B2
    assert client.hgetall(names.hold_writer) == {P1: "B2", P2: "B3", P3: "B4"}
    cseq = {b: float(client.hget(names.bundle(b), "cseq")) for b in ("B1", "R1", "B2")}
    assert cseq["B1"] < cseq["R1"] < cseq["B2"]
    assert client.hmget(names.stats, "requeued", "trimmed", "replanned", "inflight") == [
        None,
        None,
        "1",
        "5",
    ]

    # And when R1 is recorded, B2 is ready
    claimed = store.claim(SOURCE, ["R1"], NOW + 10, "recover")[0]
    assert (claimed.code, claimed.trimmed) == ("ok", False)
    done = record(store, "R1", ("a", "APPLIED"), now=NOW + 11, fence=claimed.fence or 0)
    assert done.ready == ("B2",)
    assert client.hget(names.bundle("B2"), "st") == "planned"


def test_a_replacement_holds_what_no_later_bundle_holds(store, client, names):
    # Given B1 writes p1 and nothing follows it
    put(store, resource(eid="a"), resource(eid="b"))
    commit_bundles(store, [bundle("B1", "a", writes=[P1])], limit=1)

    # When it sends `a` again, planned again as R1
    store.record(
        SOURCE,
        "B1",
        1,
        [EventOutcomeRecord("a", "RETRY")],
        status="PERSISTED",
        now_ms=NOW + 5,
        replan=[replace(bundle("R1", "a", writes=[P1]), claim=False)],
    )

    # Then R1 holds p1: the next round's `b` follows it
    assert client.hgetall(names.hold_writer) == {P1: "R1"}
    commit_bundles(store, [bundle("B2", "b", writes=[P1])], expect={"B2": "waiting"})
    assert client.smembers(names.dependents("R1")) == {"B2"}


def test_record_sending_a_resource_back_dissolves_a_waiting_link_that_references_it(
    store, client, names
):
    put(store, resource(eid="a"))
    commit_bundles(store, [bundle("B1", "a", writes=[P1])])
    put(store, link(eid="l1"), link(provider="p2", eid="l2"))
    commit_bundles(
        store,
        [
            bundle("R1", "l1", writes=[REL], reads=[O1, P1]),
            bundle("R2", "l2", writes=[REL2], reads=[O1, P2]),
        ],
        expect={"R1": "waiting", "R2": "ready"},
    )

    result = record(store, "B1", ("a", "RETRY"))

    assert result.ready == ()
    assert client.zrange(names.ready, 0, -1) == ["a", "l1"]
    assert not client.exists(names.bundle("R1"))
    assert client.smembers(names.hold_readers(O1)) == {"R2"}
    assert client.hget(names.hold_reader_count, O1) == "1"
    assert not client.exists(names.hold_readers(P1))


def test_trimmed_bundle_gives_its_hold_back_to_a_reader_still_in_flight(store, client, names):
    # Given two links in flight that reference p1 (R, L0), and D, which writes p1 after them
    put(store, link(eid="r"), link(office="o2", eid="l0"))
    commit_bundles(
        store,
        [
            bundle("R", "r", writes=[REL], reads=[O1, P1]),
            bundle("L0", "l0", writes=[REL_O2], reads=["res:src-a:office:o2", P1]),
        ],
    )
    put(store, resource(eid="b"))
    commit_bundles(store, [bundle("D", "b", writes=[P1])], expect={"D": "waiting"})
    assert client.hget(names.bundle("D"), "np") == "2"

    # When R sends its link back: D writes p1, which that link references, so D gives back its
    # write (and, left empty, is deleted) while L0 is still in flight
    record(store, "R", ("r", "CANCELLED"))
    assert not client.exists(names.bundle("D"))
    assert client.hget(names.bundle("L0"), "st") == "planned"

    # Then p1's readers are L0 again, and a bundle planned next on p1 waits for it
    assert client.smembers(names.hold_readers(P1)) == {"L0"}
    planned = commit(store, read(store, limit=1), bundle("E", "r", writes=[P1]))
    assert planned == {"E": ("waiting", 0)}, f"E on p1 committed {planned} while L0 is in flight"


# -- cost -----------------------------------------------------------------------------------------


def office_link(i: int) -> PublishItem:
    """A link from office o1 to provider p<i>, naming one of 2,000 groups (built without
    validation: 20,000 of them)."""
    head = json.dumps(
        {"eventId": f"l{i}", "sourceKey": SOURCE, "target": "relationship", "action": "UPSERT",
         "type": "provider-office", "from": {"type": "office", "id": "o1"},
         "to": {"type": "provider", "id": f"p{i}"}},
        separators=(",", ":"),
    )  # fmt: skip
    content = '{"data":{"description":"x"}}'
    return PublishItem(
        event_id=f"l{i}",
        head=head,
        content=content,
        entity=f"rel:src-a:provider-office:office:o1:provider:p{i}",
        resources=(O1, f"res:src-a:provider:p{i}"),
        group=f"g{i % 2000}",
        size=len(head) + len(content),
    )


@pytest.fixture
def slow_scripts(client: redis.Redis) -> Iterator[Callable[[], list[str]]]:
    """The script calls Redis itself timed at 200 ms or more (its slow log, restored after)."""
    before = text(client.config_get("slowlog-log-slower-than")["slowlog-log-slower-than"])
    client.config_set("slowlog-log-slower-than", 200_000)  # µs
    client.slowlog_reset()

    def found() -> list[str]:
        entries = client.slowlog_get(128)
        return [f"{e['duration']} µs" for e in entries if text(e["command"]).startswith("EVAL")]

    yield found
    client.config_set("slowlog-log-slower-than", before)
    client.slowlog_reset()


def test_no_script_cost_grows_with_the_groups_referencing_one_resource(
    store, client, names, slow_scripts
):
    # Given 20,000 links to office o1, over 2,000 groups
    links = [office_link(i) for i in range(20_000)]
    for start in range(0, len(links), 1000):
        put(store, *links[start : start + 1000])

    # When every one is planned, 2,000 a round, 5 a bundle, each bundle reading o1
    statuses: dict[str, CommitStatus] = {}
    rounds = 0
    while (round_ := read(store, limit=2000, max_bytes=10**7)).events:
        rounds += 1
        bundles = []
        for at in range(0, len(round_.events), 5):
            events = round_.events[at : at + 5]
            ends = sorted({r for e in events for r in e.resources} - {O1})
            bundles.append(
                bundle(
                    f"B{events[0].event_id}",
                    *(e.event_id for e in events),
                    writes=sorted(e.entity for e in events),
                    reads=[O1, *ends],
                    claim=False,
                )
            )
        result = commit(store, round_, *bundles)
        assert result is not None
        statuses.update({bid: status for bid, (status, _) in result.items()})

    # Then the readers of o1 never waited for each other, and no script call took 200 ms
    assert (rounds, len(statuses), set(statuses.values())) == (10, 4000, {"ready"})
    assert client.hget(names.hold_reader_count, O1) == "4000"
    assert slow_scripts() == []


def test_a_delete_still_unsent_is_known_to_later_rounds_until_it_is_recorded(store, client, names):
    # Given a round that commits a DELETE of p1 (ready, not sent yet)
    put(store, resource("DELETE", eid="d"))
    deleting = replace(bundle("B1", "d", writes=[P1]), actions={P1: "DELETE"})
    assert commit(store, read(store), deleting) == {"B1": ("ready", 1)}
    assert client.hgetall(names.last_action) == {P1: "DELETE"}

    # When a later round reads an UPSERT of p1, it is told p1's last planned operation deletes it
    put(store, resource(eid="u"))
    later = read(store, token="t2")
    assert later.after_delete == frozenset({P1})
    commit(store, later)

    # Then once the DELETE is recorded, nothing is known of p1 any more
    record(store, "B1", ("d", "APPLIED"))
    assert client.hlen(names.last_action) == 0
    put(store, resource(eid="u2"))
    assert read(store, token="t3").after_delete == frozenset()


def test_an_upsert_behind_an_unsent_delete_is_held_as_a_reset_until_the_delete_is_recorded(
    store, client, names
):
    # Given an unsent DELETE of p1, then an UPSERT of p1 planned behind it
    put(store, resource("DELETE", eid="d"))
    deleting = replace(bundle("B1", "d", writes=[P1]), actions={P1: "DELETE"})
    assert commit(store, read(store), deleting) == {"B1": ("ready", 1)}
    put(store, resource(eid="u"))
    upserting = replace(bundle("B2", "u", writes=[P1]), actions={P1: "UPSERT"})
    assert commit(store, read(store, token="t2"), upserting) == {"B2": ("waiting", 0)}

    # When a round reads a link to p1, p1 is held as deleted or created again (its old
    # relationships go with it), though its last planned operation is an UPSERT
    put(store, link(eid="l"))
    round_ = read(store, token="t3")
    assert round_.held == {P1: "UPSERT+"}
    commit(store, round_)

    # Then once the DELETE is recorded, the UPSERT behind it is a plain one
    record(store, "B1", ("d", "APPLIED"))
    again = read(store, token="t4")
    assert ids(again) == ["l"]
    assert again.held == {P1: "UPSERT"}


def test_an_operation_that_went_apart_as_an_expected_failure_is_held_as_such(store, client, names):
    # Given a CREATE of p1 planned apart because it is expected to be refused (`?CREATE`)
    put(store, resource("CREATE", eid="c"))
    creating = replace(bundle("B1", "c", writes=[P1]), actions={P1: "?CREATE"})
    commit(store, read(store), creating)

    # When an UPSERT of p1 is planned behind it and a round reads a link to p1
    put(store, resource(eid="u"))
    upserting = replace(bundle("B2", "u", writes=[P1]), actions={P1: "UPSERT"})
    commit(store, read(store, token="t2"), upserting)
    put(store, link(eid="l"))

    # Then the expected failure is not a reset of p1: the UPSERT is a plain one
    assert read(store, token="t3").held == {P1: "UPSERT"}


def test_a_round_reads_what_is_held_and_known_of_its_keys_and_ends(store, client, names):
    # Given p1 held by an unsent DELETE, o1 known to exist, and foresight's counts
    put(store, resource("DELETE", eid="d"))
    deleting = replace(bundle("B1", "d", writes=[P1]), actions={P1: "DELETE"})
    assert commit(store, read(store), deleting) == {"B1": ("ready", 1)}
    client.hset(names.known, mapping={O1: "1", P2: "2"})
    client.hset(names.refusals, mapping={"kh": "3", "gm": "1.5", "every": "1"})

    # When a round reads a link o1 -> p1 and an UPSERT of p3
    put(store, link(eid="l"))
    put(store, resource(id_="p3", eid="u"))
    round_ = read(store, token="t2")

    # Then it holds the unsent action of p1 and what is known of o1, nothing of p2 (not read)
    assert round_.held == {P1: "DELETE"}
    assert round_.known == {O1: "1"}
    assert round_.foresight_counts.known_hits == 3.0
    assert round_.foresight_counts.guess_misses == 1.5
    assert round_.names_every_failure

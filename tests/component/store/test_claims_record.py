"""claim.lua, mark.lua and record.lua: claims with fencing tokens, state changes, outcomes."""

from __future__ import annotations

import json

from worker.store.keys import PLAN_DUE, pause_key
from worker.store.records import EventOutcomeRecord

from .conftest import NOW, SOURCE, bundle, commit_bundles, letters, put, resource

P1 = "res:src-a:provider:p1"


def committed(store, bid="B1", events=("a",), writes=(P1,)):
    """B1 committed ready, claimed by the caller (fence 1) until NOW + claim TTL."""
    commit_bundles(store, [bundle(bid, *events, writes=writes)])


def test_claim_of_a_live_claim_is_busy_and_of_an_expired_one_takes_a_new_fence(
    store, client, names
):
    put(store, resource(eid="a"))
    committed(store)

    (busy,) = store.claim(SOURCE, ["B1"], NOW + 10, "recover")
    (taken,) = store.claim(SOURCE, ["B1"], NOW + 3001, "recover")

    assert busy.code == "busy"
    assert (taken.code, taken.fence, taken.state) == ("ok", 2, "planned")
    assert taken.event_ids == ("a",)
    assert client.zscore(names.claims, "B1") == NOW + 3001 + 3000


def test_write_with_a_stale_fence_is_refused(store, client, names):
    put(store, resource(eid="a"))
    committed(store)
    store.claim(SOURCE, ["B1"], NOW + 3001, "recover")  # another worker took it over: fence 2

    assert store.mark_sending(SOURCE, "B1", 1, NOW + 3002) is False
    refused = store.record(
        SOURCE, "B1", 1, [EventOutcomeRecord("a", "APPLIED")], status="PERSISTED", now_ms=NOW
    )
    assert refused.done is False
    assert client.hget(names.bundle("B1"), "st") == "planned"
    assert client.hget(names.event("a"), "st") == "in_flight"
    assert store.mark_sending(SOURCE, "B1", 2, NOW + 3002) is True


def test_a_gated_mark_sends_only_while_the_source_has_no_pause(store, client, names):
    put(store, resource(eid="a"))
    committed(store)
    client.hset(pause_key(SOURCE), mapping={"until": NOW + 500, "kind": "rate_limited"})

    assert store.mark_sending(SOURCE, "B1", 1, NOW, gate=True) is None  # pause.lua decides
    assert client.hget(names.bundle("B1"), "st") == "planned"
    assert client.hget(names.bundle("B1"), "att") == "0"  # no attempt counted

    client.delete(pause_key(SOURCE))
    assert store.mark_sending(SOURCE, "B1", 1, NOW, gate=True) is True
    assert client.hget(names.bundle("B1"), "st") == "sending"


def test_mark_moves_sending_to_sent_and_schedules_the_first_poll(store, client, names):
    put(store, resource(eid="a"))
    committed(store)
    assert store.mark_sending(SOURCE, "B1", 1, NOW)

    done = store.mark_sent(
        SOURCE, "B1", 1, task_id="bd_1", issued_by="bundle", first_poll_ms=NOW + 20, now_ms=NOW
    )

    assert done
    assert client.hget(names.bundle("B1"), "st") == "sent"
    assert client.zscore(names.polls, "B1") == NOW + 20
    assert client.zscore(names.claims, "B1") is None
    assert client.hget(names.task("bd_1"), "bd") == "B1"
    assert store.mark_sending(SOURCE, "B1", 1, NOW) is False  # no way back


def test_release_puts_the_record_back_to_planned_with_a_retry_time(store, client, names):
    put(store, resource(eid="a"))
    committed(store)
    store.mark_sending(SOURCE, "B1", 1, NOW)

    assert store.release(SOURCE, "B1", 1, retry_at_ms=NOW + 500, error="429", now_ms=NOW)

    assert client.hget(names.bundle("B1"), "st") == "planned"
    assert client.zscore(names.claims, "B1") == NOW + 500
    (early,) = store.claim(SOURCE, ["B1"], NOW + 1, "recover")
    (claimed,) = store.claim(SOURCE, ["B1"], NOW + 500, "recover")
    assert early.code == "early"  # not before its retry time
    assert claimed.code == "ok"  # a released record has no live claim


def test_park_takes_the_record_out_of_every_schedule_and_keeps_its_locks(store, client, names):
    put(store, resource(eid="a"))
    committed(store)
    store.mark_sending(SOURCE, "B1", 1, NOW)

    assert store.park(SOURCE, "B1", 1, error="outcome unknown", now_ms=NOW)

    assert client.zscore(names.claims, "B1") is None
    assert client.zscore(names.parked, "B1") == NOW
    assert client.hget(names.hold_writer, P1) == "B1"
    assert client.hget(names.stats, "parked") == "1"
    assert client.hget(names.bundle("B1"), "st") == "sending"


def test_poll_claim_is_one_poller_at_a_time_and_repoll_marks_stale(store, client, names):
    put(store, resource(eid="a"))
    committed(store)
    store.mark_sending(SOURCE, "B1", 1, NOW)
    store.mark_sent(SOURCE, "B1", 1, task_id="bd_1", issued_by="bundle", first_poll_ms=NOW,
                    now_ms=NOW)  # fmt: skip

    (first,) = store.claim(SOURCE, ["B1"], NOW + 1, "poll")
    (second,) = store.claim(SOURCE, ["B1"], NOW + 2, "poll")
    assert (first.code, second.code) == ("ok", "busy")
    assert first.task_id == "bd_1"

    item = {"op": "repoll", "id": "B1", "fence": first.fence, "at": NOW + 99, "stale": True,
            "status": "PENDING"}  # fmt: skip
    assert store.mark(SOURCE, [item], NOW + 3) == [True]
    assert client.zscore(names.polls, "B1") == NOW + 99
    assert client.hget(names.bundle("B1"), "stale") == "1"
    assert client.hget(names.stats, "stale") == "1"
    assert store.mark(SOURCE, [{**item, "at": NOW + 200}], NOW + 4) == [True]
    assert client.hget(names.stats, "stale") == "1"  # counted once


def test_record_final_outcomes_expire_and_failures_are_dead_lettered(store, client, names):
    put(store, resource(eid="a"), resource(id_="p2", eid="b"))
    committed(store, events=("a", "b"), writes=(P1, "res:src-a:provider:p2"))
    error = json.dumps({"code": 400, "type": "FAILED_PRECONDITION", "message": "bad"})

    result = store.record(
        SOURCE,
        "B1",
        1,
        [EventOutcomeRecord("a", "APPLIED"), EventOutcomeRecord("b", "FAILED", error=error)],
        status="PERSISTED",
        now_ms=NOW + 7,
    )

    assert (result.done, result.finals, result.rebuffered, result.dead_letters) == (True, 2, 0, 1)
    assert client.hget(names.event("a"), "st") == "applied"
    assert client.hget(names.event("b"), "st") == "dead_lettered"
    assert 0 < client.ttl(names.event("a")) <= 3600
    assert client.hget(names.bundle("B1"), "st") == "recorded"
    assert 0 < client.ttl(names.bundle("B1")) <= 3600
    assert client.hgetall(names.hold_writer) == {}
    (entry,) = letters(client, names.dlq)
    assert entry["eventId"] == "b"
    assert entry["stage"] == "record"
    assert entry["bundleId"] == "B1"
    assert json.loads(entry["error"])["type"] == "FAILED_PRECONDITION"
    assert json.loads(entry["event"])["id"] == "p2"
    assert client.hmget(names.stats, "inflight", "bundles") == ["0", "0"]
    assert client.zscore(names.claims, "B1") is None


def test_record_sends_cancelled_events_back_under_their_original_seq(store, client, names):
    put(store, resource(eid="a", group="west"))
    committed(store)
    put(store, resource(eid="later", group="east"), now=NOW + 1)

    result = store.record(
        SOURCE, "B1", 1, [EventOutcomeRecord("a", "CANCELLED")], status="PERSISTED",
        now_ms=NOW + 9,
    )  # fmt: skip

    assert result.rebuffered == 1
    # back in the one ready log, ahead of the later event on its entity, and due at once
    assert client.zrange(names.ready, 0, -1, withscores=True) == [("a", 1.0), ("later", 2.0)]
    assert client.hget(names.event("a"), "st") == "pending"
    assert client.hget(names.event("a"), "g") == "west"
    assert client.hget(names.event("a"), "att") == "1"
    assert client.ttl(names.event("a")) == -1
    assert client.zscore(names.due, PLAN_DUE) == NOW + 9
    assert client.hget(names.stats, "buffered") == "2"


def test_record_unmerged_events_never_merge_again_and_missing_outcomes_come_back(
    store, client, names
):
    put(store, resource(eid="a"), resource(eid="b"))
    committed(store, events=("a", "b"))

    store.record(SOURCE, "B1", 1, [EventOutcomeRecord("a", "UNMERGED")], status="FAILURE",
                 now_ms=NOW)  # fmt: skip

    assert client.hget(names.event("a"), "nm") == "1"
    assert client.hget(names.event("b"), "fate") == "RETRY"
    assert client.zrange(names.ready, 0, -1) == ["a", "b"]


def test_record_sends_an_atomic_batch_back_whole_ahead_of_later_events(store, client, names):
    batch = [resource(eid="m1", atomicBatch="B"), resource(id_="p2", eid="m2", atomicBatch="B")]
    put(store, *batch)
    committed(store, events=("m1", "m2"), writes=(P1, "res:src-a:provider:p2"))
    put(store, resource(id_="p2", eid="n1", group="elsewhere"), now=NOW + 1)

    store.record(
        SOURCE, "B1", 1,
        [EventOutcomeRecord("m1", "CANCELLED"), EventOutcomeRecord("m2", "CANCELLED")],
        status="FAILURE", now_ms=NOW + 2,
    )  # fmt: skip

    assert client.zrange(names.ready, 0, -1) == ["m1", "m2", "n1"]
    # the next round reads the batch whole, though it is larger than the read limit
    round_ = store.read_ready(SOURCE, token="t", lease_ms=1000, limit=1, max_bytes=10_000)
    assert [e.event_id for e in round_.events] == ["m1", "m2"]
    assert round_.more


def test_unknown_keeps_sending_and_locks_and_brings_the_record_back_for_a_read_back(
    store, client, names
):
    put(store, resource(eid="a"))
    committed(store)
    store.mark_sending(SOURCE, "B1", 1, NOW + 5)

    assert store.mark_unknown(SOURCE, "B1", 1, read_at_ms=NOW + 50, error="timeout", now_ms=NOW)

    record = client.hgetall(names.bundle("B1"))
    assert (record["st"], record["rb"], record["err"], record["sat"]) == (
        "sending",
        "1",
        "timeout",
        str(NOW + 5),
    )
    assert client.zscore(names.claims, "B1") == NOW + 50
    assert client.hget(names.hold_writer, P1) == "B1"
    (claimed,) = store.claim(SOURCE, ["B1"], NOW + 50, "recover")
    assert (claimed.code, claimed.state, claimed.sending_at) == ("ok", "sending", NOW + 5)
    assert claimed.recoveries == 0  # a scheduled read-back is not a worker found gone
    assert store.mark_unknown(SOURCE, "B1", 1, read_at_ms=NOW, error="x", now_ms=NOW) is False


def test_unknown_is_refused_for_a_record_that_is_not_sending(store, names):
    put(store, resource(eid="a"))
    committed(store)
    assert store.mark_unknown(SOURCE, "B1", 1, read_at_ms=NOW, error="x", now_ms=NOW) is False


def test_claims_taken_over_from_a_gone_worker_are_counted_per_mode(store):
    put(store, resource(eid="a"))
    committed(store)  # claimed by the flushing worker until NOW + 3000
    counts = []
    at = NOW
    for _ in range(3):
        at += 3001  # the claimant never wrote again: its claim expired
        (claimed,) = store.claim(SOURCE, ["B1"], at, "recover")
        counts.append(claimed.recoveries)
    assert counts == [1, 2, 3]

    store.mark_sending(SOURCE, "B1", 4, at)
    store.mark_sent(
        SOURCE, "B1", 4, task_id="bd_1", issued_by="bundle", first_poll_ms=at, now_ms=at
    )
    (first,) = store.claim(SOURCE, ["B1"], at + 1, "poll")
    (again,) = store.claim(SOURCE, ["B1"], at + 3002, "poll")
    assert (first.recoveries, again.recoveries) == (0, 1)


def test_record_flags_events_sent_again_after_a_read_back(store, client, names):
    put(store, resource(eid="a"))
    put(store, resource(eid="b", id_="p2"))
    committed(store, events=("a", "b"), writes=(P1, "res:src-a:provider:p2"))

    store.record(
        SOURCE,
        "B1",
        1,
        [EventOutcomeRecord("a", "RETRY", resent=True), EventOutcomeRecord("b", "RETRY")],
        status="READ_BACK",
        now_ms=NOW,
    )

    assert store.resent_events(SOURCE, ["a", "b", "missing"]) == frozenset({"a"})
    assert client.hget(names.event("a"), "st") == "pending"


def test_waiting_bundle_is_neither_claimed_nor_recorded(store, client, names):
    put(store, resource(eid="a"), resource(eid="b"))
    commit_bundles(
        store,
        [bundle("B1", "a", writes=[P1]), bundle("B2", "b", writes=[P1], after=["B1"])],
        expect={"B1": "ready", "B2": "waiting"},
    )
    client.zadd(names.claims, {"B2": NOW})  # a stray entry (say, a renewal of a lost claim)

    (claimed,) = store.claim(SOURCE, ["B2"], NOW + 1, "recover")
    refused = store.record(
        SOURCE, "B2", 0, [EventOutcomeRecord("b", "APPLIED")], status="PERSISTED", now_ms=NOW
    )

    assert (claimed.code, claimed.fence, claimed.state) == ("wait", None, "waiting")
    assert client.zscore(names.claims, "B2") is None
    assert client.hmget(names.bundle("B2"), "st", "fence") == ["waiting", "0"]
    assert refused.done is False
    assert client.hget(names.event("b"), "st") == "in_flight"

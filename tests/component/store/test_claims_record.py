"""claim.lua, mark.lua and record.lua: claims with fencing tokens, state changes, outcomes."""

from __future__ import annotations

import json

from worker.store.records import BundleToReserve, EventOutcomeRecord, GroupDue

from .conftest import NOW, SOURCE, letters, link, put, resource

P1 = "res:src-a:provider:p1"
O1 = "res:src-a:office:o1"
REL = "rel:src-a:provider-office:office:o1:provider:p1"


def reserved(store, bid="B1", events=("a",), writes=(P1,), reads=(), groups=("provider:p1",)):
    result = store.reserve(
        SOURCE,
        bundles=[BundleToReserve(bid, tuple(events), writes, reads, '{"r":[],"l":[]}', groups)],
        rejected=[],
        groups=[GroupDue(g, "wait") for g in groups],
        snapshot_seq=1000,
        now_ms=NOW,
    )
    assert result == {bid: "taken"}


def test_claim_of_a_live_claim_is_busy_and_of_an_expired_one_takes_a_new_fence(
    store, client, names
):
    put(store, resource(eid="a"))
    reserved(store)

    (busy,) = store.claim(SOURCE, ["B1"], NOW + 10, "recover")
    (taken,) = store.claim(SOURCE, ["B1"], NOW + 3001, "recover")

    assert busy.code == "busy"
    assert (taken.code, taken.fence, taken.state) == ("ok", 2, "planned")
    assert taken.event_ids == ("a",)
    assert client.zscore(names.claims, "B1") == NOW + 3001 + 3000


def test_write_with_a_stale_fence_is_refused(store, client, names):
    put(store, resource(eid="a"))
    reserved(store)
    store.claim(SOURCE, ["B1"], NOW + 3001, "recover")  # another worker took it over: fence 2

    assert store.mark_sending(SOURCE, "B1", 1, NOW + 3002) is False
    refused = store.record(
        SOURCE, "B1", 1, [EventOutcomeRecord("a", "APPLIED")], status="PERSISTED", now_ms=NOW
    )
    assert refused.done is False
    assert client.hget(names.bundle("B1"), "st") == "planned"
    assert client.hget(names.event("a"), "st") == "in_flight"
    assert store.mark_sending(SOURCE, "B1", 2, NOW + 3002) is True


def test_mark_moves_sending_to_sent_and_schedules_the_first_poll(store, client, names):
    put(store, resource(eid="a"))
    reserved(store)
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
    reserved(store)
    store.mark_sending(SOURCE, "B1", 1, NOW)

    assert store.release(SOURCE, "B1", 1, retry_at_ms=NOW + 500, error="429", now_ms=NOW)

    assert client.hget(names.bundle("B1"), "st") == "planned"
    assert client.zscore(names.claims, "B1") == NOW + 500
    (claimed,) = store.claim(SOURCE, ["B1"], NOW + 1, "recover")
    assert claimed.code == "ok"  # a released record has no live claim


def test_park_takes_the_record_out_of_every_schedule_and_keeps_its_locks(store, client, names):
    put(store, resource(eid="a"))
    reserved(store)
    store.mark_sending(SOURCE, "B1", 1, NOW)

    assert store.park(SOURCE, "B1", 1, error="outcome unknown", now_ms=NOW)

    assert client.zscore(names.claims, "B1") is None
    assert client.zscore(names.parked, "B1") == NOW
    assert client.hget(names.xlock, P1) == "B1"
    assert client.hget(names.stats, "parked") == "1"
    assert client.hget(names.bundle("B1"), "st") == "sending"


def test_poll_claim_is_one_poller_at_a_time_and_repoll_marks_stale(store, client, names):
    put(store, resource(eid="a"))
    reserved(store)
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
    reserved(store, events=("a", "b"), writes=(P1, "res:src-a:provider:p2"),
             groups=("provider:p1", "provider:p2"))  # fmt: skip
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
    assert client.hgetall(names.xlock) == {}
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
    reserved(store, events=("a",), groups=("west",))
    put(store, resource(eid="later", group="east"), now=NOW + 1)  # entity free: named group

    result = store.record(
        SOURCE, "B1", 1, [EventOutcomeRecord("a", "CANCELLED")], status="PERSISTED",
        now_ms=NOW + 9,
    )  # fmt: skip

    assert result.rebuffered == 1
    # it joins the buffer that holds its entity now, ahead of the later event
    assert client.zrange(names.buffer("east"), 0, -1, withscores=True) == [
        ("a", 1.0),
        ("later", 2.0),
    ]
    assert client.hget(names.event("a"), "st") == "pending"
    assert client.hget(names.event("a"), "att") == "1"
    assert client.ttl(names.event("a")) == -1
    assert client.zscore(names.due, "east") == NOW + 9
    assert client.hget(names.stats, "buffered") == "2"


def test_record_unmerged_events_never_merge_again_and_missing_outcomes_come_back(
    store, client, names
):
    put(store, resource(eid="a"), resource(eid="b"))
    reserved(store, events=("a", "b"))

    store.record(SOURCE, "B1", 1, [EventOutcomeRecord("a", "UNMERGED")], status="FAILURE",
                 now_ms=NOW)  # fmt: skip

    assert client.hget(names.event("a"), "nm") == "1"
    assert client.hget(names.event("b"), "fate") == "RETRY"
    assert client.zrange(names.buffer("provider:p1"), 0, -1) == ["a", "b"]


def test_record_wakes_the_groups_waiting_for_the_bundle(store, client, names):
    put(store, resource(eid="a"), link(eid="b", group="links"))
    reserved(store, events=("a",))
    store.reserve(
        SOURCE,
        bundles=[],
        rejected=[],
        groups=[GroupDue("links", "wait", ("B1",))],
        snapshot_seq=1000,
        now_ms=NOW,
    )
    assert client.smembers(names.waiting("B1")) == {"links"}

    store.record(SOURCE, "B1", 1, [EventOutcomeRecord("a", "APPLIED")], status="PERSISTED",
                 now_ms=NOW + 3)  # fmt: skip

    assert client.zscore(names.due, "links") == NOW + 3
    assert not client.exists(names.waiting("B1"))


def test_record_keeps_an_atomic_batch_together_when_it_comes_back(store, client, names):
    batch = [resource(eid="m1", atomicBatch="B"), resource(id_="p2", eid="m2", atomicBatch="B")]
    put(store, *batch)
    reserved(store, events=("m1", "m2"), writes=(P1, "res:src-a:provider:p2"))
    put(store, resource(id_="p2", eid="n1", group="elsewhere"), now=NOW + 1)

    store.record(
        SOURCE, "B1", 1,
        [EventOutcomeRecord("m1", "CANCELLED"), EventOutcomeRecord("m2", "CANCELLED")],
        status="FAILURE", now_ms=NOW + 2,
    )  # fmt: skip

    assert client.hget(names.event("m1"), "g") == client.hget(names.event("m2"), "g")


def test_unknown_keeps_sending_and_locks_and_brings_the_record_back_for_a_read_back(
    store, client, names
):
    put(store, resource(eid="a"))
    reserved(store)
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
    assert client.hget(names.xlock, P1) == "B1"
    (claimed,) = store.claim(SOURCE, ["B1"], NOW + 50, "recover")
    assert (claimed.code, claimed.state, claimed.sending_at) == ("ok", "sending", NOW + 5)
    assert claimed.recoveries == 0  # a scheduled read-back is not a worker found gone
    assert store.mark_unknown(SOURCE, "B1", 1, read_at_ms=NOW, error="x", now_ms=NOW) is False


def test_unknown_is_refused_for_a_record_that_is_not_sending(store, names):
    put(store, resource(eid="a"))
    reserved(store)
    assert store.mark_unknown(SOURCE, "B1", 1, read_at_ms=NOW, error="x", now_ms=NOW) is False


def test_claims_taken_over_from_a_gone_worker_are_counted_per_mode(store):
    put(store, resource(eid="a"))
    reserved(store)  # claimed by the flushing worker until NOW + 3000
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
    reserved(store, events=("a", "b"), writes=(P1, "res:src-a:provider:p2"))

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

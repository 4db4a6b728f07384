"""A record in calls of bounded size: settle.lua settles final outcomes a chunk per call,
record.lua (the last call) does the rest, release.lua releases the holds of a large bundle after
it. Each call is final: a crash between calls, then a record done again under recovery's claim,
counts, dead-letters and sends nothing twice."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import redis

from worker.store import Store
from worker.store.recording import record_calls
from worker.store.records import EventOutcomeRecord

from .conftest import (
    NOW,
    SOURCE,
    bundle,
    commit_bundles,
    fast_settings,
    letters,
    link,
    put,
    resource,
)

EVENTS = ("a", "b", "c", "d", "e", "f", "g")
KEYS = tuple(f"res:src-a:provider:p{i}" for i in range(1, 8))
OFFICE = "res:src-a:office:o1"
REL = "rel:src-a:provider-office:office:o1:provider:p1"
ERROR = json.dumps({"type": "INVALID", "message": "bad"})


@pytest.fixture
def chunked(client: redis.Redis) -> Store:
    """Two events per call, four held keys per call."""
    return Store(client, fast_settings(record_chunk=2, max_bundle_ops=10))


class Calls:
    """The script calls a store makes, by script."""

    def __init__(self, store: Store) -> None:
        self.names: list[str] = []
        by_sha = {getattr(store._scripts, n).sha: n for n in ("settle", "record", "release")}
        run = store._run

        def spy(script: Any, source: str, *args: str) -> Any:
            self.names.append(by_sha.get(script.sha, "other"))
            return run(script, source, *args)

        store._run = spy  # type: ignore[method-assign]


def seven_events(store: Store) -> None:
    """B1 committed ready (claimed, fence 1): seven UPSERTs of seven providers."""
    put(store, *(resource(id_=f"p{i}", eid=eid) for i, eid in enumerate(EVENTS, start=1)))
    commit_bundles(store, [bundle("B1", *EVENTS, writes=KEYS)])


def applied(*event_ids: str) -> list[EventOutcomeRecord]:
    return [EventOutcomeRecord(e, "APPLIED") for e in event_ids]


def stats(client: redis.Redis, names: Any) -> dict[str, str]:
    return dict(client.hgetall(names.stats))  # type: ignore[arg-type]


class CrashError(Exception):
    """The worker dies between two calls of a record."""


@pytest.fixture
def crash_before_record(chunked: Store) -> Callable[[], None]:
    """Arms a crash: the next record stops after its settle.lua calls (record.lua never runs)."""
    run = chunked._run
    record_sha = chunked._scripts.record.sha
    armed: list[bool] = []

    def dying(script: Any, source: str, *args: str) -> Any:
        if script.sha == record_sha and armed:
            armed.clear()
            raise CrashError
        return run(script, source, *args)

    chunked._run = dying  # type: ignore[method-assign]
    return lambda: armed.append(True)


# -- cutting -------------------------------------------------------------------------------------


def test_outcomes_are_cut_with_dead_letters_weighing_more_and_finals_in_order() -> None:
    outcomes = [
        EventOutcomeRecord("a", "APPLIED"),
        EventOutcomeRecord("b", "CANCELLED"),
        EventOutcomeRecord("c", "FAILED"),
        EventOutcomeRecord("d", "COALESCED"),
        EventOutcomeRecord("e", "APPLIED"),
        EventOutcomeRecord("f", "APPLIED"),
    ]

    calls, last = record_calls(outcomes, 3)

    assert [[o.event_id for o in c] for c in calls] == [["a"], ["c"], ["d"]]
    assert [o.event_id for o in last] == ["e", "f", "b"]  # two finals fit beside one other
    one, only = record_calls(outcomes, 100)
    assert (one, [o.event_id for o in only]) == ([], ["a", "c", "d", "e", "f", "b"])


def test_a_record_with_more_others_than_a_call_holds_settles_every_final_first() -> None:
    outcomes = [EventOutcomeRecord("a", "APPLIED")] + [
        EventOutcomeRecord(e, "CANCELLED") for e in "bcd"
    ]

    calls, last = record_calls(outcomes, 2)

    assert [[o.event_id for o in c] for c in calls] == [["a"]]
    assert [o.event_id for o in last] == ["b", "c", "d"]  # what is sent again cannot be cut


# -- a whole record in calls ---------------------------------------------------------------------


def test_a_large_record_is_settled_in_calls_and_counts_as_one(chunked, client, names):
    seven_events(chunked)
    calls = Calls(chunked)

    result = chunked.record(SOURCE, "B1", 1, applied(*EVENTS), status="PERSISTED", now_ms=NOW)

    # 5 finals in calls of 2 (the last 2 with record.lua), then 7 keys released 4 at a time
    assert calls.names == ["settle", "settle", "settle", "record", "release", "release"]
    assert (result.done, result.finals, result.rebuffered, result.dead_letters) == (True, 7, 0, 0)
    assert {client.hget(names.event(e), "st") for e in EVENTS} == {"applied"}
    assert all(0 < client.ttl(names.event(e)) <= 3600 for e in EVENTS)
    assert client.hmget(names.bundle("B1"), "st", "finals") == ["recorded", "7"]
    assert stats(client, names)["inflight"] == "0"
    assert stats(client, names)["bundles"] == "0"
    assert client.hlen(names.hold_writer) == 0


def test_a_failed_event_in_an_early_call_is_dead_lettered_once(chunked, client, names):
    seven_events(chunked)
    outcomes = [*applied("a"), EventOutcomeRecord("b", "FAILED", error=ERROR)]
    outcomes += applied("c", "d", "e", "f", "g")

    result = chunked.record(SOURCE, "B1", 1, outcomes, status="PERSISTED", now_ms=NOW)

    assert (result.finals, result.dead_letters) == (7, 1)
    assert [d["eventId"] for d in letters(client, names.dlq)] == ["b"]
    assert client.hmget(names.event("b"), "st", "stage") == ["dead_lettered", "record"]
    assert stats(client, names)["inflight"] == "0"


def test_a_refused_call_stops_the_record_and_a_later_claim_finishes_it(chunked, client, names):
    seven_events(chunked)
    chunked.claim(SOURCE, ["B1"], NOW + 3001, "recover")  # fence 2: B1's first claim is lost

    lost = chunked.record(SOURCE, "B1", 1, applied(*EVENTS), status="PERSISTED", now_ms=NOW)

    assert lost.done is False
    assert {client.hget(names.event(e), "st") for e in EVENTS} == {"in_flight"}
    done = chunked.record(SOURCE, "B1", 2, applied(*EVENTS), status="PERSISTED", now_ms=NOW)
    assert (done.done, done.finals) == (True, 7)


# -- a crash between calls, then recovery ------------------------------------------------------


def test_a_crash_between_calls_then_a_record_again_counts_and_letters_once(
    chunked, client, names, crash_before_record
):
    seven_events(chunked)
    crash_before_record()
    first = [*applied("a"), EventOutcomeRecord("b", "FAILED", error=ERROR)]
    first += applied("c", "d") + [EventOutcomeRecord(e, "CANCELLED") for e in "efg"]
    with pytest.raises(CrashError):
        chunked.record(SOURCE, "B1", 1, first, status="PERSISTED", now_ms=NOW)

    # the calls before the crash are final: a, b, c, d settled, counted out of flight
    assert [client.hget(names.event(e), "st") for e in "abcd"] == [
        "applied",
        "dead_lettered",
        "applied",
        "applied",
    ]
    assert client.hget(names.bundle("B1"), "st") == "planned"  # not recorded: its holds kept
    assert client.hget(names.hold_writer, KEYS[0]) == "B1"
    assert stats(client, names)["inflight"] == "3"
    assert len(letters(client, names.dlq)) == 1
    # planning again what is sent again leaves the settled events out
    again = chunked.read_events(SOURCE, list(EVENTS), in_flight_in="B1")
    assert [e.event_id for e in again] == ["e", "f", "g"]

    # recovery claims it (fence 2); its read-back finds nothing applied: all RETRY
    chunked.claim(SOURCE, ["B1"], NOW + 3001, "recover")
    retried = [EventOutcomeRecord(e, "RETRY", resent=True) for e in EVENTS]
    result = chunked.record(SOURCE, "B1", 2, retried, status="READ_BACK", now_ms=NOW + 3002)

    assert result.done
    assert (result.finals, result.dead_letters, result.rebuffered) == (4, 1, 3)
    assert [client.hget(names.event(e), "st") for e in EVENTS] == [
        "applied",
        "dead_lettered",
        "applied",
        "applied",
        "pending",
        "pending",
        "pending",
    ]
    assert client.zrange(names.ready, 0, -1) == ["e", "f", "g"]
    assert len(letters(client, names.dlq)) == 1
    counters = stats(client, names)
    assert (counters["inflight"], counters["bundles"], counters["buffered"]) == ("0", "0", "3")
    assert client.hget(names.bundle("B1"), "finals") == "4"


def test_a_parked_bundle_recorded_after_a_crash_keeps_its_counters_exact(
    chunked, client, names, crash_before_record
):
    seven_events(chunked)
    crash_before_record()
    with pytest.raises(CrashError):
        chunked.record(SOURCE, "B1", 1, applied(*EVENTS), status="PERSISTED", now_ms=NOW)
    assert stats(client, names)["inflight"] == "2"  # five settled before the crash

    assert chunked.park(SOURCE, "B1", 1, error="trouble", now_ms=NOW)
    assert chunked.counters([SOURCE], NOW)[SOURCE].parked_events == 2
    assert chunked.counters([SOURCE], NOW)[SOURCE].in_flight == 0

    crash_before_record()
    with pytest.raises(
        CrashError
    ):  # an operator's abandon, cut again: nothing left to settle early
        chunked.record(SOURCE, "B1", 1, applied(*EVENTS), status="ABANDONED", now_ms=NOW)
    counters = chunked.counters([SOURCE], NOW)[SOURCE]
    assert (counters.in_flight, counters.parked_events) == (0, 2)

    # the operator tries again; nothing dies this time
    result = chunked.record(SOURCE, "B1", 1, applied(*EVENTS), status="ABANDONED", now_ms=NOW)
    assert (result.done, result.finals) == (True, 7)
    counters = chunked.counters([SOURCE], NOW)[SOURCE]
    assert (counters.in_flight, counters.parked_events, counters.parked) == (0, 0, 0)
    assert stats(client, names)["inflight"] == "0"


def test_a_parked_bundle_settled_in_calls_leaves_no_parked_events(chunked, client, names):
    seven_events(chunked)
    assert chunked.park(SOURCE, "B1", 1, error="trouble", now_ms=NOW)
    outcomes = [EventOutcomeRecord(e, "FAILED", error=ERROR, reason="PARKED") for e in EVENTS]

    result = chunked.record(SOURCE, "B1", 1, outcomes, status="ABANDONED", now_ms=NOW)

    assert (result.finals, result.dead_letters) == (7, 7)
    counters = stats(client, names)
    assert (counters["inflight"], counters["pev"], counters["parked"]) == ("0", "0", "0")


# -- holds released after the record -------------------------------------------------------------


def test_holds_left_over_by_a_recorded_bundle_delay_nothing(chunked, client, names):
    seven_events(chunked)
    release = chunked._scripts.release
    chunked._release_holds = lambda *args: None

    chunked.record(SOURCE, "B1", 1, applied(*EVENTS), status="PERSISTED", now_ms=NOW)

    assert client.hget(names.hold_writer, KEYS[0]) == "B1"  # left over (the release never ran)
    put(chunked, resource(id_="p1", eid="h"))
    assert commit_bundles(chunked, [bundle("B2", "h", writes=[KEYS[0]])]) == {"B2": ("ready", 1)}
    assert client.hget(names.hold_writer, KEYS[0]) == "B2"
    # what is left over is released later by the same script, and only what B1 still holds
    for start in (1, 5):
        meta = json.dumps({"id": "B1", "fence": 1, "from": start, "n": 4})
        chunked._run(release, SOURCE, meta)
    assert client.hget(names.hold_writer, KEYS[0]) == "B2"
    assert client.hlen(names.hold_writer) == 1


def test_a_replacement_takes_over_a_key_a_recorded_bundle_still_holds(chunked, client, names):
    seven_events(chunked)
    chunked._release_holds = lambda *args: None
    chunked.record(SOURCE, "B1", 1, applied(*EVENTS), status="PERSISTED", now_ms=NOW)
    put(chunked, link(provider="p1", eid="l"))
    commit_bundles(chunked, [bundle("B2", "l", writes=[REL], reads=[OFFICE, KEYS[0]])])

    # B2's link is cancelled and planned again: R1 references p1, whose hold B1 left over
    replacement = bundle("R1", "l", writes=[REL], reads=[OFFICE, KEYS[0]], claim=False)
    chunked.record(
        SOURCE,
        "B2",
        1,
        [EventOutcomeRecord("l", "CANCELLED")],
        status="PERSISTED",
        now_ms=NOW,
        replan=[replacement],
    )

    assert client.smembers(names.hold_readers(KEYS[0])) == {"R1"}
    put(chunked, resource("DELETE", id_="p1", eid="z"))  # must not overtake R1's link
    assert commit_bundles(
        chunked, [bundle("B3", "z", writes=[KEYS[0]])], expect={"B3": "waiting"}
    ) == {"B3": ("waiting", 0)}
    assert client.smembers(names.dependents("R1")) == {"B3"}


def test_a_redis_error_while_releasing_holds_leaves_the_record_done(chunked, client, names):
    seven_events(chunked)
    run = chunked._run
    release_sha = chunked._scripts.release.sha

    def refusing(script: Any, source: str, *args: str) -> Any:
        if script.sha == release_sha:
            raise redis.exceptions.ConnectionError("gone for a moment")
        return run(script, source, *args)

    chunked._run = refusing

    result = chunked.record(SOURCE, "B1", 1, applied(*EVENTS), status="PERSISTED", now_ms=NOW)

    assert (result.done, result.finals) == (True, 7)
    assert client.hget(names.bundle("B1"), "st") == "recorded"
    assert client.hget(names.hold_writer, KEYS[0]) == "B1"  # left over, delaying nothing


def test_a_bundle_parked_before_pv_was_kept_still_leaves_no_parked_events(chunked, client, names):
    seven_events(chunked)
    assert chunked.park(SOURCE, "B1", 1, error="trouble", now_ms=NOW)
    client.hdel(names.bundle("B1"), "pv")  # parked by a version that did not keep it

    result = chunked.record(SOURCE, "B1", 1, applied(*EVENTS), status="ABANDONED", now_ms=NOW)

    assert (result.done, result.finals) == (True, 7)
    counters = stats(client, names)
    assert (counters["inflight"], counters["pev"], counters["parked"]) == ("0", "0", "0")

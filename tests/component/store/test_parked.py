"""Parked bundles on the scripts: counted (bundles, their events, the events blocked behind them),
and released by an operator's retry or abandon through the one record step (record.lua)."""

from __future__ import annotations

import json

import pytest

from worker.abandon import PARKED, list_parked, resolve_parked
from worker.store.records import BlockedEvent

from .conftest import NOW, SOURCE, bundle, commit_bundles, letters, put, resource

P1 = "res:src-a:provider:p1"
P2 = "res:src-a:provider:p2"


@pytest.fixture
def parked(store, client, names) -> str:
    """B1 (events a, c on p1, p2) sent and parked; b, a later event on p1, blocked behind it."""
    put(store, resource(eid="a"), resource(id_="p2", eid="c"))
    commit_bundles(store, [bundle("B1", "a", "c", writes=(P1, P2))])
    assert store.mark_sending(SOURCE, "B1", 1, NOW)
    assert store.park(SOURCE, "B1", 1, error="refused as a whole (501)", now_ms=NOW)
    put(store, resource(eid="b"), now=NOW + 1)
    round_ = store.read_ready(SOURCE, token="p", lease_ms=10_000, limit=100, max_bytes=10**7)
    store.commit(
        SOURCE, round_, bundles=[], rejected=[], now_ms=NOW + 2,
        blocked=[BlockedEvent("b", "B1")],
    )  # fmt: skip
    assert client.zrange(names.ready, 0, -1) == []
    return "B1"


def test_parked_bundle_its_events_and_what_waits_behind_it_are_counted(
    store, client, names, parked
):
    stats = client.hgetall(names.stats)

    assert (stats["parked"], stats["pev"], stats["blocked"], stats["inflight"]) == (
        "1",
        "2",
        "1",
        "2",
    )
    counters = store.counters([SOURCE], NOW)[SOURCE]
    assert (counters.parked, counters.parked_events, counters.blocked) == (1, 2, 1)
    assert counters.in_flight == 0  # the parked events are counted apart


def test_parked_list_pages_and_says_what_is_behind(store, client, names, parked):
    page = list_parked(store, limit=10)

    assert [(p.source, p.bundle_id, p.state, p.events, p.blocked) for p in page.items] == [
        (SOURCE, "B1", "sending", 2, 1)
    ]
    assert page.items[0].error == "refused as a whole (501)"
    assert page.items[0].parked_at_ms == NOW
    assert list_parked(store, limit=10, offset=1).items == ()
    assert list_parked(store, sources=["other"], limit=10).items == ()


def test_parked_retry_puts_its_events_back_first_then_what_was_blocked(
    store, client, names, parked
):
    dry = resolve_parked(store, parked, "retry", dry_run=True, now_ms=NOW + 10)
    assert (dry.code, dry.events) == ("would-retry", 2)
    assert client.zrange(names.parked, 0, -1) == [parked]

    result = resolve_parked(store, parked, "retry", now_ms=NOW + 10)

    assert (result.code, result.events, result.dead_letters) == ("retried", 2, 0)
    assert client.zrange(names.ready, 0, -1) == ["a", "c", "b"]  # publish order
    assert client.hget(names.event("a"), "st") == "pending"
    assert client.hget(names.event("a"), "amb") == "1"  # a resend may meet ALREADY_EXISTS
    assert client.hgetall(names.hold_writer) == {}
    assert client.hgetall(names.slow_keys) == {}
    assert client.zrange(names.parked, 0, -1) == []
    stats = client.hgetall(names.stats)
    assert (stats["parked"], stats["pev"], stats["blocked"], stats["inflight"]) == (
        "0",
        "0",
        "0",
        "0",
    )
    assert stats["buffered"] == "3"
    assert client.zscore(names.due, "*") == NOW + 10
    assert resolve_parked(store, parked, "retry", now_ms=NOW + 11).code == "unknown"


def test_parked_abandon_dead_letters_its_events_and_lets_the_blocked_one_go(
    store, client, names, parked
):
    result = resolve_parked(store, parked, "abandon", now_ms=NOW + 10)

    assert (result.code, result.events, result.dead_letters) == ("abandoned", 2, 2)
    assert client.zrange(names.ready, 0, -1) == ["b"]
    entries = letters(client, names.dlq)
    assert [(e["eventId"], e["reason"]) for e in entries] == [("a", PARKED), ("c", PARKED)]
    error = json.loads(entries[0]["error"])
    assert error["type"] == PARKED
    assert "refused as a whole (501)" in error["message"]
    assert client.hgetall(names.hold_writer) == {}
    assert client.hget(names.stats, "pev") == "0"


def test_parked_retry_refuses_a_record_that_is_not_parked(store, client, names):
    put(store, resource(eid="a"))
    commit_bundles(store, [bundle("B1", "a", writes=(P1,))])

    result = resolve_parked(store, "B1", "retry", now_ms=NOW)

    assert result.code == "not-parked"
    assert client.hget(names.bundle("B1"), "st") == "planned"
    assert resolve_parked(store, "nope", "abandon", now_ms=NOW).code == "unknown"


def test_parked_sent_record_is_retried_under_a_poll_claim(store, client, names):
    put(store, resource(eid="a"))
    commit_bundles(store, [bundle("B1", "a", writes=(P1,))])
    store.mark_sending(SOURCE, "B1", 1, NOW)
    store.mark_sent(SOURCE, "B1", 1, task_id="bd_1", issued_by="bundle", first_poll_ms=NOW,
                    now_ms=NOW)  # fmt: skip
    (claimed,) = store.claim(SOURCE, ["B1"], NOW + 1, "poll")
    assert store.park(SOURCE, "B1", claimed.fence or 0, error="receipts", now_ms=NOW + 2)

    result = resolve_parked(store, "bd_1", "retry", now_ms=NOW + 3)

    assert (result.code, result.bundle_id, result.task_id) == ("retried", "B1", "bd_1")
    assert client.zscore(names.polls, "B1") is None
    assert client.zrange(names.ready, 0, -1) == ["a"]

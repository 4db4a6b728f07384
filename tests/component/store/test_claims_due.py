"""claim.lua and take_due.lua together: a claim only takes an entry that is due, a death is
counted only for a claim that expired, and the ticker hands an unhandled entry out again with a
growing lease."""

from __future__ import annotations

import itertools

from worker.store import Store

from .conftest import NOW, SOURCE, bundle, commit_bundles, fast_settings, put, resource

P1 = "res:src-a:provider:p1"
TTL = 3000
"""`claim_ttl_ms` of the component settings."""
LEASE = 500
"""`due_lease_ms` of the component settings."""


def sent_record(store, *, first_poll_ms: int = NOW + 20) -> None:
    """B1 committed, sent and ACCEPTED as task bd_1 at NOW; its first poll at `first_poll_ms`."""
    put(store, resource(eid="a"))
    commit_bundles(store, [bundle("B1", "a", writes=[P1])])
    assert store.mark_sending(SOURCE, "B1", 1, NOW)
    assert store.mark_sent(
        SOURCE, "B1", 1, task_id="bd_1", issued_by="bundle", first_poll_ms=first_poll_ms,
        now_ms=NOW,
    )  # fmt: skip


def repoll(store, fence: int, at: int, now: int) -> None:
    item = {"op": "repoll", "id": "B1", "fence": fence, "at": at, "stale": False,
            "status": "PENDING"}  # fmt: skip
    assert store.mark(SOURCE, [item], now) == [True]


# -- a claim takes only an entry that is due ----------------------------------------------------


def test_poll_message_before_the_next_poll_is_due_does_nothing(store, client, names):
    sent_record(store, first_poll_ms=NOW + 20)

    (early,) = store.claim(SOURCE, ["B1"], NOW + 10, "poll")

    assert (early.code, early.fence) == ("early", None)
    assert client.hget(names.bundle("B1"), "fence") == "1"
    assert client.zscore(names.polls, "B1") == NOW + 20
    assert client.hget(names.stats, "early") == "1"
    (due,) = store.claim(SOURCE, ["B1"], NOW + 20, "poll")
    assert (due.code, due.fence) == ("ok", 2)


def test_recover_message_before_the_retry_time_does_not_resubmit(store, client, names):
    put(store, resource(eid="a"))
    commit_bundles(store, [bundle("B1", "a", writes=[P1])])
    assert store.release(SOURCE, "B1", 1, retry_at_ms=NOW + 400, error="429", now_ms=NOW)

    (early,) = store.claim(SOURCE, ["B1"], NOW + 100, "recover")
    (due,) = store.claim(SOURCE, ["B1"], NOW + 400, "recover")

    assert early.code == "early"
    assert (due.code, due.fence, due.state) == ("ok", 2, "planned")


def test_repeated_poll_message_after_the_poll_was_done_does_nothing(store, client, names):
    sent_record(store)
    [taken] = store.take_due([SOURCE], NOW + 20, groups=0, polls=10, claims=0).values()
    assert taken.polls == ("B1",)  # re-scored to NOW + 20 + lease, handed out once

    (first,) = store.claim(SOURCE, ["B1"], NOW + 30, "poll")  # the message: due, as taken
    (while_polling,) = store.claim(SOURCE, ["B1"], NOW + 31, "poll")  # a copy of it
    assert first.fence is not None
    repoll(store, first.fence, at=NOW + 5000, now=NOW + 40)
    (after,) = store.claim(SOURCE, ["B1"], NOW + 50, "poll")  # another copy, handled late

    assert (first.code, while_polling.code, after.code) == ("ok", "busy", "early")
    assert client.zscore(names.polls, "B1") == NOW + 5000
    assert client.hget(names.bundle("B1"), "fence") == str(first.fence)


def test_claim_any_time_takes_an_entry_not_yet_due(store):
    sent_record(store, first_poll_ms=NOW + 60_000)

    (claimed,) = store.claim(SOURCE, ["B1"], NOW + 1, "poll", due_only=False)

    assert (claimed.code, claimed.fence) == ("ok", 2)


# -- a death is counted only for a claim that expired, and only deaths in a row ----------------


def test_poll_that_found_the_task_running_never_counts_and_restarts_the_count(store):
    sent_record(store, first_poll_ms=NOW)
    counts = []
    at = NOW
    for _ in range(2):  # two pollers died in a row holding it
        (claimed,) = store.claim(SOURCE, ["B1"], at, "poll")
        counts.append(claimed.recoveries)
        at += TTL + 1
    (third,) = store.claim(SOURCE, ["B1"], at, "poll")  # this one polls: still running
    counts.append(third.recoveries)
    assert third.fence is not None
    repoll(store, third.fence, at=at + 100, now=at + 10)
    (next_poll,) = store.claim(SOURCE, ["B1"], at + 100, "poll")
    counts.append(next_poll.recoveries)

    assert counts == [0, 1, 2, 0]


def test_bundle_released_by_its_worker_restarts_the_count(store):
    put(store, resource(eid="a"))
    commit_bundles(store, [bundle("B1", "a", writes=[P1])])  # claimed by its planner
    (taken,) = store.claim(SOURCE, ["B1"], NOW + TTL + 1, "recover")  # the planner died
    assert taken.fence is not None
    assert store.release(
        SOURCE, "B1", taken.fence, retry_at_ms=NOW + TTL + 10, error="429", now_ms=NOW + TTL + 5
    )

    (again,) = store.claim(SOURCE, ["B1"], NOW + TTL + 10, "recover")

    assert (taken.recoveries, again.recoveries) == (1, 0)


# -- the ticker hands out an entry it already handed out only after a growing lease -------------


def test_take_due_hands_an_unhandled_entry_out_again_after_a_doubling_lease(client, names):
    store = Store(client, fast_settings(due_lease_cap_ms=4 * LEASE))
    sent_record(store, first_poll_ms=NOW)
    handed_at: list[int] = []
    at = NOW
    while len(handed_at) < 5:
        if store.take_due([SOURCE], at, groups=0, polls=10, claims=0)[SOURCE].polls:
            handed_at.append(at)
        at += 50

    gaps = [b - a for a, b in itertools.pairwise(handed_at)]
    assert gaps == [LEASE, 2 * LEASE, 4 * LEASE, 4 * LEASE]  # the message may be lost: capped
    assert client.hget(names.stats, "rehanded") == "4"

    # once a poller handled it, the next time it is due is a first hand-out again
    (claimed,) = store.claim(SOURCE, ["B1"], at, "poll")
    assert claimed.fence is not None
    repoll(store, claimed.fence, at=at + 10, now=at + 1)
    store.take_due([SOURCE], at + 10, groups=0, polls=10, claims=0)
    assert client.zscore(names.polls, "B1") == at + 10 + LEASE


def test_take_due_leases_planning_the_same_way(client, names):
    store = Store(client, fast_settings(due_lease_cap_ms=4 * LEASE))
    put(store, resource(eid="a"))
    first = store.take_due([SOURCE], NOW + 10_000, groups=10, polls=0, claims=0)[SOURCE]
    again = store.take_due([SOURCE], NOW + 10_000 + LEASE, groups=10, polls=0, claims=0)[SOURCE]

    assert first.groups == again.groups == ("*",)
    assert client.zscore(names.due, "*") == NOW + 10_000 + 3 * LEASE

"""The production scheduler under an adversary (invariants 3, 4 and 12).

Streams over a few hot entities, with groups that change over time, relationships to a few
offices, atomic batches and events that fail on their own, are published in cut calls and driven
through the real scripts (see `scheduler.py`) with a read limit of a few events, so that rounds
follow each other while earlier bundles are still unsent and the bundles of a round wait for
those of earlier ones. The adversary interleaves publishing, planning and sending, and sends any
ready bundle first. Whatever it does:

- the Registry ends as one-by-one application leaves it, and every event gets its one-by-one
  outcome (or the documented SUPERSEDE exception);
- progress: a planning round plans every event it read (none is held back to be read again), so
  the ready log empties in a bounded number of rounds, and once nothing is left to publish the
  work ends within a bounded number of steps;
- each event is read about once: reads beyond one per event come only from events sent back.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.property.cases import Case, cases
from tests.property.compare import assert_same_outcomes
from tests.property.oracle import one_by_one, registry_with
from tests.property.scheduler import (
    FakeRegistry,
    Scheduler,
    behind_parked,
    calls_of,
    make_scheduler,
    settings_for,
)
from tests.redis_server import RedisServer
from worker.domain.coalesce import CoalesceMode
from worker.domain.events import ChangeEvent

pytestmark = pytest.mark.integration

MODES = st.sampled_from([CoalesceMode.SUPERSEDE, CoalesceMode.STRICT])


@pytest.fixture(scope="module")
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_server.url, decode_responses=True)
    yield connection
    connection.close()


def start(
    client: redis.Redis,
    url: str,
    case: Case,
    mode: CoalesceMode,
    read_limit: int,
    cuts: list[bool],
) -> tuple[Scheduler, FakeRegistry, list[list[ChangeEvent]]]:
    """An empty Redis, the scheduler over a Registry holding the case's start, and the calls."""
    client.flushall()
    registry = FakeRegistry(registry_with(case.scenario.start))
    scheduler = make_scheduler(client, settings_for(case.caps, mode, read_limit, url), registry)
    return scheduler, registry, calls_of(case.scenario.events, cuts)


@settings(max_examples=120)
@given(
    case=cases(min_steps=3),
    mode=MODES,
    read_limit=st.integers(1, 6),
    cuts=st.lists(st.booleans(), max_size=40),
    data=st.data(),
)
def test_scheduler_under_an_adversary_matches_one_by_one_and_makes_progress(
    client: redis.Redis,
    redis_server: RedisServer,
    case: Case,
    mode: CoalesceMode,
    read_limit: int,
    cuts: list[bool],
    data: st.DataObject,
) -> None:
    scenario = case.scenario
    scheduler, registry, calls = start(client, redis_server.url, case, mode, read_limit, cuts)
    events = len(scenario.events)

    # The adversary interleaves publishing, planning (with or without sending) and sending.
    steps = 0
    while calls or scheduler.pending() or scheduler.ready():
        steps += 1
        assert steps <= 8 * events + 40, "no progress"
        moves = []
        if calls:
            moves.append("publish")
        if scheduler.pending():
            moves += ["plan", "flush"]
        ready = scheduler.ready()
        if ready:
            moves.append("send")
        move = data.draw(st.sampled_from(moves))
        if move == "publish":
            scheduler.publish(calls.pop(0))
        elif move == "plan":
            # a round plans everything it read: nothing is held back in the log
            before = scheduler.pending()
            read = scheduler.plan_only()
            assert read >= 1
            assert scheduler.pending() == before - read
        elif move == "flush":
            before = scheduler.pending()
            requeued = scheduler.stats().get("requeued", 0)
            result = scheduler.flush()
            assert result.events_read >= 1
            assert result.events_held == 0
            requeued = scheduler.stats().get("requeued", 0) - requeued
            assert scheduler.pending() == before - result.events_read + requeued
        else:
            scheduler.send(data.draw(st.sampled_from(ready)))

    # Then: nothing left anywhere, and the one-by-one state and outcomes
    stats = scheduler.stats()
    assert (stats.get("buffered", 0), stats.get("inflight", 0), stats.get("bundles", 0)) == (
        0,
        0,
        0,
    )
    assert client.hlen(scheduler.names.hold_writer) == 0
    assert client.hlen(scheduler.names.hold_reader_count) == 0
    oracle, expected = one_by_one(registry_with(scenario.start), scenario.events)
    assert registry.state.snapshot() == oracle.snapshot()
    final = scheduler.final_outcomes(scenario.events)
    invalid = scenario.invalid if mode is CoalesceMode.SUPERSEDE else frozenset()
    assert_same_outcomes(scenario.events, expected, final, mode=mode, invalid=invalid)
    # each event read once, and once more each time it was sent again (a refusal, a
    # cancellation): planned again by the recorder in its bundle's place, never sent back to
    # the log, so no bundle planned after it ever gives anything back
    assert stats["published"] == events
    assert stats.get("requeued", 0) == 0
    assert stats.get("trimmed", 0) == stats.get("dissolved", 0) == 0
    assert stats["read"] == events + stats.get("replanned", 0)


@settings(max_examples=80)
@given(
    case=cases(min_steps=3),
    read_limit=st.integers(1, 6),
    cuts=st.lists(st.booleans(), max_size=40),
    data=st.data(),
)
def test_scheduler_a_parked_bundle_delays_only_what_must_follow_it(
    client: redis.Redis,
    redis_server: RedisServer,
    case: Case,
    read_limit: int,
    cuts: list[bool],
    data: st.DataObject,
) -> None:
    scenario = case.scenario
    mode = CoalesceMode.SUPERSEDE
    scheduler, registry, calls = start(client, redis_server.url, case, mode, read_limit, cuts)
    events = len(scenario.events)
    parked: str | None = None

    # The adversary parks one ready bundle at some point; everything else goes on until no move
    # is left but the parked bundle.
    steps = 0
    while True:
        steps += 1
        assert steps <= 8 * events + 40, "no progress"
        ready = scheduler.ready()
        moves = ["publish"] if calls else []
        if scheduler.pending():
            moves.append("plan")
        if ready:
            moves.append("send")
            if parked is None:
                moves.append("park")
        if not moves:
            break
        move = data.draw(st.sampled_from(moves))
        if move == "publish":
            scheduler.publish(calls.pop(0))
        elif move == "plan":
            scheduler.plan_only()
        elif move == "park":
            parked = data.draw(st.sampled_from(ready))
            scheduler.park(parked)
        else:
            scheduler.send(data.draw(st.sampled_from(ready)))

    # Then every event still pending waits behind the parked bundle, none unrelated to it
    if parked is not None:
        writes, reads = scheduler.keys_of(parked)
        waiting = scheduler.not_final(scenario.events) - scheduler.events_of(parked)
        assert waiting <= behind_parked(scenario.events, waiting, writes, reads)
        # and once it is sent (a parked bundle is in no schedule: an operator puts it back),
        # everything drains
        scheduler.unpark(parked)
        scheduler.send(parked)
        steps = 0
        while scheduler.pending() or scheduler.ready():
            steps += 1
            assert steps <= 8 * events + 40, "no progress after the parked bundle"
            if scheduler.pending():
                scheduler.plan_only()
            for bundle_id in scheduler.ready():
                scheduler.send(bundle_id)

    stats = scheduler.stats()
    left = [stats.get(name, 0) for name in ("buffered", "inflight", "bundles", "blocked")]
    assert left == [0, 0, 0, 0]
    assert client.hlen(scheduler.names.virtual_count) == 0
    assert client.hlen(scheduler.names.slow_keys) == 0
    oracle, expected = one_by_one(registry_with(scenario.start), scenario.events)
    assert registry.state.snapshot() == oracle.snapshot()
    final = scheduler.final_outcomes(scenario.events)
    assert_same_outcomes(scenario.events, expected, final, mode=mode, invalid=scenario.invalid)
    assert stats["read"] == events + stats.get("requeued", 0) + stats.get("replanned", 0)

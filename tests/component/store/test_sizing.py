"""A source's bundle-size state: stored as `cap:shrunkAtMs`, replaced by compare-and-set
(shrink.lua), read with a planning round, expiring once it no longer shrinks anything; and the
flow's `shrink_bundles` / `plan_caps_for` over it, racing workers included."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import structlog

from worker.domain.sizing import BundleSizing
from worker.flow.deps import Deps, build_deps
from worker.flow.sizing import plan_caps_for, shrink_bundles
from worker.store import Store
from worker.store.keys import shrink_key
from worker.store.records import ReadRound

from .conftest import NOW, SOURCE, fast_settings, put, resource

HOUR_MS = 3_600_000


@pytest.fixture
def deps_factory(client: redis.Redis, redis_url: str) -> Iterator[Any]:
    """Deps over the private Redis, each with its own connection (as separate workers have)."""
    made: list[Deps] = []

    def make(*, now: int = NOW, **overrides: Any) -> Deps:
        values = {"max_bundle_ops": 64, "shrink_recovery_ms": HOUR_MS, **overrides}
        connection = redis.Redis.from_url(redis_url, decode_responses=True)
        deps = build_deps(fast_settings(**values), redis=connection)
        deps.now_ms = lambda: now
        made.append(deps)
        return deps

    yield make
    for deps in made:
        deps.close()
        deps.store.client.close()


def test_shrink_key_lives_in_the_source_hash_tag():
    assert shrink_key(SOURCE) == "ingest:{src-a}:shrink"
    with pytest.raises(ValueError, match="source"):
        shrink_key("not a source")


def test_sizing_swap_writes_the_state_with_its_ttl(store: Store, client: redis.Redis):
    assert store.sizing(SOURCE) is None
    state = BundleSizing(32, NOW)

    swap = store.swap_sizing(SOURCE, expected=None, new=state, ttl_ms=60_000)

    assert (swap.done, swap.current) == (True, state)
    assert client.get(shrink_key(SOURCE)) == f"32:{NOW}"
    assert 59_000 < client.pttl(shrink_key(SOURCE)) <= 60_000
    assert store.sizing(SOURCE) == state


def test_sizing_swap_refuses_when_the_key_changed_since_the_read(store: Store, client):
    first, second = BundleSizing(32, NOW), BundleSizing(16, NOW + 1)
    store.swap_sizing(SOURCE, expected=None, new=first, ttl_ms=60_000)

    stale = store.swap_sizing(SOURCE, expected=None, new=second, ttl_ms=60_000)

    assert (stale.done, stale.current) == (False, first)
    assert store.sizing(SOURCE) == first
    fresh = store.swap_sizing(SOURCE, expected=first, new=second, ttl_ms=60_000)
    assert fresh.done
    assert store.sizing(SOURCE) == second


@pytest.mark.parametrize("garbage", ["junk", "0:5", "07:5", "4:05", "4:", ":5", "-1:5"])
def test_sizing_unreadable_value_counts_as_none_and_is_replaced(store: Store, client, garbage):
    client.set(shrink_key(SOURCE), garbage)
    assert store.sizing(SOURCE) is None

    swap = store.swap_sizing(SOURCE, expected=None, new=BundleSizing(8, NOW), ttl_ms=1000)

    assert swap.done
    assert store.sizing(SOURCE) == BundleSizing(8, NOW)


def read(store: Store) -> ReadRound:
    return store.read_ready(SOURCE, token="t", lease_ms=10_000, limit=10, max_bytes=100_000)


def test_sizing_is_read_with_the_planning_round(store: Store):
    put(store, resource(eid="a", group="g1"))
    first = read(store)
    assert first.sizing is None
    store.commit(SOURCE, first, bundles=[], rejected=[], now_ms=NOW)  # releases the lease

    store.swap_sizing(SOURCE, expected=None, new=BundleSizing(3, NOW), ttl_ms=60_000)

    again = read(store)
    assert again.sizing == BundleSizing(3, NOW)
    assert [e.event_id for e in again.events] == ["a"]


def test_shrink_bundles_halves_logs_and_expires_when_the_cap_is_back(deps_factory, client):
    deps = deps_factory(max_bundle_ops=64)
    with structlog.testing.capture_logs() as logs:
        state = shrink_bundles(deps, SOURCE, "refused as a whole (413)", sent_ops=64)

    assert state == BundleSizing(32, NOW)
    (entry,) = [e for e in logs if e["event"] == "bundle.shrunk"]
    assert (entry["source"], entry["cap"], entry["why"]) == (SOURCE, 32, "refused as a whole (413)")
    assert set(entry) <= {"event", "log_level", "source", "cap", "max_ops", "why", "recovery_ms"}
    # 32 -> 64 takes one recovery period: the key goes with it
    assert HOUR_MS - 1000 < client.pttl(shrink_key(SOURCE)) <= HOUR_MS
    again = shrink_bundles(deps, SOURCE, "timed out")
    assert again == BundleSizing(16, NOW)
    assert 2 * HOUR_MS - 1000 < client.pttl(shrink_key(SOURCE)) <= 2 * HOUR_MS


def test_shrink_bundles_ignores_a_bundle_planned_before_an_earlier_shrink(deps_factory):
    deps = deps_factory(max_bundle_ops=64)
    shrink_bundles(deps, SOURCE, "refused as a whole (413)", sent_ops=64)

    with structlog.testing.capture_logs() as logs:
        state = shrink_bundles(deps, SOURCE, "refused as a whole (413)", sent_ops=64)

    assert state == BundleSizing(32, NOW)
    assert not [e for e in logs if e["event"] == "bundle.shrunk"]


def test_shrink_bundles_with_a_single_operation_cap_stores_nothing(deps_factory, client):
    deps = deps_factory(max_bundle_ops=1)
    assert shrink_bundles(deps, SOURCE, "timed out") is None
    assert client.exists(shrink_key(SOURCE)) == 0


def test_plan_caps_for_closes_bundles_at_the_cap_in_effect(deps_factory):
    deps = deps_factory(max_bundle_ops=64)
    assert plan_caps_for(deps, SOURCE) == deps.settings.plan_caps()

    shrink_bundles(deps, SOURCE, "timed out")

    caps = plan_caps_for(deps, SOURCE)
    assert (caps.max_operations, caps.target_operations) == (64, 32)
    assert caps.max_bytes == deps.settings.max_bundle_bytes
    later = deps_factory(max_bundle_ops=64, now=NOW + HOUR_MS)
    assert plan_caps_for(later, SOURCE) == later.settings.plan_caps(), "grown back"
    halfway = deps_factory(max_bundle_ops=64, now=NOW + HOUR_MS - 1)
    assert plan_caps_for(halfway, SOURCE).target_operations == 32


def test_plan_caps_for_uses_the_round_state_without_reading_again(deps_factory):
    deps = deps_factory(max_bundle_ops=64)
    put(deps.store, resource(eid="a", group="g1"))
    shrink_bundles(deps, SOURCE, "timed out")
    round_ = read(deps.store)
    deps.store.client.delete(shrink_key(SOURCE))

    assert plan_caps_for(deps, SOURCE, round_).target_operations == 32
    assert plan_caps_for(deps, SOURCE).target_operations is None


@pytest.mark.parametrize(("sent_ops", "expected_cap"), [(None, 64 >> 5), (64, 32)])
def test_shrink_bundles_racing_workers_halve_once_per_event(deps_factory, sent_ops, expected_cap):
    """Five workers shrink at once: with no size known, each event halves once (no lost
    update); for five bundles of one 64-operation plan, the cap halves once in all."""
    workers = [deps_factory(max_bundle_ops=64) for _ in range(5)]
    start = threading.Barrier(len(workers))
    errors: list[BaseException] = []

    def shrink_one(deps: Deps) -> None:
        try:
            start.wait(timeout=10)
            shrink_bundles(deps, SOURCE, "timed out", sent_ops=sent_ops)
        except BaseException as exc:  # handed to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=shrink_one, args=(d,)) for d in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert not errors
    assert not any(t.is_alive() for t in threads)
    assert workers[0].store.sizing(SOURCE) == BundleSizing(expected_cap, NOW)


@pytest.mark.parametrize(("sent_ops", "expected_cap"), [(None, 16), (64, 32)])
def test_shrink_bundles_that_read_before_another_worker_wrote_computes_again(
    deps_factory, monkeypatch, sent_ops, expected_cap
):
    late, other = deps_factory(max_bundle_ops=64), deps_factory(max_bundle_ops=64)
    monkeypatch.setattr(late.store, "sizing", lambda source: None)  # read before `other` wrote
    shrink_bundles(other, SOURCE, "timed out", sent_ops=sent_ops)

    state = shrink_bundles(late, SOURCE, "timed out", sent_ops=sent_ops)

    assert state == BundleSizing(expected_cap, NOW)
    assert other.store.sizing(SOURCE) == state

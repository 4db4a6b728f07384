"""The benchmark's streams: each applies alone under the oracle, and has the shape it claims."""

from __future__ import annotations

from collections import Counter

import pytest

from bench.chain import chain_bound
from bench.shapes import FAULT_SHARE, SHAPES, make_stream, without_failures
from bench.stream import one_by_one, oracle
from bench.world import Event, GroupChoice, Padding, World

SEEDS = [1, 7, 2026]


def _with_ids(events: list[Event]) -> list[Event]:
    """Ids for the CREATEs that have none, as the publisher would give them."""
    return [
        {**e, "id": f"gen-{e['eventId']}"} if e["target"] == "resource" and "id" not in e else e
        for e in events
    ]


def _entities_touched(event: Event) -> list[str]:
    if event["target"] == "resource":
        return [f"{event['type']}:{event.get('id')}"] if "id" in event else []
    return [f"office:{event['from']['id']}", f"provider:{event['to']['id']}"]


@pytest.mark.parametrize("shape", sorted(set(SHAPES) - {"faulty"}))
@pytest.mark.parametrize("seed", SEEDS)
def test_stream_every_event_applies_alone_in_order(shape: str, seed: int) -> None:
    stream = make_stream(shape, tag="t", events=3000, seed=seed)

    states = oracle(_with_ids(stream.events))  # raises on the first event that fails alone

    assert stream.failing == frozenset()
    assert len(stream.events) == 3000
    assert len({e["eventId"] for e in stream.events}) == 3000
    assert set(states) <= set(stream.sources)
    assert all(state["resources"] for state in states.values())


def test_stream_is_the_same_for_one_seed_and_differs_for_another() -> None:
    first = make_stream("wide", tag="t", events=500, seed=3).events
    again = make_stream("wide", tag="t", events=500, seed=3).events
    other = make_stream("wide", tag="t", events=500, seed=4).events

    assert first == again
    assert first != other


def test_wide_names_thousands_of_entities_at_scale_with_every_kind_of_event() -> None:
    stream = make_stream("wide", tag="t", events=60_000, seed=5)

    touched = {key for e in stream.events for key in _entities_touched(e)}
    kinds = Counter((e["target"], e["action"]) for e in stream.events)

    assert len(touched) >= 2000
    assert stream.providers + stream.offices >= 2000
    for kind in [("resource", a) for a in ("CREATE", "UPSERT", "DELETE")] + [
        ("relationship", a) for a in ("CREATE", "UPSERT", "DELETE")
    ]:
        assert kinds[kind] > 0, kind
    assert any(e["action"] == "CREATE" and "id" not in e for e in stream.events)


def test_wide_entity_count_grows_with_the_stream() -> None:
    small = make_stream("wide", tag="t", events=5_000, seed=5)
    large = make_stream("wide", tag="t", events=50_000, seed=5)

    assert large.providers >= 5 * small.providers


@pytest.mark.parametrize("shape", ["wide", "hot"])
def test_stream_deletes_providers_and_creates_them_again(shape: str) -> None:
    events = make_stream(shape, tag="t", events=20_000, seed=9).events

    deleted: set[str] = set()
    recreated = 0
    for event in events:
        if event["target"] != "resource" or event["type"] != "provider" or "id" not in event:
            continue
        if event["action"] == "DELETE":
            deleted.add(event["id"])
        elif event["id"] in deleted:
            recreated += 1
            deleted.discard(event["id"])

    assert recreated >= 10


def test_hot_has_tens_of_entities_each_with_a_hundred_changes_or_more() -> None:
    events = make_stream("hot", tag="t", events=10_000, seed=11).events

    changes = Counter(key for e in events for key in _entities_touched(e))

    assert 20 <= len(changes) <= 99
    assert min(changes.values()) >= 100, changes.most_common()[-3:]


@pytest.mark.parametrize("shape", ["wide", "hot"])
def test_stream_groups_are_mixed_per_entity(shape: str) -> None:
    events = make_stream(shape, tag="t", events=10_000, seed=13).events

    named = Counter("group" in e for e in events)
    groups_of: dict[str, set[str | None]] = {}
    for event in events:
        for key in _entities_touched(event):
            groups_of.setdefault(key, set()).add(event.get("group"))

    assert 0.3 < named[False] / len(events) < 0.5  # about 40% name no group
    assert len({e["group"] for e in events if "group" in e}) > 4
    several = sum(1 for groups in groups_of.values() if len(groups) >= 3)
    assert several >= len(groups_of) // 2  # most entities are published under several groups


def test_fanin_points_every_relationship_at_one_office_from_many_groups() -> None:
    stream = make_stream("fanin", tag="t", events=20_000, seed=1)

    links = [e for e in stream.events if e["target"] == "relationship"]
    offices = {e["from"]["id"] for e in links}

    assert len(stream.sources) == 1
    assert offices == {"o-hub"}
    assert len(links) > len(stream.events) // 2
    assert all(e["action"] == "UPSERT" for e in links)
    assert len({e["group"] for e in stream.events}) >= 1900


def test_padding_makes_each_write_about_the_asked_size_and_shares_its_strings() -> None:
    import json

    events = make_stream("wide", tag="t", events=400, seed=2, payload_bytes=1024).events

    sizes = [len(json.dumps(e["data"])) for e in events if "data" in e]
    pads = {id(s) for e in events for s in _strings(e.get("data")) if len(s) > 500}

    assert all(900 <= size <= 1200 for size in sizes), (min(sizes), max(sizes))
    assert len(pads) <= 8  # a few shared objects, not one string per event


def _strings(data: object) -> list[str]:
    if isinstance(data, str):
        return [data]
    if isinstance(data, dict):
        return [s for v in data.values() for s in _strings(v)]
    if isinstance(data, list):
        return [s for v in data for s in _strings(v)]
    return []


def test_world_refuses_what_would_fail_alone() -> None:
    import random

    rng = random.Random(1)
    world = World("s", Padding(0))

    with pytest.raises(ValueError, match="does not exist"):
        world.delete_provider("p-1")
    with pytest.raises(ValueError, match="does not exist"):
        world.write_link(rng, "o-1", "p-1", create_share=1.0)
    world.write_office(rng, "o-1")
    world.write_provider(rng, "p-1", create_share=1.0)
    world.write_link(rng, "o-1", "p-1", create_share=1.0)
    world.delete_provider("p-1")  # takes its relationship with it
    assert world.links == set()


def test_group_choice_mixes_none_home_and_pool() -> None:
    import random

    rng = random.Random(3)
    choice = GroupChoice(["pool-0", "pool-1"])

    picks = Counter(choice.pick(rng, "home") for _ in range(10_000))

    assert 3500 < picks[None] < 4500
    assert 2500 < picks["home"] < 3500
    assert 2500 < picks["pool-0"] + picks["pool-1"] < 3500


def test_make_stream_refuses_an_unknown_shape_or_a_tiny_stream() -> None:
    with pytest.raises(ValueError, match="shape"):
        make_stream("narrow", tag="t", events=100)
    with pytest.raises(ValueError, match="events"):
        make_stream("wide", tag="t", events=5)


def test_chain_bound_is_the_planner_bundle_count_of_the_longest_source() -> None:
    hot = make_stream("hot", tag="t", events=2000, seed=4)

    bound = chain_bound(hot.events)

    assert bound.events == 2000
    assert bound.source in hot.sources
    assert 1 < bound.longest_chain < 2000  # deletes and re-creates force successive bundles
    assert bound.events_per_round_trip == pytest.approx(2000 / bound.longest_chain)


def test_chain_bound_of_independent_upserts_is_one_bundle() -> None:
    events = [
        {"eventId": f"e{n}", "sourceKey": "s", "target": "resource", "action": "UPSERT",
         "type": "provider", "id": f"p-{n}", "data": {"name": "x"}}
        for n in range(50)
    ]  # fmt: skip

    assert chain_bound(events).longest_chain == 1


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_baseline_queues_keep_every_entity_on_one_queue(shape: str) -> None:
    from bench.baseline import queues_by_component

    events = make_stream(shape, tag="t", events=3000, seed=6).events

    queues = queues_by_component(events, 2)

    queue_of: dict[str, str] = {}
    for event, queue in zip(events, queues, strict=True):
        for key in _entities_touched(event):
            assert queue_of.setdefault(f"{event['sourceKey']}/{key}", queue) == queue, event
    if shape != "fanin":  # two sources: both queues work; fanin is one component
        assert set(queues) == {"bench-baseline-0", "bench-baseline-1"}


def _kind(event: Event, error: dict[str, object]) -> str:
    """Which kind of failure an event that fails alone is, from what it is and its error."""
    if str(error.get("message", "")).startswith("invalid schema"):
        return "off-profile"
    if error.get("type") == "ALREADY_EXISTS" and event["action"] == "CREATE":
        return "exists"
    if error.get("type") == "NOT_FOUND" and event["action"] == "DELETE":
        return "missing"
    if event["target"] == "relationship" and "does not exist" in str(error.get("message")):
        return "no-end"
    return f"unexpected: {error}"


@pytest.mark.parametrize("seed", SEEDS)
def test_faulty_is_wide_with_2_to_3_percent_of_events_failing_alone_of_every_kind(
    seed: int,
) -> None:
    stream = make_stream("faulty", tag="t", events=4000, seed=seed)
    events = {e["eventId"]: e for e in stream.events}

    run = one_by_one(_with_ids(stream.events))

    assert set(run.failed) == stream.failing
    assert 0.02 <= len(stream.failing) / len(stream.events) <= 0.03
    assert len(stream.failing) == round(4000 * FAULT_SHARE)
    kinds = Counter(_kind(events[e], error) for e, error in run.failed.items())
    assert set(kinds) == {"off-profile", "exists", "missing", "no-end"}, kinds
    assert min(kinds.values()) >= len(stream.failing) // 5
    targets = Counter((events[e]["target"], events[e]["action"]) for e in stream.failing)
    assert {("resource", "CREATE"), ("resource", "DELETE"), ("relationship", "CREATE"),
            ("relationship", "DELETE")} <= set(targets)  # fmt: skip
    assert all(state["resources"] for state in run.states.values())


def test_faulty_keeps_the_wide_stream_in_order_around_its_failing_events() -> None:
    faulty = make_stream("faulty", tag="t", events=3000, seed=7)
    wide = make_stream("wide", tag="t", events=3000, seed=7)

    kept = [e for e in faulty.events if e["eventId"] not in faulty.failing]

    def bare(event: Event) -> Event:
        return {k: v for k, v in event.items() if k != "eventId"}

    assert [bare(e) for e in kept] == [bare(e) for e in wide.events[: len(kept)]]
    assert faulty.shape == "faulty"
    assert make_stream("faulty", tag="t", events=3000, seed=7).events == faulty.events


def test_without_failures_is_the_stream_minus_its_failing_events_under_another_tag() -> None:
    faulty = make_stream("faulty", tag="t", events=2000, seed=3)

    clean = without_failures(faulty, tag="c")

    assert clean.failing == frozenset()
    assert len(clean.events) == len(faulty.events) - len(faulty.failing)
    assert clean.sources == ["c-a", "c-b"]
    assert {e["sourceKey"] for e in clean.events} == set(clean.sources)
    assert all(e["eventId"].startswith("c-e") for e in clean.events)
    assert one_by_one(_with_ids(clean.events)).failed == {}
    kept = [e for e in faulty.events if e["eventId"] not in faulty.failing]
    assert [e["eventId"][2:] for e in clean.events] == [e["eventId"][2:] for e in kept]
    assert [e.get("data") for e in clean.events] == [e.get("data") for e in kept]

"""`publisher.publish` over the real Redis: validation, ids and refs, dedupe, atomic batches."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import redis
from redis.client import Pipeline

from emulator.profiles import default_profiles, default_relationship_definitions
from worker.domain.profiles import profile_version
from worker.publisher import publish
from worker.results import event_status
from worker.store import Store
from worker.store.keys import INVALID_DLQ, SourceKeys
from worker.store.profiles import ProfileCache

from .conftest import SOURCE, fast_settings, letters


class CountingRedis(redis.Redis):
    """Counts round trips: single commands, and pipelines (one each)."""

    round_trips = 0

    def execute_command(self, *args: Any, **options: Any) -> Any:
        CountingRedis.round_trips += 1
        return super().execute_command(*args, **options)

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Pipeline:
        pipe = super().pipeline(transaction, shard_hint)
        original = pipe.execute

        def execute(raise_on_error: bool = True) -> Any:
            if pipe.command_stack:
                CountingRedis.round_trips += 1
            return original(raise_on_error)

        pipe.execute = execute  # type: ignore[method-assign]
        return pipe


def upsert(eid: str, id_: str = "p1", **extra: Any) -> dict[str, Any]:
    return {"eventId": eid, "sourceKey": SOURCE, "target": "resource", "action": "UPSERT",
            "type": "provider", "id": id_, "data": {"name": eid}, **extra}  # fmt: skip


def create(eid: str, ref: str) -> dict[str, Any]:
    return {"eventId": eid, "sourceKey": SOURCE, "target": "resource", "action": "CREATE",
            "type": "provider", "ref": ref, "data": {"name": eid}}  # fmt: skip


def link_to_ref(eid: str, ref: str) -> dict[str, Any]:
    return {"eventId": eid, "sourceKey": SOURCE, "target": "relationship", "action": "UPSERT",
            "type": "provider-office", "from": {"type": "office", "id": "o1"},
            "to": {"type": "provider", "ref": ref}, "data": {"description": "x"}}  # fmt: skip


def test_publish_answers_invalid_events_per_event_and_lets_the_valid_in(store, client):
    incomplete = {"eventId": "bad1", "sourceKey": SOURCE, "target": "resource"}
    events: list[Any] = [upsert("ok1"), incomplete, upsert("ok2", id_="p2"), "not an object"]

    report = publish(store, events)

    assert [a.event_id for a in report.accepted] == ["ok1", "ok2"]
    assert [(e.index, e.event_id) for e in report.errors] == [(1, "bad1"), (3, None)]
    assert report.errors[0].field == "action"
    assert report.counts == {"accepted": 2, "duplicates": 0, "errors": 2}
    found = letters(client, SourceKeys(SOURCE).dlq)
    assert [entry.get("eventId") for entry in found] == ["bad1"]
    assert json.loads(found[0]["error"])["problems"][0]["field"] == "action"
    assert len(letters(client, INVALID_DLQ)) == 1  # no source key at all
    assert event_status(store, "ok1").status == "pending"


def test_publish_assigns_ids_resolves_refs_and_returns_the_first_id_again(store, client):
    first = publish(store, [create("c1", "newcomer"), link_to_ref("l1", "newcomer")])
    assigned = first.accepted[0].assigned_id
    assert assigned is not None
    assert len(assigned) == 27

    again = publish(store, [create("c1", "newcomer")])

    assert again.duplicates[0].assigned_id == assigned
    assert again.accepted == []
    body = json.loads(store.event_bodies(SOURCE, ["l1"])["l1"])
    assert body["to"] == {"type": "provider", "id": assigned}
    assert event_status(store, "c1").assigned_id == assigned


def test_publish_live_ref_defined_by_another_event_is_a_per_event_error(store):
    publish(store, [create("c1", "newcomer")])

    report = publish(store, [create("c2", "newcomer"), upsert("u1")])

    assert [e.event_id for e in report.errors] == ["c2"]
    assert report.errors[0].field == "ref"
    assert [a.event_id for a in report.accepted] == ["u1"]


def test_publish_repeated_event_id_in_one_call_is_a_duplicate_of_the_first(store):
    report = publish(store, [upsert("same"), upsert("same", data={"name": "other"})])

    assert [a.index for a in report.accepted] == [0]
    assert [(d.index, d.event_id) for d in report.duplicates] == [(1, "same")]


def test_publish_atomic_call_with_an_invalid_event_is_refused_whole(store, client):
    report = publish(store, [upsert("a1"), {"eventId": "a2"}], atomic=True)

    assert report.accepted == []
    assert {e.event_id for e in report.errors} == {"a1", "a2"}
    reasons = {e.event_id: e.reason for e in report.errors}
    assert "refused as a whole" in reasons["a1"]
    assert client.xlen(SourceKeys(SOURCE).dlq) == 1  # a1, refused with its batch
    assert client.xlen(INVALID_DLQ) == 1  # a2 names no source


def test_publish_atomic_call_that_cannot_travel_as_one_bundle_is_refused_with_the_reason(store):
    report = publish(store, [upsert("a1"), upsert("a2")], atomic=True)

    assert report.accepted == []
    assert "same entity" in report.errors[0].reason


def test_publish_atomic_call_goes_in_whole_under_one_batch_id(store, client):
    report = publish(store, [upsert("a1"), upsert("a2", id_="p2")], atomic=True)

    assert len(report.accepted) == 2
    stored = store.event_bodies(SOURCE, ["a1", "a2"])
    bodies = [json.loads(stored[e]) for e in ("a1", "a2")]
    assert bodies[0]["atomicBatch"] == bodies[1]["atomicBatch"]


def test_publish_bulk_mode_flags_events_in_the_one_ready_log(store, client):
    names = SourceKeys(SOURCE)
    publish(store, [upsert("n1", id_="p9", group="load")])

    events = [upsert("b1", group="load"), upsert("b2", id_="p2", group="load")]
    report = publish(store, events, mode="bulk")

    assert [a.group for a in report.accepted] == ["load", "load"]
    assert client.zrange(names.ready, 0, -1) == ["n1", "b1", "b2"]
    assert [client.hget(names.event(e), "bk") for e in ("n1", "b1", "b2")] == [None, "1", "1"]


def test_publish_bulk_event_on_a_pending_entity_stays_behind_it(store, client):
    publish(store, [upsert("n1", group="live")])

    report = publish(store, [upsert("b1", group="load")], mode="bulk")

    assert [a.group for a in report.accepted] == ["load"]
    # one round plans one kind of request: the bundle event first, the bulk one the next round
    first = store.read_ready(SOURCE, token="t", lease_ms=1000, limit=10, max_bytes=10**6)
    assert ([e.event_id for e in first.events], first.bulk, first.more) == (["n1"], False, True)


def test_publish_bulk_mode_refuses_atomic_batches_per_event(store, client):
    whole = publish(store, [upsert("a1"), upsert("a2", id_="p2")], atomic=True, mode="bulk")
    named = publish(store, [upsert("a3", atomicBatch="B"), upsert("a4", id_="p4")], mode="bulk")

    assert [e.field for e in whole.errors] == ["atomicBatch", "atomicBatch"]
    assert "not atomic" in whole.errors[0].reason
    assert [e.event_id for e in named.errors] == ["a3"]
    assert [a.event_id for a in named.accepted] == ["a4"]
    assert [entry.get("eventId") for entry in letters(client, SourceKeys(SOURCE).dlq)] == [
        "a1",
        "a2",
        "a3",
    ]


def test_publish_unknown_mode_is_a_programming_error(store):
    with pytest.raises(ValueError, match="mode"):
        publish(store, [upsert("x")], mode="other")  # type: ignore[arg-type]


def cache_seed_profiles(client: redis.Redis) -> None:
    """The emulator's seed profiles and definition, cached as publish reads them."""
    bodies = {f"p:{k}": b for k, b in default_profiles().items()}
    bodies.update({f"r:{k}": b for k, b in default_relationship_definitions().items()})
    read = {
        n: (profile_version(b), json.dumps(b, separators=(",", ":"))) for n, b in bodies.items()
    }
    now_ms = int(time.time() * 1000)
    ProfileCache(client).write({SOURCE: read}, {}, now_ms, ttl_ms=3_600_000)


def test_publish_costs_three_round_trips_whatever_the_batch_size(redis_url):
    """The cached profile versions, a read of the refs and id-less CREATEs it names, then the
    script; one less without them (profiles cached, and compiled by an earlier call)."""
    client = CountingRedis.from_url(redis_url, decode_responses=True)
    store = Store(client, fast_settings())
    cache_seed_profiles(client)
    assert publish(store, [create("warm", "r-warm"), link_to_ref("warm-l", "r-warm")]).errors == []
    events = [upsert(f"e{i}", id_=f"p{i % 50}") for i in range(300)]
    events += [create(f"c{i}", f"r{i}") for i in range(50)]
    events += [link_to_ref(f"l{i}", f"r{i}") for i in range(50)]
    CountingRedis.round_trips = 0

    report = publish(store, events)

    assert len(report.accepted) == 400
    assert CountingRedis.round_trips == 3

    CountingRedis.round_trips = 0
    report = publish(store, [upsert(f"u{i}", id_=f"p{i}") for i in range(300)])
    assert len(report.accepted) == 300
    assert CountingRedis.round_trips == 2

    CountingRedis.round_trips = 0
    report = publish(store, [upsert("off", id_="p1", data={"name": "x", "colour": "red"})])
    assert [(e.event_id, e.problems[0].field) for e in report.errors] == [("off", "data.colour")]
    client.close()

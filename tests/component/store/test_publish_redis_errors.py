"""Publishing while Redis refuses writes: nothing is lost, and a call says per source what went in.

Out of memory is real here: a redis-server of the test's own (never the session's) with
`maxmemory` 1 byte and `noeviction` refuses every write with OOM, as a full Redis does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from redis.exceptions import OutOfMemoryError

from tests.conftest import _require_redis_binary
from tests.redis_server import RedisServer
from worker.publish_report import PublishIncompleteError
from worker.publish_writes import STORE_FIELD, error_code, is_transient
from worker.publisher import publish
from worker.store import Store
from worker.store.keys import INVALID_DLQ, SourceKeys

from .conftest import fast_settings, letters

A, B = SourceKeys("src-a"), SourceKeys("src-b")
HEALTH = "Jane Roe, very private"


def event(eid: str | None, source: str = "src-a", id_: str = "p1", **extra: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "sourceKey": source,
        "target": "resource",
        "action": "UPSERT",
        "type": "provider",
        "id": id_,
        "data": {"name": HEALTH},
        **extra,
    }
    if eid is not None:
        raw["eventId"] = eid
    return raw


@pytest.fixture
def own_server(tmp_path) -> Iterator[RedisServer]:
    """A redis-server for this test alone: its memory limit touches no other test."""
    _require_redis_binary()
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_client(own_server: RedisServer) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(own_server.url, decode_responses=True)
    yield connection
    connection.close()


def test_out_of_memory_leaves_every_event_waiting_and_a_second_call_stores_them(own_client):
    store = Store(own_client, fast_settings())
    events = [event("a1"), event(None, id_="p2"), event("b1", "src-b"), {"sourceKey": "src-b"}]
    own_client.config_set("maxmemory", 1)
    try:
        with pytest.raises(PublishIncompleteError) as raised:
            publish(store, events)
    finally:
        own_client.config_set("maxmemory", 0)

    incomplete = raised.value
    assert incomplete.waiting == {"src-a": 2, "src-b": 2}
    assert incomplete.errors == {"src-a": "OOM", "src-b": "OOM"}
    assert "src-a: 0 accepted, 0 duplicates, 0 refused, 2 waiting (OOM)" in str(incomplete)
    assert HEALTH not in str(incomplete)
    assert HEALTH not in repr(incomplete)
    assert own_client.zcard(A.ready) == 0
    assert own_client.zcard(B.ready) == 0
    assert own_client.xlen(B.dlq) == 0  # the invalid one waits too: its dead letter was refused
    # the event without an id goes again under the id it was given, so a second try is a dup
    pinned = incomplete.remaining[1]["eventId"]
    assert pinned
    assert [e.get("eventId") for e in incomplete.remaining] == ["a1", pinned, "b1", None]

    report = publish(store, incomplete.remaining)

    assert [a.event_id for a in report.accepted] == ["a1", pinned, "b1"]
    assert len(report.errors) == 1
    assert own_client.zrange(A.ready, 0, -1) == ["a1", pinned]
    assert own_client.xlen(B.dlq) == 1
    assert publish(store, incomplete.remaining).counts == {
        "accepted": 0,
        "duplicates": 3,
        "errors": 1,
    }


def test_an_event_the_script_fails_on_is_dead_lettered_and_the_others_go_in(own_client):
    store = Store(own_client, fast_settings())
    own_client.set(A.event("a2"), "not a hash")  # the script fails on this event alone

    report = publish(store, [event("a1"), event("a2", id_="p2"), event("a3"), event("b1", "src-b")])

    assert [a.event_id for a in report.accepted] == ["a1", "a3", "b1"]
    (error,) = report.errors
    assert (error.event_id, error.field) == ("a2", STORE_FIELD)
    assert "WRONGTYPE" in error.reason
    assert own_client.zrange(A.ready, 0, -1) == ["a1", "a3"]
    assert own_client.zrange(B.ready, 0, -1) == ["b1"]
    (letter,) = letters(own_client, A.dlq)
    assert (letter["eventId"], letter["stage"]) == ("a2", "publish")
    assert json.loads(letter["error"])["problems"][0]["field"] == STORE_FIELD
    assert json.loads(letter["event"])["eventId"] == "a2"


def test_an_atomic_batch_the_script_fails_on_is_refused_whole(own_client):
    store = Store(own_client, fast_settings())
    own_client.set(A.event("m2"), "not a hash")

    report = publish(store, [event("m1"), event("m2", id_="p2")], atomic=True)

    assert report.accepted == []
    assert {e.event_id for e in report.errors} == {"m1", "m2"}
    assert own_client.zcard(A.ready) == 0
    assert len(letters(own_client, A.dlq)) == 2


def test_a_call_across_sources_says_per_source_what_went_in(own_client, monkeypatch):
    store = Store(own_client, fast_settings())
    real = store.publish_parts

    def src_b_out_of_memory(calls, invalid, now_ms):
        """src-b's call refused as a full Redis refuses it: nothing of it written."""
        kept = [(s, batch) for s, batch in calls if s != "src-b"]
        parts = real(kept, invalid, now_ms)
        answers = iter(parts.calls)
        parts.calls = [
            OutOfMemoryError("command not allowed") if s == "src-b" else next(answers)
            for s, _ in calls
        ]
        return parts

    monkeypatch.setattr(store, "publish_parts", src_b_out_of_memory)
    events = [event("a1"), event("b1", "src-b"), {"eventId": "x1"}, event("a2", id_="p2")]

    with pytest.raises(PublishIncompleteError) as raised:
        publish(store, events)

    incomplete = raised.value
    assert incomplete.report.by_source() == {
        "src-a": {"accepted": 2, "duplicates": 0, "errors": 0},
        "_invalid": {"accepted": 0, "duplicates": 0, "errors": 1},
    }
    assert incomplete.waiting == {"src-b": 1}
    assert [e["eventId"] for e in incomplete.remaining] == ["b1"]
    assert own_client.zrange(A.ready, 0, -1) == ["a1", "a2"]
    assert own_client.xlen(INVALID_DLQ) == 1
    assert str(incomplete).startswith("publish incomplete: _invalid: 0 accepted")
    assert "src-b: 0 accepted, 0 duplicates, 0 refused, 1 waiting (OOM)" in str(incomplete)


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (redis.ConnectionError("refused"), True),
        (redis.TimeoutError("slow"), True),
        (OutOfMemoryError("command not allowed"), True),
        (redis.ResponseError("BUSY Redis is busy running a script"), True),
        (redis.exceptions.BusyLoadingError("Redis is loading"), True),
        (redis.exceptions.ReadOnlyError("You can't write against a read only replica."), True),
        (redis.ResponseError("MISCONF Redis is configured to save RDB snapshots"), True),
        (redis.ResponseError("NOPERM this user has no permissions"), True),
        (redis.ResponseError("WRONGTYPE Operation against a key"), False),
        (redis.ResponseError("ERR user_script:12: Script attempted to access nil"), False),
    ],
)
def test_which_redis_errors_are_transient(error, transient):
    assert is_transient(error) is transient
    code = error_code(error)
    assert code
    assert " " not in code  # a code, never a message that may quote arguments

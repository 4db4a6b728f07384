"""A ref lives as long as its CREATE is pending, and for the results TTL once it is final.

publish.lua writes the ref with no TTL; the script that makes the CREATE final (record.lua for
an outcome, commit.lua for an event no bundle can carry) starts its TTL. A ref that expired while
its CREATE still waited could be defined again for another resource.
"""

from __future__ import annotations

import pytest

from worker.store import Store
from worker.store.records import EventOutcomeRecord, RejectedEvent

from .conftest import NOW, SOURCE, bundle, commit_bundles, fast_settings, item, put, resource

TTL_S = 3600
NEW = "res:src-a:provider:gen1"


def _create(eid: str, id_: str, ref: str = "new"):
    return item(resource("CREATE", id_=id_, eid=eid), assigned_id=id_, ref_defined=(ref, id_))


def test_a_pending_creates_ref_never_expires_and_stays_its_own(store, client, names):
    put(store, _create("c1", "gen1"))

    assert client.get(names.ref("new")) == "gen1"
    assert client.ttl(names.ref("new")) == -1, "pending work never expires"
    # long after any results TTL, the ref still names the pending CREATE's resource
    replies = put(store, _create("c2", "gen2"), now=NOW + (TTL_S + 60) * 1000)
    assert replies[0].kind == "err"
    assert client.get(names.ref("new")) == "gen1"


def test_a_ref_stays_while_its_create_is_in_flight(store, client, names):
    put(store, _create("c1", "gen1"))
    commit_bundles(store, [bundle("B1", "c1", writes=(NEW,))])

    assert client.hget(names.event("c1"), "st") == "in_flight"
    assert client.ttl(names.ref("new")) == -1


@pytest.mark.parametrize("fate", ["APPLIED", "FAILED"])
def test_the_refs_ttl_starts_when_its_create_is_recorded(store, client, names, fate):
    put(store, _create("c1", "gen1"))
    commit_bundles(store, [bundle("B1", "c1", writes=(NEW,))])

    result = store.record(
        SOURCE, "B1", 1, [EventOutcomeRecord("c1", fate)], status="PERSISTED", now_ms=NOW + 5
    )

    assert result.done
    assert 0 < client.ttl(names.ref("new")) <= TTL_S
    assert 0 < client.ttl(names.event("c1")) <= TTL_S


def test_the_refs_ttl_starts_when_its_create_is_dead_lettered_at_flush(store, client, names):
    put(store, _create("c1", "gen1"))

    commit_bundles(store, [], rejected=[RejectedEvent("c1", '{"type":"TOO_LARGE"}')], expect={})

    assert client.hget(names.event("c1"), "st") == "dead_lettered"
    assert 0 < client.ttl(names.ref("new")) <= TTL_S


def test_a_replayed_create_makes_its_ref_pending_again(client, names):
    store = Store(client, fast_settings(results_ttl_s=TTL_S))
    put(store, _create("c1", "gen1"))
    commit_bundles(store, [], rejected=[RejectedEvent("c1", '{"type":"TOO_LARGE"}')], expect={})
    client.hset(names.event("c1"), "stage", "publish")  # what reopen.lua does for a replay

    replies = put(store, _create("c1", "gen1"), now=NOW + 10)

    assert replies[0].kind == "ok"
    assert client.ttl(names.ref("new")) == -1

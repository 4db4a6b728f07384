"""Profiles at publish, against the emulator over HTTP: off-profile events are refused before they
are sent, a profile changed in the Registry is seen without a stale refusal, and publish goes on
without pre-validation when profiles cannot be read (docs/pipeline.md, "Profiles at publish")."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import structlog.testing

from emulator.profiles import DEFAULT_PROFILES
from worker.deadletters import DlqFilter, list_dead_letters
from worker.metrics import metrics_registry
from worker.publish_profiles import COMPILED
from worker.results import event_status
from worker.store.keys import profile_versions_key
from worker.store.profiles import UNREADABLE_FIELD

from .conftest import KEY, SOURCE, Harness, HarnessFactory


def resource(type_: str, event_id: str, resource_id: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "eventId": event_id,
        "sourceKey": SOURCE,
        "target": "resource",
        "action": "UPSERT",
        "type": type_,
        "id": resource_id,
        "data": data,
    }


def office(event_id: str, office_id: str, data: dict[str, Any]) -> dict[str, Any]:
    return resource("office", event_id, office_id, data)


def link(event_id: str, from_: tuple[str, str], to: tuple[str, str]) -> dict[str, Any]:
    return {
        "eventId": event_id,
        "sourceKey": SOURCE,
        "target": "relationship",
        "action": "UPSERT",
        "type": "provider-office",
        "from": {"type": from_[0], "id": from_[1]},
        "to": {"type": to[0], "id": to[1]},
    }


def sent_ids(harness: Harness) -> set[str]:
    """Every id a write request to the emulator carried."""
    return {i for r in harness.requests() if r["opCount"] for i in r["ids"] or []}


def profile_reads(harness: Harness) -> list[str]:
    return [
        r["path"]
        for r in harness.requests()
        if r["route"] in ("get_profile", "get_relationship_definition")
    ]


def put_profile(harness: Harness, key: str, body: dict[str, Any]) -> None:
    with httpx.Client(base_url=harness.server.url, headers={"X-Clinia-API-Key": KEY}) as client:
        client.put(f"/sources/{SOURCE}/v1/profiles/{key}", json=body).raise_for_status()


def test_off_profile_events_are_dead_lettered_at_publish_and_never_sent(
    harness_factory: HarnessFactory,
) -> None:
    harness = harness_factory()
    events = [
        office("ok-o1", "o1", {"name": "North", "active": True}),
        resource("provider", "ok-p1", "p1", {"name": "Dr A", "practiceNumber": 12}),
        link("ok-l1", ("office", "o1"), ("provider", "p1")),
        office("bad-extra", "o2", {"name": "South", "UNKNOWN": "x"}),
        resource("provider", "bad-type", "p2", {"practiceNumber": "twelve"}),
        office("bad-date", "o3", {"openedOn": "2026-02-30"}),
        link("bad-ends", ("provider", "p1"), ("provider", "p1")),
        resource("clinic", "bad-kind", "c1", {"name": "x"}),
    ]

    report = harness.publish(events)

    refused = {e.event_id: {(p.field, p.reason) for p in e.problems} for e in report.errors}
    assert refused == {
        "bad-extra": {("data.UNKNOWN", "is not a property of the profile")},
        "bad-type": {("data.practiceNumber", "expected integer, got string")},
        "bad-date": {("data.openedOn", "is not a valid date")},
        "bad-ends": {("from.type", "relationship 'provider-office' needs 'office'")},
        "bad-kind": {("type", f"profile 'clinic' does not exist in source '{SOURCE}'")},
    }
    assert [a.event_id for a in report.accepted] == ["ok-o1", "ok-p1", "ok-l1"]
    letters = {d.event_id: d for d in list_dead_letters(harness.deps, DlqFilter(stage="publish"))}
    assert set(letters) == set(refused)
    assert letters["bad-extra"].message == "data.UNKNOWN: is not a property of the profile"
    status = event_status(harness.deps.store, "bad-type")
    assert status.status == "dead_lettered"
    assert status.error == {
        "problems": [{"field": "data.practiceNumber", "reason": "expected integer, got string"}]
    }

    harness.drain()

    assert not sent_ids(harness) & {"o2", "p2", "o3", "c1"}
    assert event_status(harness.deps.store, "ok-l1").status == "applied"
    assert harness.registry.snapshot(SOURCE)["resources"]
    # each profile and definition was read once; a second call reads only the cached versions
    assert sorted(profile_reads(harness)) == sorted(
        f"/sources/{SOURCE}/v1/{kind}/{key}"
        for kind, key in [
            ("profiles", "office"),
            ("profiles", "provider"),
            ("profiles", "clinic"),
            ("relationship-definitions", "provider-office"),
        ]
    )
    again = harness.publish([office("ok-o4", "o4", {"name": "East"})])
    assert again.errors == []
    assert len(profile_reads(harness)) == 4


def test_a_profile_changed_in_the_registry_is_seen_while_events_flow(
    harness_factory: HarnessFactory,
) -> None:
    harness = harness_factory(profile_ttl_s=3600)
    first = harness.publish([office(f"a{i}", f"o{i}", {"name": f"o{i}"}) for i in range(5)])
    assert first.errors == []
    harness.drain()

    # More permissive: a new property. The cache (an hour's TTL) still holds the old version; the
    # refusal is checked against a fresh read, so none of these is refused.
    wider = {
        **DEFAULT_PROFILES["office"],
        "properties": {**DEFAULT_PROFILES["office"]["properties"], "floor": {"type": "integer"}},
    }
    put_profile(harness, "office", wider)
    second = harness.publish(
        [office(f"b{i}", f"o{i}", {"name": "x", "floor": i}) for i in range(5)]
    )
    assert second.errors == []
    harness.drain()
    assert all(event_status(harness.deps.store, f"b{i}").status == "applied" for i in range(5))

    # Stricter: `name` required. Events published before the refresh pass the cached profile;
    # the Registry refuses them as off-profile, which drops the cached version, and the next
    # publish refuses at once.
    stricter = {
        **wider,
        "properties": {
            **wider["properties"],
            "name": {"type": "string", "rules": [{"required": True}]},
        },
    }
    put_profile(harness, "office", stricter)
    late = harness.publish([office("c0", "o0", {"floor": 1})])
    assert late.errors == []
    harness.drain()
    assert event_status(harness.deps.store, "c0").status == "dead_lettered"
    assert str(event_status(harness.deps.store, "c0").error).find("invalid schema for office") >= 0
    refused = harness.publish([office("c1", "o1", {"floor": 1}), office("c2", "o2", {"name": "y"})])
    assert [(e.event_id, e.problems[0].field) for e in refused.errors] == [("c1", "data.name")]
    harness.drain()
    assert event_status(harness.deps.store, "c2").status == "applied"
    publish_letters = list_dead_letters(harness.deps, DlqFilter(stage="publish"))
    assert [d.event_id for d in publish_letters] == ["c1"]


@pytest.mark.parametrize(
    "effect",
    [
        {"kind": "status", "status": 403},
        {"kind": "status", "status": 404},
        {"kind": "status", "status": 501},
        {"kind": "drop"},
    ],
    ids=["403", "404-route", "501", "unreachable"],
)
def test_publish_goes_on_without_pre_validation_when_profiles_cannot_be_read(
    harness_factory: HarnessFactory, effect: dict[str, Any]
) -> None:
    harness = harness_factory()
    for route in ("get_profile", "get_relationship_definition"):
        harness.add_fault({"route": route, "effect": effect})

    with structlog.testing.capture_logs() as logs:
        first = harness.publish(
            [office("u1", "o1", {"name": "A", "UNKNOWN": 1}), office("u2", "o2", {"name": "B"})]
        )
        second = harness.publish([office("u3", "o3", {"name": "C", "UNKNOWN": 2})])

    assert first.errors == []  # not refused: nothing could judge them
    assert second.errors == []
    lines = [e for e in logs if e["event"] == "publish.profiles_unreadable"]
    assert len(lines) == 1, lines
    assert lines[0]["source"] == SOURCE
    assert KEY not in str(lines[0])
    assert harness.deps.store.client.hexists(profile_versions_key(SOURCE), UNREADABLE_FIELD)
    assert len(profile_reads(harness)) == 1  # the next read waits for profile_retry_ms
    samples = {
        s.labels["source"]: s.value
        for family in metrics_registry(harness.deps.store).collect()
        if family.name == "clinia_ingest_profiles_unreadable"
        for s in family.samples
    }
    assert samples == {SOURCE: 1.0}
    harness.drain()
    # the Registry judged them: the off-profile ones failed there, the other one applied
    assert event_status(harness.deps.store, "u1").status == "dead_lettered"
    assert event_status(harness.deps.store, "u2").status == "applied"


def test_profiles_readable_again_clear_the_mark_and_validation_resumes(
    harness_factory: HarnessFactory,
) -> None:
    harness = harness_factory(profile_retry_ms=1)
    harness.add_fault(
        {"route": "get_profile", "times": 1, "effect": {"kind": "status", "status": 401}}
    )
    assert harness.publish([office("r1", "o1", {"name": "A", "UNKNOWN": 1})]).errors == []
    client = harness.deps.store.client
    assert client.hexists(profile_versions_key(SOURCE), UNREADABLE_FIELD)

    later = harness.publish([office("r2", "o2", {"name": "B", "UNKNOWN": 1})])

    assert [e.event_id for e in later.errors] == ["r2"]
    assert not client.hexists(profile_versions_key(SOURCE), UNREADABLE_FIELD)
    version = str(client.hget(profile_versions_key(SOURCE), "p:office")).split(":")[0]
    assert COMPILED.get("p", "office", version) is not None


def test_a_superseded_off_profile_event_is_refused_at_publish_not_coalesced(
    harness_factory: HarnessFactory,
) -> None:
    harness = harness_factory()
    report = harness.publish(
        [office("first", "o1", {"name": "A", "UNKNOWN": 1}), office("latest", "o1", {"name": "B"})]
    )

    assert [(e.event_id, e.problems[0].field) for e in report.errors] == [("first", "data.UNKNOWN")]
    harness.drain()
    assert event_status(harness.deps.store, "first").status == "dead_lettered"
    assert event_status(harness.deps.store, "latest").status == "applied"

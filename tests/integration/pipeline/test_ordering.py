"""Order across groups (invariant 3): what a group decides never overrides publish order."""

from __future__ import annotations

from typing import Any

import pytest

from emulator.config import EmulatorConfig, SourceMode
from worker.pipeline import flush
from worker.results import event_status

from .checks import check_against_oracle
from .conftest import SOURCE, HarnessFactory

pytestmark = pytest.mark.integration


def resource(eid: str, action: str, type_: str, id_: str | None = None, **extra: Any):
    event: dict[str, Any] = {
        "eventId": eid, "sourceKey": SOURCE, "target": "resource", "action": action,
        "type": type_, **extra,
    }  # fmt: skip
    if id_ is not None:
        event["id"] = id_
    if action != "DELETE" and "data" not in event:
        event["data"] = {"name": eid}
    return event


def link(eid: str, action: str, office: str, provider: dict[str, str], **extra: Any):
    event: dict[str, Any] = {
        "eventId": eid, "sourceKey": SOURCE, "target": "relationship", "action": action,
        "type": "provider-office", "from": {"type": "office", "id": office},
        "to": {"type": "provider", **provider}, **extra,
    }  # fmt: skip
    if action != "DELETE":
        event["data"] = {"description": eid}
    return event


def test_pipeline_entity_named_in_several_groups_keeps_publish_order(
    harness_factory: HarnessFactory,
):
    # Given one entity's changes, each naming another group (groups are packing preferences)
    harness = harness_factory()
    report = harness.publish(
        [
            resource("a1", "UPSERT", "provider", "p1", group="west"),
            resource("a2", "UPSERT", "provider", "p1", group="east", data={"name": "second"}),
            resource("a3", "DELETE", "provider", "p1", group="north"),
            resource("a4", "UPSERT", "provider", "p1", group="south", data={"name": "back"}),
        ]
    )

    # Then each keeps the group it named, and they apply in publish order
    assert [a.group for a in report.accepted] == ["west", "east", "north", "south"]
    harness.drain()
    check_against_oracle(harness.deps, harness.registry, SOURCE, harness.stored_events())


@pytest.mark.parametrize("mode", [SourceMode.SYNC, SourceMode.ASYNC], ids=["sync", "async"])
def test_pipeline_relationship_waits_for_ends_buffered_in_other_groups(
    harness_factory: HarnessFactory, mode
):
    # Given a relationship in its own group, to an office and a new provider (by ref) whose
    # writes wait in two other groups
    harness = harness_factory(EmulatorConfig(mode=mode))
    harness.publish(
        [
            resource("b1", "CREATE", "provider", ref="fresh", group="providers"),
            resource("b2", "UPSERT", "office", "o1", group="offices"),
            link("b3", "CREATE", "o1", {"ref": "fresh"}, group="links"),
        ]
    )

    # When only the relationship's group is flushed
    result = flush(harness.deps, SOURCE, ["links"])

    # Then its ends' buffers went with it, in one bundle, resources first
    assert result.bundles_reserved == 1
    assert result.events_read == 3
    harness.drain()
    targets = [w["target"] for w in harness.registry.write_log()]
    assert targets == ["resource", "resource", "relationship"]
    check_against_oracle(harness.deps, harness.registry, SOURCE, harness.stored_events())


def test_pipeline_later_round_waits_inside_a_bundle_for_the_entity_an_earlier_one_holds(
    harness_factory: HarnessFactory,
):
    # Given an office write planned and committed by one round, not yet sent
    harness = harness_factory(flush_read_limit=1)
    harness.publish(
        [
            resource("c1", "UPSERT", "office", "o2", group="offices"),
            resource("c2", "UPSERT", "provider", "p2", group="providers"),
            link("c3", "UPSERT", "o2", {"id": "p2"}, group="links"),
        ]
    )
    harness.deps.nudge = lambda kind, source, ids: None
    first = harness.deps.store.read_ready(
        SOURCE, token="t1", lease_ms=10_000, limit=1, max_bytes=10**6
    )
    assert [e.event_id for e in first.events] == ["c1"]

    # When the next rounds read the provider and the relationship meanwhile
    from worker.flow.planning import plan_round

    planned = plan_round(harness.deps, SOURCE, first)
    statuses = harness.deps.store.commit(
        SOURCE, first, bundles=[p.commit for p in planned.bundles], rejected=[], now_ms=0
    )
    assert statuses is not None
    assert [s for s, _ in statuses.values()] == ["ready"]
    flush(harness.deps, SOURCE)
    flush(harness.deps, SOURCE)

    # Then each was read once and committed in a bundle waiting for the office's, never sent
    stats = harness.deps.store.client.hgetall(f"ingest:{{{SOURCE}}}:stats")
    assert int(stats["read"]) == 3
    assert harness.registry.write_log()[-1]["target"] == "resource"
    assert event_status(harness.deps, "c3").status == "in_flight"
    assert not any(w["target"] == "relationship" for w in harness.registry.write_log())
    harness.drain()
    check_against_oracle(harness.deps, harness.registry, SOURCE, harness.stored_events())


@pytest.mark.parametrize("mode", [SourceMode.SYNC, SourceMode.ASYNC], ids=["sync", "async"])
def test_pipeline_relationship_change_then_end_deleted_keeps_publish_order(
    harness_factory: HarnessFactory, mode
):
    # Given a Registry holding o3, p3 and their relationship
    harness = harness_factory(EmulatorConfig(mode=mode))
    harness.publish(
        [
            resource("d1", "UPSERT", "office", "o3"),
            resource("d2", "UPSERT", "provider", "p3"),
            link("d3", "UPSERT", "o3", {"id": "p3"}),
        ]
    )
    harness.drain()

    # When the relationship changes (group "links"), then its provider is deleted (group "gone")
    # and the provider's group is flushed first
    harness.publish(
        [
            link("d4", "UPSERT", "o3", {"id": "p3"}, group="links"),
            resource("d5", "DELETE", "provider", "p3", group="gone"),
            link("d6", "UPSERT", "o3", {"id": "p3"}, group="links"),
        ]
    )
    flush(harness.deps, SOURCE, ["gone"])
    harness.drain()

    # Then, as one by one: d4 applied, d5 deleted the provider (and the relationship with it),
    # d6 failed for its missing end
    check_against_oracle(harness.deps, harness.registry, SOURCE, harness.stored_events())
    assert event_status(harness.deps, "d4").status == "applied"
    assert event_status(harness.deps, "d5").status == "applied"
    assert event_status(harness.deps, "d6").status == "dead_lettered"

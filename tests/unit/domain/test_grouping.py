"""Grouping: named groups, redirection to the buffer holding the entity, atomic batches, closure."""

from __future__ import annotations

import pytest

from worker.domain.grouping import (
    GroupConflict,
    Placement,
    default_group,
    flush_set,
    named_group,
    place_event,
    place_events,
    touched_resources,
)
from worker.domain.keys import EntityKey, ResourceKey, key_of

from .factories import rel, res


def test_default_group_of_a_resource_is_its_own_type_and_id():
    assert default_group(res("UPSERT", "office", "o1")) == "office:o1"


def test_default_group_of_a_relationship_is_its_from_resource():
    assert default_group(rel("UPSERT", frm=("office", "o1"), to=("provider", "p1"))) == "office:o1"


def test_named_group_prefers_the_event_group_over_the_function():
    event = res("UPSERT", group="batch-7")
    assert named_group(event) == "batch-7"
    assert named_group(res("UPSERT"), lambda e: "fixed") == "fixed"


def test_named_group_refuses_a_function_that_makes_an_unsafe_name():
    with pytest.raises(ValueError, match="group"):
        named_group(res("UPSERT"), lambda e: "{bad}")


@pytest.mark.parametrize(
    ("pending", "expected", "redirected"),
    [(None, "asked", False), ("elsewhere", "elsewhere", True), ("asked", "asked", False)],
)
def test_place_event_joins_the_buffer_that_already_holds_the_entity(pending, expected, redirected):
    placement = place_event(res("UPSERT", group="asked"), pending_group=pending)
    assert placement == Placement(group=expected, named="asked")
    assert placement.redirected is redirected


def test_place_events_keeps_one_entity_in_one_buffer_within_a_batch():
    events = [res("UPSERT", group="g1"), res("UPSERT", group="g2"), res("UPSERT", "o", "x")]
    placements = place_events(events, pending_group_of=lambda key: None)
    assert [p.group for p in placements if isinstance(p, Placement)] == ["g1", "g1", "o:x"]


def test_place_events_asks_the_store_where_entities_are_pending():
    held = {key_of(res("UPSERT")): "older"}
    placements = place_events([res("UPSERT", group="new")], pending_group_of=held.get)
    assert placements == (Placement(group="older", named="new"),)


def test_place_events_puts_an_atomic_batch_in_one_buffer():
    batch = [
        res("UPSERT", "office", "o1", atomicBatch="b1"),
        res("UPSERT", "provider", "p1", atomicBatch="b1"),
    ]
    held: dict[EntityKey, str] = {key_of(batch[1]): "provider-buffer"}
    placements = place_events(batch, pending_group_of=held.get)
    assert [p.group for p in placements if isinstance(p, Placement)] == ["provider-buffer"] * 2


def test_place_events_refuses_an_atomic_batch_spread_over_buffers():
    batch = [
        res("UPSERT", "office", "o1", atomicBatch="b1"),
        res("UPSERT", "provider", "p1", atomicBatch="b1"),
    ]
    held: dict[EntityKey, str] = {key_of(batch[0]): "g1", key_of(batch[1]): "g2"}
    placements = place_events(batch, pending_group_of=held.get)
    assert placements == (GroupConflict(("g1", "g2")),) * 2
    assert "g1, g2" in str(placements[0])


def test_flush_set_carries_buffers_that_touch_the_same_resources_transitively():
    office, provider, clinic = (ResourceKey("src", t, "1") for t in ("office", "provider", "c"))
    touches = {"A": [office], "B": [office, provider], "C": [provider], "D": [clinic]}
    by_resource: dict[ResourceKey, list[str]] = {}
    for group, resources in touches.items():
        for resource in resources:
            by_resource.setdefault(resource, []).append(group)
    result = flush_set(
        "A",
        resources_of=lambda g: touches[g],
        groups_touching=lambda r: by_resource.get(r, []),
        max_groups=10,
    )
    assert set(result.groups) == {"A", "B", "C"}
    assert result.groups[0] == "A"
    assert result.complete


def test_flush_set_reports_incomplete_when_the_cap_is_reached():
    chain = {
        f"g{i}": [ResourceKey("src", "t", str(i)), ResourceKey("src", "t", str(i + 1))]
        for i in range(10)
    }
    by_resource: dict[ResourceKey, list[str]] = {}
    for group, resources in chain.items():
        for resource in resources:
            by_resource.setdefault(resource, []).append(group)
    result = flush_set(
        "g0",
        resources_of=lambda g: chain[g],
        groups_touching=lambda r: by_resource.get(r, []),
        max_groups=3,
    )
    assert len(result.groups) == 3
    assert not result.complete


def test_touched_resources_include_both_ends_of_a_relationship():
    events = [res("UPSERT", "office", "o9"), rel("UPSERT", frm=("office", "o1"), to=("p", "2"))]
    assert touched_resources(events) == {
        ResourceKey("src", "office", "o9"),
        ResourceKey("src", "office", "o1"),
        ResourceKey("src", "p", "2"),
    }


def test_place_events_counts_earlier_events_of_the_call_as_pending_for_a_batch():
    before = res("UPSERT", "provider", "p1")
    batch = [
        res("UPSERT", "office", "o1", atomicBatch="b1"),
        res("UPSERT", "provider", "p1", atomicBatch="b1"),
    ]
    placements = place_events([before, *batch], pending_group_of=lambda key: None)
    assert placements == (
        Placement(group="provider:p1", named="provider:p1"),
        Placement(group="provider:p1", named="office:o1"),
        Placement(group="provider:p1", named="provider:p1"),
    )


def test_place_events_refuses_a_batch_whose_entities_the_call_already_spread_over_buffers():
    earlier = [res("UPSERT", "provider", "p1", group="g1"), res("UPSERT", "office", "o1")]
    batch = [
        res("UPSERT", "office", "o1", atomicBatch="b1"),
        res("UPSERT", "provider", "p1", atomicBatch="b1"),
    ]
    after = res("UPSERT", "office", "o1", group="g9")
    placements = place_events([*earlier, *batch, after], pending_group_of=lambda key: None)
    conflict = GroupConflict(("g1", "office:o1"))
    assert placements[2:4] == (conflict, conflict)
    assert placements[4] == Placement(group="office:o1", named="g9")


def test_place_events_lets_later_events_of_the_call_join_the_batch_buffer():
    batch = [
        res("UPSERT", "office", "o1", atomicBatch="b1"),
        res("UPSERT", "provider", "p1", atomicBatch="b1"),
    ]
    after = res("UPSERT", "provider", "p1", group="elsewhere")
    held: dict[EntityKey, str] = {key_of(batch[0]): "held"}
    placements = place_events([*batch, after], pending_group_of=held.get)
    assert [p.group for p in placements if isinstance(p, Placement)] == ["held"] * 3

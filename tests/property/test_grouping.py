"""Invariant 3 for grouping: an entity's pending events are in one buffer at a time.

Events are published in calls, each placed with `place_events` given where entities are pending
now; between calls, random buffers flush (a flush takes `flush_set`'s whole closure, checked to be
closed, or waits when the closure is over its cap). Groups named by the events change over time,
so one entity is often named under several groups. After every call, every entity's pending
events sit in one buffer, and every placement is the one the documented rules give.
"""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given
from hypothesis import strategies as st

from tests.property.buffers import Buffers, calls_of, flush_groups, holders, publish_call
from tests.property.streams import Scenario, publish, scenarios
from worker.domain.events import ChangeEvent
from worker.domain.grouping import GroupConflict, Placement, named_group
from worker.domain.keys import key_of


def expected_placements(
    call: Sequence[ChangeEvent], buffers: Buffers
) -> list[Placement | GroupConflict]:
    """The rules, event by event on a copy of the buffers: an event joins the buffer holding its
    entity, else its named group; a batch joins the one buffer holding any of its entities, else
    its first event's group, and is refused when its entities are pending in several."""
    model = {group: list(pending) for group, pending in buffers.items()}
    results: list[Placement | GroupConflict] = []
    batch_result: dict[str, Placement | GroupConflict] = {}
    for event in call:
        batch = event.atomic_batch
        result: Placement | GroupConflict
        if batch is None:
            held = holders(model, key_of(event))
            result = Placement(min(held) if held else named_group(event), named_group(event))
        else:
            if batch not in batch_result:
                members = [e for e in call if e.atomic_batch == batch]
                held = set().union(*(holders(model, key_of(e)) for e in members))
                first = named_group(members[0])
                batch_result[batch] = (
                    GroupConflict(tuple(sorted(held)))
                    if len(held) > 1
                    else Placement(min(held) if held else first, first)
                )
            result = batch_result[batch]
            if isinstance(result, Placement):
                result = Placement(result.group, named_group(event))
        if isinstance(result, Placement):
            model.setdefault(result.group, []).append(event)
        results.append(result)
    return results


@given(scenario=scenarios(max_steps=14), data=st.data())
def test_place_events_keeps_an_entitys_pending_events_in_one_buffer(
    scenario: Scenario, data: st.DataObject
) -> None:
    cuts = data.draw(st.lists(st.booleans(), min_size=len(scenario.events)))
    buffers: Buffers = {}
    for call in calls_of(scenario.events, cuts):
        expected = expected_placements(call, buffers)
        placements = publish_call(buffers, call)
        for event in call:
            assert len(holders(buffers, key_of(event))) <= 1, (event.event_id, sorted(buffers))
        assert placements == expected
        for _ in range(data.draw(st.integers(0, 2))):
            if buffers:
                group = data.draw(st.sampled_from(sorted(buffers)))
                flushed = flush_groups(buffers, group, data.draw(st.integers(1, 4)))
                for name in flushed or ():
                    del buffers[name]


def _upsert(event_id: str, type_: str, id_: str, batch: str | None = None) -> dict[str, object]:
    raw: dict[str, object] = {
        "eventId": event_id,
        "sourceKey": "src",
        "target": "resource",
        "action": "UPSERT",
        "type": type_,
        "id": id_,
        "data": {"name": event_id},
    }
    if batch is not None:
        raw["atomicBatch"] = batch
    return raw


def test_place_events_counts_earlier_events_of_the_call_as_pending_for_a_batch() -> None:
    call = publish(
        [
            _upsert("e0", "provider", "p1"),
            _upsert("e1", "office", "o1", batch="b1"),
            _upsert("e2", "provider", "p1", batch="b1"),
        ]
    )
    buffers: Buffers = {}
    publish_call(buffers, call)
    assert holders(buffers, key_of(call[0])) == {"provider:p1"}

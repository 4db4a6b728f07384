"""Invariants 8 and 10 for ids: every CREATE gets its id at publish, refs resolve, ids stick.

Random publish calls (refs defined, used, used before definition, defined twice; CREATEs without
id or ref; events published again) go through `assign_ids`, and what it reports as new is
persisted between calls, as the store does. A small model of the rules (written here, not taken
from the code) says what each event must become.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from api_client.ids import is_resource_id
from tests.property.streams import Draw, generated_ids
from worker.domain.events import ChangeEvent, EventError, Target, parse_event
from worker.domain.refs import assign_ids

REFS = ("r0", "r1", "r2", "r3")

JSON = dict[str, Any]


def _parsed(raw: JSON) -> ChangeEvent:
    event = parse_event(raw, new_event_id=lambda: "unused")
    assert isinstance(event, ChangeEvent), event
    return event


@st.composite
def calls(draw: Draw) -> list[list[JSON]]:
    """Publish calls of raw events; an event may come again, under its first event id."""
    result: list[list[JSON]] = []
    creates: list[JSON] = []
    count = 0
    for _ in range(draw(st.integers(1, 4))):
        call: list[JSON] = []
        for _ in range(draw(st.integers(1, 6))):
            count += 1
            base: JSON = {"eventId": f"e{count}", "sourceKey": "src"}
            kind = draw(st.integers(0, 5))
            if kind == 0 and creates and not call:
                call.append(draw(st.sampled_from(creates)))  # published again, same event id
                continue
            if kind <= 2:
                raw = {**base, "target": "resource", "action": "CREATE", "type": "provider"}
                raw["data"] = {"note": draw(st.sampled_from(REFS))}  # refs in data stay as is
                if kind != 1:
                    raw["ref"] = draw(st.sampled_from(REFS))
                creates.append(raw)
            elif kind == 3:
                action = draw(st.sampled_from(["UPSERT", "DELETE"]))
                raw = {**base, "target": "resource", "action": action, "type": "provider"}
                raw["ref"] = draw(st.sampled_from(REFS))
                if action == "UPSERT":
                    raw["data"] = {"note": "x"}
            else:
                ends = [
                    {"type": "office", "id": "o1"},
                    *({"type": "provider", "ref": r} for r in REFS),
                ]
                raw = {**base, "target": "relationship", "action": "UPSERT"}
                raw |= {"type": "provider-office", "data": {"description": raw["eventId"]}}
                raw["from"] = draw(st.sampled_from(ends))
                raw["to"] = draw(st.sampled_from(ends))
            call.append(raw)
        result.append(call)
    return result


@dataclass
class Model:
    """What the store knows between calls: live refs and ids first given to event ids."""

    refs: dict[str, str] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)
    issued: set[str] = field(default_factory=set)


def _check_create(event: ChangeEvent, result: ChangeEvent | EventError, model: Model) -> None:
    if isinstance(result, EventError):
        # Only a live ref defined again, by another event, is refused.
        assert event.ref is not None
        assert event.ref in model.refs
        assert [p.field for p in result.problems] == ["ref"]
        assert event.event_id not in model.ids
        return
    assert result.id is not None
    assert is_resource_id(result.id)
    assert result.generated_id
    assert result.data == event.data
    first = model.ids.get(event.event_id)
    if first is not None:
        assert result.id == first  # published again: the id first assigned to it
    else:
        assert result.id not in model.issued  # a fresh id, never given to another event
        model.ids[event.event_id] = result.id
        model.issued.add(result.id)
    if event.ref is not None:
        assert model.refs.setdefault(event.ref, result.id) == result.id


def _check_named(event: ChangeEvent, result: ChangeEvent | EventError, model: Model) -> None:
    wanted: dict[str, str | None] = {}
    if event.target is Target.RESOURCE:
        assert event.ref is not None
        wanted["ref"] = model.refs.get(event.ref)
    else:
        for name, end in (("from.ref", event.from_), ("to.ref", event.to)):
            if end is not None and end.ref is not None:
                wanted[name] = model.refs.get(end.ref)
    undefined = sorted(name for name, resolved in wanted.items() if resolved is None)
    if undefined:
        assert isinstance(result, EventError)
        assert sorted(p.field for p in result.problems) == undefined
        return
    assert isinstance(result, ChangeEvent)
    assert result.data == event.data
    if event.target is Target.RESOURCE:
        assert (result.id, result.ref) == (wanted["ref"], None)
        return
    for name, end in (("from.ref", result.from_), ("to.ref", result.to)):
        assert end is not None
        assert end.id is not None
        assert end.ref is None
        assert end.id == wanted.get(name, end.id)


@given(publish_calls=calls())
def test_assign_ids_gives_ids_resolves_refs_and_keeps_first_ids(
    publish_calls: list[list[JSON]],
) -> None:
    model = Model()
    new_id = generated_ids()
    for call in publish_calls:
        events = [_parsed(raw) for raw in call]
        before_refs, before_ids = dict(model.refs), dict(model.ids)
        assignment = assign_ids(
            events, known_refs=before_refs, known_event_ids=before_ids, new_id=new_id
        )
        assert len(assignment.results) == len(events)
        for index, (event, result) in enumerate(zip(events, assignment.results, strict=True)):
            if isinstance(result, EventError):
                assert (result.index, result.event_id) == (index, event.event_id)
            if event.target is Target.RESOURCE and event.action == "CREATE":
                _check_create(event, result, model)
            else:
                _check_named(event, result, model)
        # What the store must persist: exactly what this call added.
        new_refs = {r: i for r, i in model.refs.items() if r not in before_refs}
        new_ids = {e: i for e, i in model.ids.items() if e not in before_ids}
        assert dict(assignment.new_refs) == new_refs
        assert dict(assignment.new_event_ids) == new_ids

"""Id assignment and refs: ids at publish, refs resolved in id/from/to only, stable on republish."""

from __future__ import annotations

import pytest

from worker.domain.events import ChangeEvent, EventError
from worker.domain.refs import assign_ids

from .factories import ids_from, res


def _create_with_ref(ref: str, eid: str) -> ChangeEvent:
    return res("CREATE", id_=None, ref=ref, eid=eid)


def _rel_to_ref(ref: str, eid: str) -> ChangeEvent:
    return ChangeEvent.model_validate(
        {
            "eventId": eid,
            "sourceKey": "src",
            "target": "relationship",
            "action": "CREATE",
            "type": "works-at",
            "from": {"type": "office", "id": "o1"},
            "to": {"type": "provider", "ref": ref},
            "data": {"ref": ref},
        }
    )


def test_assign_ids_gives_every_create_without_id_a_fresh_id_in_the_pattern():
    events = [res("CREATE", id_=None, eid="a"), res("CREATE", id_=None, eid="b")]
    result = assign_ids(events, known_refs={}, known_event_ids={}, new_id=ids_from())
    assert [e.id for e in result.events] == ["gen00001", "gen00002"]
    assert all(e.generated_id for e in result.events)
    assert dict(result.new_event_ids) == {"a": "gen00001", "b": "gen00002"}
    assert result.errors == ()


def test_assign_ids_leaves_events_with_ids_alone():
    event = res("CREATE", id_="p9")
    result = assign_ids([event], known_refs={}, known_event_ids={}, new_id=ids_from())
    assert result.events == (event,)
    assert not result.new_event_ids


def test_assign_ids_defines_a_ref_and_resolves_it_in_later_from_and_to():
    events = [_create_with_ref("new-1", "a"), _rel_to_ref("new-1", "b")]
    result = assign_ids(events, known_refs={}, known_event_ids={}, new_id=ids_from())
    create, link = result.events
    assert create.id == "gen00001"
    assert create.ref == "new-1"
    assert link.to is not None
    assert link.to.id == "gen00001"
    assert link.to.ref is None
    assert dict(result.new_refs) == {"new-1": "gen00001"}


def test_assign_ids_never_resolves_refs_inside_data():
    events = [_create_with_ref("new-1", "a"), _rel_to_ref("new-1", "b")]
    result = assign_ids(events, known_refs={}, known_event_ids={}, new_id=ids_from())
    assert result.events[1].data == {"ref": "new-1"}


def test_assign_ids_resolves_a_ref_in_the_id_of_an_upsert_or_delete():
    upsert = res("UPSERT", id_=None, ref="known-1", eid="u")
    delete = res("DELETE", id_=None, ref="known-1", eid="d")
    result = assign_ids(
        [upsert, delete], known_refs={"known-1": "p77"}, known_event_ids={}, new_id=ids_from()
    )
    assert [(e.id, e.ref) for e in result.events] == [("p77", None), ("p77", None)]
    assert not result.new_refs


def test_assign_ids_refuses_an_undefined_ref_per_event():
    events = [_rel_to_ref("nowhere", "a"), res("UPSERT", id_=None, ref="nowhere", eid="b")]
    result = assign_ids(events, known_refs={}, known_event_ids={}, new_id=ids_from())
    assert result.events == ()
    fields = [[p.field for p in e.problems] for e in result.errors]
    assert fields == [["to.ref"], ["ref"]]
    assert [e.index for e in result.errors] == [0, 1]
    assert all("not defined" in e.problems[0].reason for e in result.errors)


def test_assign_ids_refuses_a_use_before_the_definition_in_one_batch():
    events = [_rel_to_ref("new-1", "a"), _create_with_ref("new-1", "b")]
    result = assign_ids(events, known_refs={}, known_event_ids={}, new_id=ids_from())
    assert isinstance(result.results[0], EventError)
    assert isinstance(result.results[1], ChangeEvent)


def test_assign_ids_refuses_redefining_a_live_ref():
    result = assign_ids(
        [_create_with_ref("r1", "new-event")],
        known_refs={"r1": "p1"},
        known_event_ids={},
        new_id=ids_from(),
    )
    (error,) = result.errors
    assert error.problems[0].field == "ref"
    assert "already defined" in error.problems[0].reason
    assert not result.new_refs
    assert not result.new_event_ids


def test_assign_ids_refuses_redefining_a_ref_within_one_batch():
    events = [_create_with_ref("r1", "a"), _create_with_ref("r1", "b")]
    result = assign_ids(events, known_refs={}, known_event_ids={}, new_id=ids_from())
    assert isinstance(result.results[0], ChangeEvent)
    assert isinstance(result.results[1], EventError)
    assert dict(result.new_refs) == {"r1": "gen00001"}


def test_assign_ids_gives_a_republished_event_its_first_id():
    first = assign_ids(
        [_create_with_ref("r1", "a")], known_refs={}, known_event_ids={}, new_id=ids_from()
    )
    again = assign_ids(
        [_create_with_ref("r1", "a")],
        known_refs=first.new_refs,
        known_event_ids=first.new_event_ids,
        new_id=ids_from("other"),
    )
    assert again.errors == ()
    assert again.events[0].id == first.events[0].id == "gen00001"
    assert not again.new_refs
    assert not again.new_event_ids


def test_assign_ids_gives_a_duplicate_in_one_batch_the_same_id():
    events = [res("CREATE", id_=None, eid="a"), res("CREATE", id_=None, eid="a")]
    result = assign_ids(events, known_refs={}, known_event_ids={}, new_id=ids_from())
    assert result.events[0].id == result.events[1].id


def test_assign_ids_keeps_a_live_ref_when_its_redefinition_is_refused():
    events = [_create_with_ref("r1", "a"), _rel_to_ref("r1", "b")]
    result = assign_ids(events, known_refs={"r1": "taken"}, known_event_ids={}, new_id=ids_from())
    assert isinstance(result.results[0], EventError)
    assert result.events[0].to is not None
    assert result.events[0].to.id == "taken"


def test_assign_ids_refuses_mixed_sources():
    events = [res("UPSERT", source="a"), res("UPSERT", source="b")]
    with pytest.raises(ValueError, match="one source"):
        assign_ids(events, known_refs={}, known_event_ids={}, new_id=ids_from())


def test_assign_ids_refuses_a_generator_outside_the_id_pattern():
    with pytest.raises(ValueError, match="new_id"):
        assign_ids(
            [res("CREATE", id_=None)], known_refs={}, known_event_ids={}, new_id=lambda: "a b"
        )


def test_assign_ids_results_are_resolved_and_valid_events():
    events = [_create_with_ref("r1", "a"), _rel_to_ref("r1", "b"), res("UPSERT")]
    result = assign_ids(events, known_refs={}, known_event_ids={}, new_id=ids_from())
    for event in result.events:
        assert event.is_resolved
        assert ChangeEvent.model_validate_json(event.to_json()) == event

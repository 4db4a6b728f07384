"""Entity keys: value semantics, a safe and unambiguous string form, and keys of events."""

from __future__ import annotations

import pytest

from worker.domain.keys import (
    RelationshipKey,
    ResourceKey,
    key_of,
    parse_key,
    resources_touched,
)

from .factories import rel, res


def test_resource_key_of_an_event_is_source_type_id():
    assert key_of(res("UPSERT", "office", "o1")) == ResourceKey("src", "office", "o1")


def test_relationship_key_of_an_event_names_type_and_both_ends():
    key = key_of(rel("UPSERT", "works-at", ("office", "o1"), ("provider", "p2")))
    assert key == RelationshipKey("src", "works-at", "office", "o1", "provider", "p2")
    assert key.endpoints == (
        ResourceKey("src", "office", "o1"),
        ResourceKey("src", "provider", "p2"),
    )


def test_key_of_refuses_an_unassigned_create():
    event = res("CREATE", id_=None)
    with pytest.raises(ValueError, match="unassigned"):
        key_of(event)


@pytest.mark.parametrize(
    "key",
    [
        ResourceKey("src", "office", "o1"),
        ResourceKey("s_1", "a-b", "-"),
        RelationshipKey("src", "works-at", "office", "1", "provider", "2"),
    ],
)
def test_entity_key_string_form_parses_back(key):
    text = str(key)
    assert text.isascii()
    assert "{" not in text
    assert " " not in text
    assert parse_key(text) == key


def test_entity_key_string_forms_never_collide_across_kinds():
    resource = ResourceKey("src", "a", "b")
    relationship = RelationshipKey("src", "a", "b", "c", "d", "e")
    assert str(resource) != str(relationship)
    assert str(resource).split(":")[0] != str(relationship).split(":")[0]


@pytest.mark.parametrize(
    ("source", "type_", "id_"),
    [("a:b", "t", "1"), ("s", "t:x", "1"), ("s", "t", "1:2"), ("s", "t", "é"), ("s", "t", "")],
)
def test_resource_key_refuses_parts_that_would_make_the_string_ambiguous(source, type_, id_):
    with pytest.raises(ValueError, match="entity key"):
        ResourceKey(source, type_, id_)


@pytest.mark.parametrize("text", ["", "res:a:b", "rel:a:b:c", "xyz:a:b:c", "res:a:b:c:d"])
def test_parse_key_refuses_foreign_text(text):
    with pytest.raises(ValueError, match="not an entity key"):
        parse_key(text)


def test_relationship_key_receipt_ids_follow_both_documented_forms():
    key = RelationshipKey("src", "provider-office", "office", "1", "provider", "2")
    assert key.receipt_id == "office.1,provider.2"
    assert key.short_receipt_id == "1.2"


def test_resources_touched_by_a_relationship_are_its_ends():
    key = RelationshipKey("src", "t", "a", "1", "b", "2")
    assert resources_touched(key) == key.endpoints
    assert resources_touched(key.from_key) == (key.from_key,)


def test_entity_keys_are_hashable_values():
    assert len({ResourceKey("s", "t", "1"), ResourceKey("s", "t", "1")}) == 1

"""Sources, profiles and relationship definitions: defaults, strict sources, replacement."""

from __future__ import annotations

import pytest

from emulator.registry import Registry
from tests.unit.emulator.conftest import FakeClock, RegistryFactory
from tests.unit.emulator.ops import bundle, office, provider, rel, res


def test_source_is_provisioned_with_the_seed_profiles(registry: Registry) -> None:
    provider_profile = registry.get_profile("new-source", "provider").body
    definition = registry.get_relationship_definition("new-source", "provider-office").body

    assert provider_profile["properties"]["practiceNumber"] == {"type": "integer"}
    assert provider_profile["properties"]["specialities"] == {
        "type": "array",
        "items": {"type": "string"},
    }
    assert definition["from"]["profileKey"] == "office"
    assert definition["to"]["profileKey"] == "provider"
    assert definition["properties"] == {"description": {"type": "string"}}


def test_source_strict_requires_explicit_creation(make_registry: RegistryFactory) -> None:
    registry = make_registry(strict_sources=True)

    missing = registry.bundle("hospital-a", bundle([office("1")]), raw_size=10)
    created = registry.create_source("hospital-a", {"type": "registry"})
    after = registry.bundle("hospital-a", bundle([office("1")]), raw_size=10)

    assert missing.status == 404
    assert missing.body["type"] == "NOT_FOUND"
    assert "hospital-a" in missing.body["message"]
    assert created.status == 200
    assert after.status == 200
    assert registry.get_profile("other", "office").status == 404


def test_source_create_refuses_a_bad_body_or_key(registry: Registry) -> None:
    assert registry.create_source("s", {"type": "warehouse"}).status == 400
    assert registry.create_source("bad/key", {"type": "registry"}).status == 400


def test_source_invalid_key_is_refused_everywhere(registry: Registry) -> None:
    reply = registry.get_resource("bad key", "office", "1")

    assert reply.status == 400
    assert reply.body["message"].startswith("sourceKey")


def test_source_unknown_resource_type_fails_failed_precondition(registry: Registry) -> None:
    reply = registry.bundle("s", bundle([res("UPSERT", "clinic", "1", data={})]), raw_size=10)

    error = reply.body["resourceOperationReceipts"][0]["error"]
    assert error["type"] == "FAILED_PRECONDITION"
    assert "clinic" in error["message"]


def test_profile_put_replaces_and_affects_future_writes_only(registry: Registry) -> None:
    registry.upsert_resource("s", "office", "1", {"data": {"name": "Old"}})
    profile = {
        "type": "ROOT",
        "properties": {
            "name": {"type": "string", "rules": [{"required": True}]},
            "beds": {"type": "integer"},
        },
    }

    assert registry.put_profile("s", "office", profile).status == 200

    assert registry.get_profile("s", "office").body == profile
    assert registry.get_resource("s", "office", "1").body["data"] == {"name": "Old"}
    assert registry.upsert_resource("s", "office", "2", {"data": {"beds": 3}}).status == 400
    assert (
        registry.upsert_resource("s", "office", "2", {"data": {"name": "N", "beds": 3}}).status
        == 200
    )
    assert registry.get_profile("other", "office").body != profile


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ([], "body"),
        ({"properties": {"x": {"type": "text"}}}, "properties.x.type"),
        ({"properties": {"x": {"type": "array"}}}, "properties.x.items"),
        ({"properties": {"x": {"type": "string", "rules": [{"min": "1"}]}}}, "rules[0].min"),
        ({"properties": {"x": {"type": "string", "rules": [{"pattern": "("}]}}}, "pattern"),
        ({"properties": {"x": {"type": "string", "rules": [{"often": 1}]}}}, "often"),
        ({"properties": {}, "type": "LEAF"}, "type"),
        (
            {"properties": {}, "contained": {"a": {"types": [], "cardinality": "0:1"}}},
            "contained.a.types",
        ),
        ({"properties": {}, "extra": 1}, "extra"),
    ],
)
def test_profile_put_refuses_a_malformed_profile(
    registry: Registry, body: object, fragment: str
) -> None:
    reply = registry.put_profile("s", "office", body)

    assert reply.status == 400
    assert reply.body["type"] == "INVALID_ARGUMENT"
    assert any(fragment in d["message"] for d in reply.body["details"]), reply.body
    assert registry.get_profile("s", "office").body["properties"]["name"] == {"type": "string"}


def test_profile_missing_is_404(registry: Registry) -> None:
    assert registry.get_profile("s", "clinic").status == 404
    assert registry.get_relationship_definition("s", "clinic-x").status == 404


def test_contained_profile_cannot_be_written_at_the_root(registry: Registry) -> None:
    registry.put_profile("s", "address", {"type": "CONTAINED", "properties": {}})

    reply = registry.upsert_resource("s", "address", "1", {"data": {}})

    assert reply.status == 400
    assert "CONTAINED" in reply.body["message"]


def test_relationship_definition_put_and_constraints(registry: Registry) -> None:
    definition = {
        "from": {"profileKey": "provider", "includeKey": "offices", "includeCardinality": "0:*"},
        "to": {"profileKey": "office", "includeKey": "staff"},
    }
    assert registry.put_relationship_definition("s", "works-at", definition).status == 200
    registry.bundle("s", bundle([office("1"), provider("2")]), raw_size=10)

    good = registry.create_relationship(
        "s",
        "works-at",
        {"from": {"id": "2", "type": "provider"}, "to": {"id": "1", "type": "office"}},
    )
    extra_data = registry.create_relationship(
        "s",
        "works-at",
        {
            "from": {"id": "2", "type": "provider"},
            "to": {"id": "1", "type": "office"},
            "data": {"description": "x"},
        },
    )

    assert good.status == 200
    assert extra_data.status == 400
    assert extra_data.body["details"][0]["message"] == (
        "additionalProperties 'description' not allowed"
    )


def test_relationship_definition_put_refuses_unknown_profiles_and_bad_shape(
    registry: Registry,
) -> None:
    unknown = {"from": {"profileKey": "clinic"}, "to": {"profileKey": "office"}}
    no_to = {"from": {"profileKey": "office"}}

    assert registry.put_relationship_definition("s", "x", unknown).body["type"] == (
        "FAILED_PRECONDITION"
    )
    reply = registry.put_relationship_definition("s", "x", no_to)
    assert reply.status == 400
    assert reply.body["details"][0]["message"].startswith("to")


def test_meta_in_the_future_is_relative_to_the_injected_clock(
    registry: Registry, clock: FakeClock
) -> None:
    meta = {"createdAt": "2024-11-27T15:43:10Z"}

    early = registry.upsert_resource("s", "office", "1", {"data": {}, "meta": meta})
    clock.advance(1)
    later = registry.upsert_resource("s", "office", "1", {"data": {}, "meta": meta})

    assert early.status == 400
    assert early.body["message"] == "invalid meta for office"
    assert "in the future" in early.body["details"][0]["message"]
    assert later.status == 200
    assert later.body["resource"]["meta"]["createdAt"] == "2024-11-27T15:43:10Z"


def test_meta_rules_apply_to_relationships(registry: Registry) -> None:
    registry.bundle("s", bundle([office("1"), provider("2")]), raw_size=10)
    meta = {"identifier": [{"system": "mdm", "value": "1"}]}

    reply = registry.bundle("s", bundle([], [rel("CREATE", "1", "2", meta=meta)]), raw_size=10)

    assert reply.body["relationshipOperationReceipts"][0]["error"]["type"] == "INVALID_ARGUMENT"

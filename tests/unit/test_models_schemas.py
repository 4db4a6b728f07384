"""The schemas: profiles with nested properties, relationship definitions and their ends."""

from __future__ import annotations

import json

from api_client.models import Profile, ProfileType, RelationshipDefinition, dump_json


def test_relationship_definition_from_end_round_trips() -> None:
    data = {
        "from": {"profileKey": "provider", "includeKey": "worksAt", "includeCardinality": "0:*"},
        "to": {"profileKey": "office", "includeKey": "staff", "cardinality": "0:*"},
        "description": "Works at",
    }
    definition = RelationshipDefinition.model_validate(data)

    assert definition.from_.include_key == "worksAt"
    assert definition.to.include_cardinality is None
    assert definition.to.model_extra == {"cardinality": "0:*"}
    assert json.loads(dump_json(definition)) == data


def test_profile_reads_nested_properties_rules_and_contained() -> None:
    profile = Profile.model_validate(
        {
            "type": "ROOT",
            "properties": {
                "name": {"type": "symbol", "rules": [{"required": True, "max": 120}]},
                "specialities": {"type": "array", "items": {"type": "code"}},
                "address": {
                    "type": "object",
                    "properties": {"city": {"type": "symbol", "rules": [{"min": 1.5}]}},
                },
            },
            "contained": {"phones": {"types": ["phone"], "cardinality": "0:*"}},
        }
    )

    name = profile.properties["name"]
    assert profile.type is ProfileType.ROOT
    assert name.rules is not None
    assert name.rules[0].required is True
    assert type(name.rules[0].max) is int
    items = profile.properties["specialities"].items
    assert items is not None
    assert items.type == "code"
    city = (profile.properties["address"].properties or {})["city"]
    assert city.rules is not None
    assert city.rules[0].min == 1.5
    assert profile.contained is not None
    assert profile.contained["phones"].types == ["phone"]

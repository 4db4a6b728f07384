"""Profiles and relationship definitions: the schemas a source's data is validated against."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from api_client._models_base import OpenProfileType, RegistryModel


class Rule(RegistryModel):
    """A validation rule; `min`/`max` bound a number's value or a string's or array's length."""

    required: bool | None = None
    min: int | float | None = None
    max: int | float | None = None
    enum: list[Any] | None = None
    pattern: str | None = None


class PropertyDefinition(RegistryModel):
    """The type of one property, with `items` for arrays and `properties` for objects."""

    type: str
    items: PropertyDefinition | None = None
    rules: list[Rule] | None = None
    properties: dict[str, PropertyDefinition] | None = None


class ContainedDefinition(RegistryModel):
    """What a profile may contain under one key: the allowed profiles and a cardinality (`0:*`)."""

    types: list[str] | None = None
    cardinality: str | None = None


class Profile(RegistryModel):
    """A resource type of a source: its properties, and for ROOT profiles what they contain."""

    type: OpenProfileType
    properties: dict[str, PropertyDefinition]
    contained: dict[str, ContainedDefinition] | None = None
    description: str | None = None


class RelationshipDefinitionEnd(RegistryModel):
    """One end of a relationship definition: the profile and the name of its traversal."""

    profile_key: str
    include_key: str | None = None
    include_cardinality: str | None = None


class RelationshipDefinition(RegistryModel):
    """A relationship type of a source, between a `from` profile and a `to` profile."""

    from_: RelationshipDefinitionEnd = Field(alias="from")
    to: RelationshipDefinitionEnd
    description: str | None = None
    properties: dict[str, PropertyDefinition] | None = None

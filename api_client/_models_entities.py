"""Resources, relationships and their metadata, as written to and read back from the Registry.

`from` is a Python keyword: the field is `from_`, aliased to "from". Both names construct a model,
and every dump writes "from".
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from api_client._models_base import RegistryModel


class Period(RegistryModel):
    """When an identifier was valid; dates stay the Registry's own text (partial dates exist)."""

    start: str | None = None
    end: str | None = None


class Identifier(RegistryModel):
    """A business identifier of an entity, distinct per (system, use, value)."""

    system: str | None = None
    value: str | None = None
    use: str | None = None
    period: Period | None = None


class Meta(RegistryModel):
    """Provenance of a write: timestamps kept as sent (RFC 3339 text), identifiers, source."""

    created_at: str | None = None
    updated_at: str | None = None
    identifier: list[Identifier] | None = None
    source: str | None = None


class EntityRef(RegistryModel):
    """One end of a relationship: a resource named by type and id (or a bundle virtual id)."""

    id: str
    type: str


class ResourcePayload(RegistryModel):
    """The body of a resource CREATE or UPSERT; `id` may be omitted or virtual on CREATE only."""

    type: str
    id: str | None = None
    data: dict[str, Any]
    contained: dict[str, Any] | None = None
    meta: Meta | None = None


class ResourceDeletePayload(RegistryModel):
    """The body of a resource DELETE: the target alone."""

    id: str
    type: str


class RelationshipPayload(RegistryModel):
    """The body of a relationship CREATE or UPSERT; `type` is the relationship-definition key."""

    type: str
    from_: EntityRef = Field(alias="from")
    to: EntityRef
    data: dict[str, Any] | None = None
    meta: Meta | None = None


class RelationshipDeletePayload(RegistryModel):
    """The body of a relationship DELETE: the relationship named by its type and both ends."""

    type: str
    from_: EntityRef = Field(alias="from")
    to: EntityRef


class Resource(RegistryModel):
    """A resource as the Registry answers it (read-only `meta.source` included)."""

    id: str | None = None
    type: str
    data: dict[str, Any] | None = None
    contained: dict[str, Any] | None = None
    meta: Meta | None = None


class Relationship(RegistryModel):
    """A relationship as the Registry answers it."""

    id: str | None = None
    type: str
    from_: EntityRef = Field(alias="from")
    to: EntityRef
    data: dict[str, Any] | None = None
    meta: Meta | None = None

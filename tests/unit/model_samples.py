"""Sample models shared by the model tests: two entity refs, a provider and a link between them."""

from __future__ import annotations

from typing import Any

from api_client.models import EntityRef, RelationshipPayload, ResourcePayload

OFFICE = EntityRef(id="1", type="office")
PROVIDER = EntityRef(id="2", type="provider")


def provider(**changes: Any) -> ResourcePayload:
    """A provider resource; keyword arguments replace its fields."""
    fields: dict[str, Any] = {"type": "provider", "id": "p-17", "data": {"name": "John Doe"}}
    return ResourcePayload(**(fields | changes))


def link() -> RelationshipPayload:
    """The relationship from OFFICE to PROVIDER."""
    return RelationshipPayload(type="provider-office", from_=OFFICE, to=PROVIDER)

"""The requests we send: operations, bundles, bulk requests, a single relationship create, purge.

An operation carries its payload under exactly one key, the lowercased action ("create", "upsert"
or "delete"); the validator refuses anything else, so a request we build is correct by
construction. An action this client does not know is kept (a request read by the emulator may carry
one); its payload then sits under its own lowercased key among the unknown fields.
"""

from __future__ import annotations

from typing import Any, Self, TypeVar

from pydantic import Field, model_validator

from api_client._models_base import Action, OpenAction, RegistryModel
from api_client._models_entities import (
    EntityRef,
    Meta,
    RelationshipDeletePayload,
    RelationshipPayload,
    ResourceDeletePayload,
    ResourcePayload,
)

_Write = TypeVar("_Write", bound=RegistryModel)
_Delete = TypeVar("_Delete", bound=RegistryModel)


def _check_payload_keys(
    action: Action | str, present: dict[str, bool], extra: dict[str, Any] | None
) -> None:
    """Raise unless the payload sits under the key named after `action`, and only there."""
    expected = action.lower()
    for key, is_present in present.items():
        if is_present and key != expected:
            raise ValueError(
                f"{key!r} is not allowed when action is {str(action)!r}: an operation carries "
                f"its payload only under the key named after its action ({expected!r})"
            )
    found = present[expected] if expected in present else (extra or {}).get(expected) is not None
    if not found:
        raise ValueError(f"{expected!r} is required when action is {str(action)!r}")


def _payload_of(
    action: Action | str, create: _Write | None, upsert: _Write | None, delete: _Delete | None
) -> _Write | _Delete:
    """The payload under the key of `action`; the validator has already checked it is there."""
    payload: _Write | _Delete | None
    if action == Action.CREATE:
        payload = create
    elif action == Action.UPSERT:
        payload = upsert
    elif action == Action.DELETE:
        payload = delete
    else:
        raise ValueError(f"action: {str(action)!r} is not an action this client knows")
    if payload is None:  # only reachable through model_construct, which skips the validator
        raise ValueError(f"{action.lower()!r}: missing for action {str(action)!r}")
    return payload


class ResourceOperation(RegistryModel):
    """One resource write in a bundle or a bulk request."""

    action: OpenAction
    create: ResourcePayload | None = None
    upsert: ResourcePayload | None = None
    delete: ResourceDeletePayload | None = None

    @model_validator(mode="after")
    def _payload_named_after_action(self) -> Self:
        present = {
            "create": self.create is not None,
            "upsert": self.upsert is not None,
            "delete": self.delete is not None,
        }
        _check_payload_keys(self.action, present, self.model_extra)
        return self

    @classmethod
    def for_create(cls, payload: ResourcePayload) -> Self:
        """A CREATE of `payload` (its id may be omitted, or virtual inside a bundle)."""
        return cls(action=Action.CREATE, create=payload)

    @classmethod
    def for_upsert(cls, payload: ResourcePayload) -> Self:
        """An UPSERT (full replace, or create when missing) of `payload`."""
        return cls(action=Action.UPSERT, upsert=payload)

    @classmethod
    def for_delete(cls, id: str, type: str) -> Self:
        """A DELETE of the resource `type`/`id`."""
        return cls(action=Action.DELETE, delete=ResourceDeletePayload(id=id, type=type))

    @property
    def payload(self) -> ResourcePayload | ResourceDeletePayload:
        """The payload under the action's key.

        Raises:
            ValueError: the action is not one this client knows (only possible on parsed input).
        """
        return _payload_of(self.action, self.create, self.upsert, self.delete)


class RelationshipOperation(RegistryModel):
    """One relationship write in a bundle or a bulk request."""

    action: OpenAction
    create: RelationshipPayload | None = None
    upsert: RelationshipPayload | None = None
    delete: RelationshipDeletePayload | None = None

    @model_validator(mode="after")
    def _payload_named_after_action(self) -> Self:
        present = {
            "create": self.create is not None,
            "upsert": self.upsert is not None,
            "delete": self.delete is not None,
        }
        _check_payload_keys(self.action, present, self.model_extra)
        return self

    @classmethod
    def for_create(cls, payload: RelationshipPayload) -> Self:
        """A CREATE of `payload`; its ends may be virtual ids inside a bundle."""
        return cls(action=Action.CREATE, create=payload)

    @classmethod
    def for_upsert(cls, payload: RelationshipPayload) -> Self:
        """An UPSERT of `payload`."""
        return cls(action=Action.UPSERT, upsert=payload)

    @classmethod
    def for_delete(cls, type: str, from_: EntityRef, to: EntityRef) -> Self:
        """A DELETE of the relationship `type` between `from_` and `to`."""
        return cls(
            action=Action.DELETE,
            delete=RelationshipDeletePayload(type=type, from_=from_, to=to),
        )

    @property
    def payload(self) -> RelationshipPayload | RelationshipDeletePayload:
        """The payload under the action's key.

        Raises:
            ValueError: the action is not one this client knows (only possible on parsed input).
        """
        return _payload_of(self.action, self.create, self.upsert, self.delete)


class BundleRequest(RegistryModel):
    """An atomic bundle; both lists are always sent, empty or not (the Registry requires both)."""

    resource_operations: list[ResourceOperation] = Field(default_factory=list)
    relationship_operations: list[RelationshipOperation] = Field(default_factory=list)


class ResourceBulkRequest(RegistryModel):
    """A bulk request of resource operations, processed in order, each on its own."""

    operations: list[ResourceOperation]


class RelationshipBulkRequest(RegistryModel):
    """A bulk request of relationship operations, processed in order, each on its own."""

    operations: list[RelationshipOperation]


class RelationshipCreateRequest(RegistryModel):
    """The body of a single relationship create; the relationship type goes in the path."""

    from_: EntityRef = Field(alias="from")
    to: EntityRef
    meta: Meta | None = None
    data: dict[str, Any] | None = None


class PurgeRequest(RegistryModel):
    """Delete a whole collection: `collection_type` is resources, relationships or objects."""

    collection_type: str
    collection_key: str

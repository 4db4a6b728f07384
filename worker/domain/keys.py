"""Entity keys: what "the same entity" means, for the unique-ID rule, ordering and Redis keys.

A resource is `(source, type, id)`; a relationship is `(source, type, from.type, from.id,
to.type, to.id)` (the Registry's two relationship-id forms disagree, so we key on everything that
names it). Every part matches an `api_client.ids` pattern (ASCII letters, digits, `_` and `-`
only), so the string forms joined with `:` are unambiguous, parse back, and are safe inside a Redis
key (no braces, spaces or colons inside a part).

Keys are dict and set members all through planning, so each computes its hash and its string
form once and keeps them beside its fields (equality and order stay the fields' alone); keys
built from parts already checked (`key_of`) skip the pattern checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Final

from api_client.ids import is_resource_id, is_source_key, is_type_key
from worker.domain.events import ChangeEvent, Endpoint, Target

_RESOURCE_TAG: Final = "res"
_RELATIONSHIP_TAG: Final = "rel"


def _check(part: str, what: str, *, is_id: bool) -> None:
    valid = is_resource_id(part) if is_id else (is_source_key(part) or is_type_key(part))
    if not valid:
        raise ValueError(f"{what}: not a valid {'id' if is_id else 'key'} for an entity key")


@dataclass(frozen=True, order=True)
class ResourceKey:
    """A resource, the unit of the unique-ID rule for resource operations."""

    source: str
    type: str
    id: str

    def __post_init__(self) -> None:
        _check(self.source, "source", is_id=False)
        _check(self.type, "type", is_id=False)
        _check(self.id, "id", is_id=True)

    def __str__(self) -> str:
        cached: str | None = self.__dict__.get("_str")
        if cached is None:  # computed once, as the hash
            cached = self.__dict__["_str"] = f"{_RESOURCE_TAG}:{self.source}:{self.type}:{self.id}"
        return cached

    def __hash__(self) -> int:
        cached: int | None = self.__dict__.get("_hash")
        if cached is None:  # computed once (see the module docstring)
            cached = self.__dict__["_hash"] = hash((self.source, self.type, self.id))
        return cached


@dataclass(frozen=True, order=True)
class RelationshipKey:
    """A relationship, named by its type and both ends (its id alone is ambiguous)."""

    source: str
    type: str
    from_type: str
    from_id: str
    to_type: str
    to_id: str

    def __post_init__(self) -> None:
        _check(self.source, "source", is_id=False)
        for what in ("type", "from_type", "to_type"):
            _check(getattr(self, what), what, is_id=False)
        _check(self.from_id, "from_id", is_id=True)
        _check(self.to_id, "to_id", is_id=True)

    def __str__(self) -> str:
        cached: str | None = self.__dict__.get("_str")
        if cached is None:  # computed once, as the hash
            cached = self.__dict__["_str"] = (
                f"{_RELATIONSHIP_TAG}:{self.source}:{self.type}:{self.from_type}:{self.from_id}"
                f":{self.to_type}:{self.to_id}"
            )
        return cached

    def __hash__(self) -> int:
        cached: int | None = self.__dict__.get("_hash")
        if cached is None:  # computed once (see the module docstring)
            parts = (self.source, self.type, self.from_type, self.from_id, self.to_type, self.to_id)
            cached = self.__dict__["_hash"] = hash(parts)
        return cached

    @property
    def from_key(self) -> ResourceKey:
        """The resource at the `from` end (its parts were checked with this key's)."""
        return self.endpoints[0]

    @property
    def to_key(self) -> ResourceKey:
        """The resource at the `to` end (its parts were checked with this key's)."""
        return self.endpoints[1]

    @cached_property
    def endpoints(self) -> tuple[ResourceKey, ResourceKey]:
        """Both ends, `from` first; a relationship's operation depends on both (computed once)."""
        return (
            _trusted_resource(self.source, self.from_type, self.from_id),
            _trusted_resource(self.source, self.to_type, self.to_id),
        )

    @property
    def receipt_id(self) -> str:
        """The id bundle receipts give it: `{fromType}.{fromId},{toType}.{toId}`."""
        return f"{self.from_type}.{self.from_id},{self.to_type}.{self.to_id}"

    @property
    def short_receipt_id(self) -> str:
        """The other documented form, `{fromId}.{toId}` (relationship GET)."""
        return f"{self.from_id}.{self.to_id}"


EntityKey = ResourceKey | RelationshipKey
"""Any entity an event writes."""


def parse_key(text: str) -> EntityKey:
    """Read back a key's string form.

    Raises:
        ValueError: the text is not a key this module wrote.
    """
    parts = text.split(":")
    if parts[0] == _RESOURCE_TAG and len(parts) == 4:
        return ResourceKey(parts[1], parts[2], parts[3])
    if parts[0] == _RELATIONSHIP_TAG and len(parts) == 7:
        return RelationshipKey(*parts[1:])
    raise ValueError("not an entity key: expected 'res:source:type:id' or 'rel:source:type:...'")


def _trusted_resource(source: str, type_: str, id_: str) -> ResourceKey:
    """A key from parts a `ChangeEvent` (or another key) already checked against the patterns.

    `key_of` runs several times per event on the hot path; re-matching every part there costs a
    third of planning time for nothing. The frozen dataclass's `__dict__` is filled directly.
    """
    key = object.__new__(ResourceKey)
    key.__dict__.update(source=source, type=type_, id=id_)
    return key


def _trusted_relationship(
    source: str, type_: str, ends: tuple[str, str, str, str]
) -> RelationshipKey:
    """`_trusted_resource` for a relationship: (from type, from id, to type, to id)."""
    key = object.__new__(RelationshipKey)
    from_type, from_id, to_type, to_id = ends
    key.__dict__.update(
        source=source,
        type=type_,
        from_type=from_type,
        from_id=from_id,
        to_type=to_type,
        to_id=to_id,
    )
    return key


def _endpoint_id(endpoint: Endpoint | None, name: str) -> tuple[str, str]:
    if endpoint is None or endpoint.id is None:
        raise ValueError(f"{name}: unresolved; assign ids before taking keys")
    return endpoint.type, endpoint.id


def key_of(event: ChangeEvent) -> EntityKey:
    """The entity an event writes.

    Raises:
        ValueError: the event still has an unresolved ref or an unassigned CREATE id.
    """
    if event.target is Target.RESOURCE:
        if event.id is None:
            raise ValueError("id: unassigned; assign ids before taking keys")
        return _trusted_resource(event.source_key, event.type, event.id)
    from_type, from_id = _endpoint_id(event.from_, "from")
    to_type, to_id = _endpoint_id(event.to, "to")
    return _trusted_relationship(event.source_key, event.type, (from_type, from_id, to_type, to_id))


def resources_touched(key: EntityKey) -> tuple[ResourceKey, ...]:
    """The resources whose state an operation on `key` reads or writes."""
    if isinstance(key, ResourceKey):
        return (key,)
    return key.endpoints

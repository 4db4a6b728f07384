"""Reading one raw write operation into a typed value, or a `ShapeError` naming the bad field.

The shape is what the reference pages fix (docs/emulator.md §3): `{"action": A, "<a>": {...}}`
with exactly the key named after the lowercased action. Shape is judged here; content (profiles,
id patterns, virtual ids, existence) is judged by the state. Unknown fields are refused so that
a client sending something the Registry would ignore or reject is caught early.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Final

from api_client.ids import is_virtual_id
from emulator.failures import JSON, invalid_argument
from emulator.validation import json_type

ACTIONS: Final = ("CREATE", "UPSERT", "DELETE")
RESOURCE: Final = "RESOURCE"
RELATIONSHIP: Final = "RELATIONSHIP"
RESOURCE_FIELDS: Final = frozenset({"id", "type", "data", "contained", "meta"})
RESOURCE_DELETE_FIELDS: Final = frozenset({"id", "type"})
RELATIONSHIP_FIELDS: Final = frozenset({"type", "from", "to", "data", "meta"})
RELATIONSHIP_DELETE_FIELDS: Final = frozenset({"type", "from", "to"})


class ShapeError(Exception):
    """An operation that is not well formed; `field` is the path of the first bad field."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason

    def as_error(self) -> JSON:
        """The 400 INVALID_ARGUMENT error naming the field and the reason."""
        return invalid_argument(str(self))


@dataclass(frozen=True)
class ResourceOp:
    """One resource write; `id` is None for a CREATE that lets the server choose."""

    action: str
    type: str
    id: str | None
    data: dict[str, Any]
    contained: dict[str, Any] | None = None
    meta: dict[str, Any] | None = None

    target_type = RESOURCE

    @property
    def receipt_id(self) -> str:
        """The id its receipt shows."""
        return self.id or ""

    def with_id(self, id_: str) -> ResourceOp:
        """The same operation aimed at another id (a generated or resolved one)."""
        return replace(self, id=id_)


@dataclass(frozen=True)
class Endpoint:
    """One end of a relationship."""

    type: str
    id: str


@dataclass(frozen=True)
class RelationshipOp:
    """One relationship write, addressed by its type and its two endpoints."""

    action: str
    type: str
    from_: Endpoint
    to: Endpoint
    data: dict[str, Any]
    meta: dict[str, Any] | None = None

    target_type = RELATIONSHIP

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        """What makes a relationship unique: its type and both endpoints."""
        return (self.type, self.from_.type, self.from_.id, self.to.type, self.to.id)

    @property
    def receipt_id(self) -> str:
        """The id receipts show, as the seed's bundle receipts do: `office.1,provider.2`."""
        return relationship_receipt_id(self.from_, self.to)


Operation = ResourceOp | RelationshipOp


def relationship_receipt_id(from_: Endpoint, to: Endpoint) -> str:
    """`{fromType}.{fromId},{toType}.{toId}`, the form of the seed's bundle receipts."""
    return f"{from_.type}.{from_.id},{to.type}.{to.id}"


def parse_resource_operation(op: Any, where: str) -> ResourceOp:
    """The typed operation, or a ShapeError naming the field under `where`."""
    action, payload, at = _envelope(op, where)
    return resource_op_from_payload(action, payload, at)


def resource_op_from_payload(action: str, payload: dict[str, Any], at: str) -> ResourceOp:
    """The typed operation from its action and payload (`{"id", "type", "data", ...}`)."""
    if "from" in payload or "to" in payload:
        raise ShapeError(at, "a relationship operation where a resource operation is expected")
    allowed = RESOURCE_DELETE_FIELDS if action == "DELETE" else RESOURCE_FIELDS
    _refuse_unknown(payload, allowed, at)
    type_ = _required_str(payload, "type", at)
    id_ = payload.get("id")
    if id_ is None and action != "CREATE":
        raise ShapeError(f"{at}.id", f"is required for {action}")
    if id_ is not None and not isinstance(id_, str):
        raise ShapeError(f"{at}.id", f"expected string, got {json_type(id_)}")
    return ResourceOp(
        action=action,
        type=type_,
        id=id_,
        data=_optional_object(payload, "data", at) or {},
        contained=_optional_object(payload, "contained", at),
        meta=_optional_object(payload, "meta", at),
    )


def parse_relationship_operation(op: Any, where: str) -> RelationshipOp:
    """The typed relationship operation, or a ShapeError naming the field under `where`."""
    action, payload, at = _envelope(op, where)
    return relationship_op_from_payload(action, payload, at)


def relationship_op_from_payload(action: str, payload: dict[str, Any], at: str) -> RelationshipOp:
    """The typed relationship operation from its action and payload (`{"type", "from", ...}`)."""
    if "from" not in payload and "to" not in payload and ({"id", "contained"} & payload.keys()):
        raise ShapeError(at, "a resource operation where a relationship operation is expected")
    allowed = RELATIONSHIP_DELETE_FIELDS if action == "DELETE" else RELATIONSHIP_FIELDS
    _refuse_unknown(payload, allowed, at)
    return RelationshipOp(
        action=action,
        type=_required_str(payload, "type", at),
        from_=parse_endpoint(payload.get("from"), f"{at}.from"),
        to=parse_endpoint(payload.get("to"), f"{at}.to"),
        data=_optional_object(payload, "data", at) or {},
        meta=_optional_object(payload, "meta", at),
    )


def parse_endpoint(value: Any, where: str) -> Endpoint:
    """`{"id", "type"}`, both strings, nothing else."""
    if not isinstance(value, dict):
        raise ShapeError(where, f"expected object with 'id' and 'type', got {json_type(value)}")
    _refuse_unknown(value, frozenset({"id", "type"}), where)
    return Endpoint(type=_required_str(value, "type", where), id=_required_str(value, "id", where))


def loose_identity(op: Any, target_type: str) -> tuple[str, str]:
    """A best-effort (type, receipt id) of a malformed operation, for its FAILURE receipt."""
    payload: Any = None
    if isinstance(op, dict) and isinstance(op.get("action"), str):
        payload = op.get(op["action"].lower())
    if not isinstance(payload, dict):
        return "", ""
    type_ = payload.get("type") if isinstance(payload.get("type"), str) else ""
    if target_type == RESOURCE:
        id_ = payload.get("id")
        return str(type_), id_ if isinstance(id_, str) else ""
    try:
        from_ = parse_endpoint(payload.get("from"), "from")
        to = parse_endpoint(payload.get("to"), "to")
    except ShapeError:
        return str(type_), ""
    return str(type_), relationship_receipt_id(from_, to)


def uses_virtual_id(op: ResourceOp) -> bool:
    """Whether the operation's own id is a virtual `@rootId` token."""
    return op.id is not None and is_virtual_id(op.id)


def _envelope(op: Any, where: str) -> tuple[str, dict[str, Any], str]:
    if not isinstance(op, dict):
        raise ShapeError(where, f"expected object, got {json_type(op)}")
    action = op.get("action")
    if action not in ACTIONS:
        raise ShapeError(f"{where}.action", f"expected one of {', '.join(ACTIONS)}, got {action!r}")
    key = str(action).lower()
    _refuse_unknown(op, frozenset({"action", key}), where)
    payload = op.get(key)
    if not isinstance(payload, dict):
        raise ShapeError(f"{where}.{key}", f"expected object, got {json_type(payload)}")
    return str(action), payload, f"{where}.{key}"


def _refuse_unknown(body: dict[str, Any], allowed: frozenset[str], where: str) -> None:
    for key in body:
        if key not in allowed:
            raise ShapeError(f"{where}.{key}", "unknown field")


def _required_str(body: dict[str, Any], key: str, where: str) -> str:
    value = body.get(key)
    if not isinstance(value, str):
        reason = "is required" if value is None else f"expected string, got {json_type(value)}"
        raise ShapeError(f"{where}.{key}", reason)
    return value


def _optional_object(body: dict[str, Any], key: str, where: str) -> dict[str, Any] | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ShapeError(f"{where}.{key}", f"expected object, got {json_type(value)}")
    return value

"""Reading request bodies and path ids into operations, or refusing them (400 naming the field).

These requests carry the record's type (and for an upsert its id) in the path; the body holds
the rest. A shape problem raises RequestRefusedError (400 INVALID_ARGUMENT naming the field).
A relationship is addressed in a path either as `{fromId}.{toId}` (REL-GET) or as the bundle
receipt's `{fromType}.{fromId},{toType}.{toId}`: both are accepted.
"""

from __future__ import annotations

from typing import Any

from api_client.ids import is_type_key
from emulator.failures import INVALID_ARGUMENT, JSON, NOT_FOUND, UNIMPLEMENTED, refuse
from emulator.operations import (
    Endpoint,
    Operation,
    RelationshipOp,
    ResourceOp,
    ShapeError,
    parse_relationship_operation,
    parse_resource_operation,
    relationship_op_from_payload,
    resource_op_from_payload,
)
from emulator.state import SourceState
from emulator.validation import json_type

BULK_TARGETS = ("resources", "relationships")


def check_key(value: str, field: str) -> None:
    """Refuse a path key (resource type, relationship type, profile key) that is malformed."""
    if not is_type_key(value):
        raise refuse(INVALID_ARGUMENT, f"{field}: '{value}' is not a valid key")


def resource_write(action: str, type_: str, id_: str | None, body: Any) -> ResourceOp:
    """The CREATE or UPSERT that a single-resource request body asks for."""
    check_key(type_, "resourceType")
    payload = dict(_object_body(body))
    _same_as_path(payload, "type", type_)
    if id_ is not None:
        _same_as_path(payload, "id", id_)
        payload["id"] = id_
    payload["type"] = type_
    try:
        return resource_op_from_payload(action, payload, "body")
    except ShapeError as exc:
        raise refuse(INVALID_ARGUMENT, str(exc)) from exc


def relationship_write(type_: str, body: Any) -> RelationshipOp:
    """The CREATE that a single-relationship request body asks for."""
    check_key(type_, "relationshipType")
    payload = dict(_object_body(body))
    _same_as_path(payload, "type", type_)
    payload["type"] = type_
    try:
        return relationship_op_from_payload("CREATE", payload, "body")
    except ShapeError as exc:
        raise refuse(INVALID_ARGUMENT, str(exc)) from exc


def relationship_ends(rel_id: str, definition: JSON | None) -> tuple[Endpoint, Endpoint]:
    """The endpoints a path relationship id names; a `{fromId}.{toId}` id takes its types from
    the relationship definition. Raises 400 for a malformed id, 404 without a definition."""
    if "," in rel_id:
        parts = [end.split(".") for end in rel_id.split(",")]
        if len(parts) != 2 or any(len(part) != 2 or not all(part) for part in parts):
            raise _malformed(rel_id)
        return Endpoint(parts[0][0], parts[0][1]), Endpoint(parts[1][0], parts[1][1])
    ids = rel_id.split(".")
    if len(ids) != 2 or not all(ids):
        raise _malformed(rel_id)
    if definition is None:
        raise refuse(NOT_FOUND, f"record with id '{rel_id}' not found", status=404)
    from_type = definition["from"]["profileKey"]
    to_type = definition["to"]["profileKey"]
    return Endpoint(from_type, ids[0]), Endpoint(to_type, ids[1])


def _malformed(rel_id: str) -> Exception:
    return refuse(
        INVALID_ARGUMENT,
        f"relationshipId: '{rel_id}' is neither '{{fromId}}.{{toId}}' nor "
        "'{fromType}.{fromId},{toType}.{toId}'",
    )


def _object_body(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise refuse(INVALID_ARGUMENT, f"body: expected object, got {json_type(body)}")
    return body


def _same_as_path(payload: dict[str, Any], key: str, value: str) -> None:
    if key in payload and payload[key] != value:
        raise refuse(
            INVALID_ARGUMENT,
            f"body.{key}: {payload[key]!r} differs from the path's {value!r}",
        )


def read_bulk(
    state: SourceState, target: str, body: Any
) -> tuple[list[Operation], list[JSON | None]]:
    """A bulk body's operations (ids assigned) and each one's error, judged before acceptance.

    Raises 400 when the body itself is malformed; a bad operation gives an error in its slot.
    """
    if target not in BULK_TARGETS:
        raise refuse(INVALID_ARGUMENT, f"target: expected one of {BULK_TARGETS}, got {target!r}")
    if not isinstance(body, dict) or not isinstance(body.get("operations"), list):
        raise refuse(INVALID_ARGUMENT, "operations: required, an array of operations")
    for key in body:
        if key != "operations":
            raise refuse(INVALID_ARGUMENT, f"{key}: unknown field")
    operations: list[Operation] = []
    errors: list[JSON | None] = []
    for index, raw in enumerate(body["operations"]):
        where = f"operations[{index}]"
        try:
            op: Operation = (
                state.assign_id(parse_resource_operation(raw, where))
                if target == "resources"
                else parse_relationship_operation(raw, where)
            )
        except ShapeError as exc:
            errors.append(exc.as_error())
            continue
        errors.append(state.check(op))
        operations.append(op)
    return operations, errors


def read_purge(state: SourceState, body: Any) -> tuple[str, str]:
    """A purge body's (collectionType, collectionKey); refuses what cannot be purged."""
    if not isinstance(body, dict):
        raise refuse(INVALID_ARGUMENT, f"body: expected object, got {json_type(body)}")
    for key in body:
        if key not in ("collectionType", "collectionKey"):
            raise refuse(INVALID_ARGUMENT, f"{key}: unknown field")
    collection_type = body.get("collectionType")
    key = body.get("collectionKey")
    if collection_type == "objects":
        raise refuse(UNIMPLEMENTED, "collectionType: 'objects' is not emulated", status=501)
    if collection_type not in ("resources", "relationships"):
        raise refuse(INVALID_ARGUMENT, "collectionType: expected resources or relationships")
    if not isinstance(key, str):
        raise refuse(INVALID_ARGUMENT, "collectionKey: required, a string")
    known = state.profiles if collection_type == "resources" else state.relationship_definitions
    if key not in known:
        raise refuse(NOT_FOUND, f"collectionKey: '{key}' not found", status=404)
    return collection_type, key

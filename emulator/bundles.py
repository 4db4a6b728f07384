"""Planning a bundle before it runs: its shape, the one-operation-per-id rule, virtual ids.

A bundle is refused as a whole (400 INVALID_ARGUMENT naming the field or the id) when its shape is
wrong or when two operations target one resource `(type, id)` or one relationship `(type,
from.type, from.id, to.type, to.id)`: nothing is dropped silently. Every CREATE without an id, or
with a virtual id `@rootId<N>`, gets a generated id here, and each virtual id defined by a CREATE
is resolved in relationship endpoints and in `reference` properties. A virtual id left unresolved
(on UPSERT or DELETE, or never created in this bundle) stays in place; the state then fails that
operation, which cancels the bundle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from api_client.ids import is_virtual_id
from emulator.failures import INVALID_ARGUMENT, JSON, refuse
from emulator.operations import (
    Endpoint,
    RelationshipOp,
    ResourceOp,
    ShapeError,
    parse_relationship_operation,
    parse_resource_operation,
)
from emulator.validation import json_type, map_references

BODY_FIELDS = ("resourceOperations", "relationshipOperations")


@dataclass(frozen=True)
class BundlePlan:
    """A bundle's operations with generated and resolved ids, ready to run atomically."""

    resources: tuple[ResourceOp, ...]
    relationships: tuple[RelationshipOp, ...]

    @property
    def op_count(self) -> int:
        """How many operations the bundle holds."""
        return len(self.resources) + len(self.relationships)


def plan_bundle(body: Any, profiles: dict[str, JSON], new_id: Callable[[], str]) -> BundlePlan:
    """The plan of a bundle body; raises RequestRefusedError when the bundle must be refused."""
    raw_resources, raw_relationships = _operation_lists(body)
    try:
        resources = [
            parse_resource_operation(op, f"resourceOperations[{index}]")
            for index, op in enumerate(raw_resources)
        ]
        relationships = [
            parse_relationship_operation(op, f"relationshipOperations[{index}]")
            for index, op in enumerate(raw_relationships)
        ]
    except ShapeError as exc:
        raise refuse(INVALID_ARGUMENT, str(exc)) from exc
    _refuse_duplicates(resources, relationships)
    virtual: dict[str, str] = {}
    assigned: list[ResourceOp] = []
    for op in resources:
        if op.action == "CREATE" and (op.id is None or is_virtual_id(op.id)):
            generated = new_id()
            if op.id is not None:
                virtual[op.id] = generated
            op = op.with_id(generated)
        assigned.append(op)

    def resolve(value: str) -> str:
        return virtual.get(value, value)

    return BundlePlan(
        resources=tuple(_resolve_resource(op, profiles, resolve) for op in assigned),
        relationships=tuple(
            replace(op, from_=_resolve_end(op.from_, resolve), to=_resolve_end(op.to, resolve))
            for op in relationships
        ),
    )


def _operation_lists(body: Any) -> tuple[list[Any], list[Any]]:
    if not isinstance(body, dict):
        raise refuse(INVALID_ARGUMENT, f"body: expected object, got {json_type(body)}")
    for key in body:
        if key not in BODY_FIELDS:
            raise refuse(INVALID_ARGUMENT, f"{key}: unknown field")
    lists: list[list[Any]] = []
    for field in BODY_FIELDS:
        value = body.get(field)
        if not isinstance(value, list):
            reason = "is required" if value is None else f"expected array, got {json_type(value)}"
            raise refuse(INVALID_ARGUMENT, f"{field}: {reason}")
        lists.append(value)
    return lists[0], lists[1]


def _refuse_duplicates(resources: list[ResourceOp], relationships: list[RelationshipOp]) -> None:
    seen: dict[tuple[str, str], int] = {}
    for index, op in enumerate(resources):
        if op.id is None:
            continue
        # A virtual id names one record for the whole bundle, whatever its type.
        key = ("@", op.id) if op.action == "CREATE" and is_virtual_id(op.id) else (op.type, op.id)
        if key in seen:
            raise refuse(
                INVALID_ARGUMENT,
                f"resourceOperations[{index}]: a second operation on resource '{op.type}' with "
                f"id '{op.id}' (first at resourceOperations[{seen[key]}]); a bundle allows one "
                "operation per id",
            )
        seen[key] = index
    seen_rel: dict[tuple[str, str, str, str, str], int] = {}
    for index, rel in enumerate(relationships):
        if rel.key in seen_rel:
            raise refuse(
                INVALID_ARGUMENT,
                f"relationshipOperations[{index}]: a second operation on relationship "
                f"'{rel.type}' with id '{rel.receipt_id}' (first at "
                f"relationshipOperations[{seen_rel[rel.key]}]); a bundle allows one operation "
                "per id",
            )
        seen_rel[rel.key] = index


def _resolve_end(end: Endpoint, resolve: Callable[[str], str]) -> Endpoint:
    return Endpoint(type=end.type, id=resolve(end.id))


def _resolve_resource(
    op: ResourceOp, profiles: dict[str, JSON], resolve: Callable[[str], str]
) -> ResourceOp:
    profile = profiles.get(op.type)
    if profile is None or op.action == "DELETE":
        return op
    return replace(op, data=map_references(profile.get("properties", {}), op.data, resolve))

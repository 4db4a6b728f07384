"""What is wrong with one operation whatever the stored records: ids, definitions, content, meta.

These checks need only the source's profiles and relationship definitions and the time, so bulk
runs them before accepting a request, and the state runs them again when it applies one. The
order fixes which error an operation with several problems reports: ids, then the definition,
then the endpoint types, then content (`invalid schema for <type>`), then meta.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from api_client.ids import is_resource_id, is_virtual_id
from emulator.failures import JSON, failed_precondition, invalid_argument
from emulator.operations import RelationshipOp, ResourceOp
from emulator.validation import (
    map_references,
    meta_error,
    schema_error,
    validate_contained,
    validate_data,
    validate_meta,
)


def check_resource(
    op: ResourceOp, profiles: dict[str, JSON], source_key: str, now: datetime
) -> JSON | None:
    """The error of a resource operation under its profile, or None when it may be applied."""
    id_error = id_problem(op.id or "", "id", op.action)
    if id_error is not None:
        return id_error
    profile = profiles.get(op.type)
    if profile is None:
        return failed_precondition(f"profile '{op.type}' does not exist in source '{source_key}'")
    if profile.get("type") == "CONTAINED":
        return failed_precondition(
            f"profile '{op.type}' is CONTAINED: its records live inside a parent record"
        )
    if op.action == "DELETE":
        return None
    properties: dict[str, Any] = profile.get("properties", {})
    details = validate_data(properties, op.data)
    if op.contained is not None:
        details += validate_contained(profile, op.contained, profiles)
    if details:
        return schema_error(op.type, details)
    reference_error = _reference_problem(properties, op.data)
    if reference_error is not None:
        return reference_error
    return _meta_problem(op.type, op.meta, now)


def check_relationship(
    op: RelationshipOp, definitions: dict[str, JSON], source_key: str, now: datetime
) -> JSON | None:
    """The error of a relationship operation under its definition, or None."""
    for end, name in ((op.from_, "from.id"), (op.to, "to.id")):
        id_error = id_problem(end.id, name, op.action)
        if id_error is not None:
            return id_error
    definition = definitions.get(op.type)
    if definition is None:
        return failed_precondition(
            f"relationship definition '{op.type}' does not exist in source '{source_key}'"
        )
    expected = (definition["from"]["profileKey"], definition["to"]["profileKey"])
    if (op.from_.type, op.to.type) != expected:
        return invalid_argument(
            f"relationship '{op.type}' goes from '{expected[0]}' to '{expected[1]}', "
            f"not from '{op.from_.type}' to '{op.to.type}'"
        )
    if op.action == "DELETE":
        return None
    details = validate_data(definition.get("properties") or {}, op.data)
    if details:
        return schema_error(op.type, details)
    return _meta_problem(op.type, op.meta, now)


def id_problem(id_: str, field: str, action: str) -> JSON | None:
    """The error of an id that is not a resource id, or a virtual id left unresolved."""
    if is_virtual_id(id_):
        if field == "id" and action != "CREATE":
            return invalid_argument(f"{field}: virtual id '{id_}' is only allowed on CREATE")
        return invalid_argument(
            f"{field}: virtual id '{id_}' is not created by a CREATE in this bundle"
        )
    if not is_resource_id(id_):
        return invalid_argument(f"{field}: '{id_}' is not a valid resource id")
    return None


def _reference_problem(properties: dict[str, Any], data: dict[str, Any]) -> JSON | None:
    found: list[str] = []

    def collect(value: str) -> str:
        found.append(value)
        return value

    map_references(properties, data, collect)
    for value in found:
        error = id_problem(value, "reference", "CREATE")
        if error is not None:
            return error
    return None


def _meta_problem(type_: str, meta: dict[str, Any] | None, now: datetime) -> JSON | None:
    if meta is None:
        return None
    details = validate_meta(meta, now)
    return meta_error(type_, details) if details else None

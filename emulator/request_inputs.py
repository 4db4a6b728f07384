"""A Registry request's inputs, judged before the registry sees them: path ids, `withReceipts`,
the JSON body, and the operations and ids it carries (for the request log and fault matching).

Each check answers the Registry-shaped 400 it would send, or None, so the handler can first
consult the fault plan and only then decide which refusal, if any, to send.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from starlette.datastructures import QueryParams

from api_client.ids import (
    RESOURCE_ID_PATTERN,
    SOURCE_KEY_PATTERN,
    TASK_ID_PATTERN,
    TYPE_KEY_PATTERN,
    is_resource_id,
    is_source_key,
    is_task_id,
    is_type_key,
)
from emulator.http_errors import error_body
from emulator.requestlog import payload_ids, summarise_operations
from emulator.routes import RouteSpec

__all__ = [
    "RELATIONSHIP_ID_PATTERN",
    "check_path_params",
    "parse_body",
    "parse_with_receipts",
    "summarise",
]

RELATIONSHIP_ID_PATTERN = re.compile(r"[\x21-\x7e]{1,400}", re.ASCII)
"""A relationship id in a path: printable ASCII; the registry judges its form."""

_PATH_PARAM_RULES: dict[str, tuple[Callable[[str], bool], str]] = {
    "sourceKey": (is_source_key, SOURCE_KEY_PATTERN.pattern),
    "resourceType": (is_type_key, TYPE_KEY_PATTERN.pattern),
    "relationshipType": (is_type_key, TYPE_KEY_PATTERN.pattern),
    "profileKey": (is_type_key, TYPE_KEY_PATTERN.pattern),
    "relationshipDefinitionKey": (is_type_key, TYPE_KEY_PATTERN.pattern),
    "resourceId": (is_resource_id, RESOURCE_ID_PATTERN.pattern),
    "taskId": (is_task_id, TASK_ID_PATTERN.pattern),
    "relationshipId": (
        lambda value: RELATIONSHIP_ID_PATTERN.fullmatch(value) is not None,
        RELATIONSHIP_ID_PATTERN.pattern,
    ),
}

_BOOLEANS = {"1": True, "t": True, "true": True, "0": False, "f": False, "false": False}
"""The spellings Go's strconv.ParseBool accepts, case-insensitively (the Registry is in Go)."""


def check_path_params(params: dict[str, str]) -> dict[str, Any] | None:
    """The 400 naming the first path segment that is not a valid id, or None."""
    for name, value in params.items():
        rule = _PATH_PARAM_RULES.get(name)
        if rule is not None and not rule[0](value):
            shown = value if len(value) <= 100 else value[:100] + "..."
            message = f"invalid {name} {shown!r} in the path: must match ^{rule[1]}$"
            return error_body(400, "INVALID_ARGUMENT", message)
    return None


def parse_with_receipts(query: QueryParams) -> tuple[bool, dict[str, Any] | None]:
    """The `withReceipts` flag (false when absent), or the 400 naming it."""
    values = query.getlist("withReceipts")
    if not values:
        return False, None
    flag = _BOOLEANS.get(values[-1].lower())
    if flag is None or len(values) > 1:
        message = f"withReceipts: expected true or false, got {values!r}"[:200]
        return False, error_body(400, "INVALID_ARGUMENT", message)
    return flag, None


def summarise(spec: RouteSpec, params: dict[str, str], body: Any) -> tuple[int, tuple[str, ...]]:
    """How many operations a request carries and the ids it touches, for the log and faults."""
    path_ids = tuple(params[key] for key in ("resourceId", "relationshipId") if key in params)
    if spec.ops == "many":
        return summarise_operations(body)
    if spec.ops == "one":
        return 1, tuple(dict.fromkeys(path_ids + payload_ids(body)))
    return 0, path_ids


def parse_body(raw: bytes) -> tuple[Any, dict[str, Any] | None]:
    """The decoded JSON body, or the 400 saying why it is not JSON."""
    try:
        return json.loads(raw), None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        reason = "the body is empty" if not raw.strip() else f"invalid JSON: {exc}"
        return None, error_body(400, "INVALID_ARGUMENT", f"request body: {reason}")

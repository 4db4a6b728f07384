"""Request paths: every segment checked against the shared id patterns, then URL-encoded.

A bad segment raises `InvalidPathSegmentError` (an `InvalidRequestError` and a `ValueError`) here,
before any request is built, so nothing malformed ever reaches the Registry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final
from urllib.parse import quote

from api_client import ids
from api_client.errors import InvalidPathSegmentError

__all__ = [
    "RELATIONSHIP_ID",
    "RESOURCE_ID",
    "SOURCE_KEY",
    "TASK_ID",
    "TYPE_KEY",
    "definition_path",
    "purge_path",
    "receipts_param",
    "relationship_path",
    "resource_path",
    "segment",
    "source_path",
]

Rule = tuple[Callable[[str], bool], str]
"""A check of one segment, and the pattern an error message names."""

SOURCE_KEY: Final = (ids.is_source_key, "^[a-zA-Z0-9-][\\w-]{0,61}$")
TYPE_KEY: Final = (ids.is_type_key, "^[a-zA-Z0-9-][\\w-]{0,61}$")
RESOURCE_ID: Final = (ids.is_resource_id, "^[a-zA-Z0-9-][\\w-]{0,92}$")
TASK_ID: Final = (ids.is_task_id, "^(purge:)?[\\w-]{1,128}$")


def _is_relationship_id(value: str) -> bool:
    from_id, dot, to_id = value.partition(".")
    return bool(dot) and ids.is_resource_id(from_id) and ids.is_resource_id(to_id)


RELATIONSHIP_ID: Final = (_is_relationship_id, "{fromId}.{toId}, two resource ids")


def segment(name: str, value: object, rule: Rule) -> str:
    """`value` URL-encoded for a path once it passes `rule`; refused before any request if not."""
    check, expected = rule
    if not isinstance(value, str) or not check(value):
        raise InvalidPathSegmentError(name, str(value), f"does not match {expected}")
    return quote(value, safe="")


def source_path(source_key: str, *rest: str) -> str:
    """`/sources/{sk}/v1/...`; the parts in `rest` are already checked and encoded."""
    return "/".join(("", "sources", segment("source_key", source_key, SOURCE_KEY), "v1", *rest))


def resource_path(source_key: str, resource_type: str, resource_id: str) -> str:
    """`/sources/{sk}/v1/resources/{type}/{id}`."""
    type_ = segment("resource_type", resource_type, TYPE_KEY)
    id_ = segment("resource_id", resource_id, RESOURCE_ID)
    return source_path(source_key, "resources", type_, id_)


def relationship_path(source_key: str, relationship_type: str, relationship_id: str) -> str:
    """`/sources/{sk}/v1/relationships/{type}/{fromId}.{toId}`."""
    type_ = segment("relationship_type", relationship_type, TYPE_KEY)
    id_ = segment("relationship_id", relationship_id, RELATIONSHIP_ID)
    return source_path(source_key, "relationships", type_, id_)


def purge_path(source_key: str, purge_id: str) -> str:
    """`/sources/{sk}/v1/purge/{purgeId}`."""
    return source_path(source_key, "purge", segment("purge_id", purge_id, TASK_ID))


def definition_path(source_key: str, key: str) -> str:
    """`/sources/{sk}/v1/relationship-definitions/{key}`."""
    return source_path(source_key, "relationship-definitions", segment("key", key, TYPE_KEY))


def receipts_param(with_receipts: bool) -> dict[str, str]:
    """The `withReceipts` query of a task status read."""
    return {"withReceipts": "true" if with_receipts else "false"}

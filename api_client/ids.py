"""Identifier patterns of the Registry, shared by the client, the emulator and the events.

The documentation gives a resource id `^[a-zA-Z0-9-][\\w-]{1,92}$`, yet its own examples use the
one-character ids "1" and "2"; we accept `{0,92}` so that the documented examples are valid.
Every pattern is ASCII only (`re.ASCII`): `\\w` would otherwise admit any Unicode letter.
"""

from __future__ import annotations

import re
from typing import Final

SOURCE_KEY_PATTERN: Final = re.compile(r"[a-zA-Z0-9-][\w-]{0,61}", re.ASCII)
"""A source key; also a profile key and a relationship-definition key."""

RESOURCE_ID_PATTERN: Final = re.compile(r"[a-zA-Z0-9-][\w-]{0,92}", re.ASCII)
"""A resource id (see the module docstring for why the documented `{1,92}` is widened)."""

TYPE_KEY_PATTERN: Final = SOURCE_KEY_PATTERN
"""A resource type (profile key) or a relationship type (relationship-definition key)."""

VIRTUAL_ID_PATTERN: Final = re.compile(r"@rootId[0-9]*", re.ASCII)
"""A bundle virtual id, resolved by the Registry to a generated id (CREATE only)."""

TASK_ID_PATTERN: Final = re.compile(r"(?:purge:)?[\w-]{1,128}", re.ASCII)
"""Any task id the Registry may hand back, prefixed or bare; checked before use in a path."""

GENERATED_ID_LENGTH: Final = 27
"""Server-generated ids look like KSUIDs: 27 base-62 characters."""


def is_source_key(value: str) -> bool:
    """Whether `value` is a valid source key."""
    return SOURCE_KEY_PATTERN.fullmatch(value) is not None


def is_type_key(value: str) -> bool:
    """Whether `value` is a valid profile or relationship-definition key."""
    return TYPE_KEY_PATTERN.fullmatch(value) is not None


def is_resource_id(value: str) -> bool:
    """Whether `value` is a valid (non-virtual) resource id."""
    return RESOURCE_ID_PATTERN.fullmatch(value) is not None


def is_virtual_id(value: str) -> bool:
    """Whether `value` is a bundle virtual id such as `@rootId1`."""
    return VIRTUAL_ID_PATTERN.fullmatch(value) is not None


def is_task_id(value: str) -> bool:
    """Whether `value` can safely stand in a task-status path."""
    return TASK_ID_PATTERN.fullmatch(value) is not None

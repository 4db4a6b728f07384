"""Caps and documented rules for what an event carries in `data`, `contained` and `meta`.

Checked on the raw JSON before pydantic sees it, so that an oversized or absurdly nested payload
is refused cheaply (and without recursion), and so that meta the Registry would refuse (the rules
of `api_client.meta_rules`, the very copy the emulator applies: strict RFC 3339 times, `updatedAt`
needs `createdAt`, neither in the future, identifiers with a `value`, `use` never `source`,
`system` never `mdm`...) is refused at publish rather than learnt from the dead-letter queue. No
reason echoes a value.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from api_client.meta_rules import meta_problems


@dataclass(frozen=True)
class EventLimits:
    """Caps on what one event may carry, so that one operation always fits one bundle.

    `max_field_bytes` caps each of `data`, `contained` and `meta` (compact JSON, UTF-8);
    `max_total_bytes` caps the three together; `max_depth` caps their nesting (the field's own
    object counts as depth 1).
    """

    max_field_bytes: int = 262_144
    max_total_bytes: int = 400_000
    max_depth: int = 32

    def __post_init__(self) -> None:
        for name in ("max_field_bytes", "max_total_bytes", "max_depth"):
            if getattr(self, name) < 1:
                raise ValueError(f"EventLimits.{name}: must be at least 1")


DEFAULT_LIMITS: Final = EventLimits()


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an event: the field (camelCase, dotted path) and why."""

    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


def _depth_exceeds(value: Any, max_depth: int) -> bool:
    """Whether containers nest deeper than `max_depth`, checked without recursion."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping):
            children: Iterable[Any] = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth > max_depth:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _measure_payloads(raw: Mapping[str, Any], limits: EventLimits) -> list[Problem]:
    """Check the depth and size of `data`, `contained` and `meta` before pydantic sees them."""
    problems: list[Problem] = []
    total = 0
    for name in ("data", "contained", "meta"):
        value = raw.get(name)
        if value is None:
            continue
        if not isinstance(value, Mapping):
            problems.append(Problem(name, "must be a JSON object"))
            continue
        if _depth_exceeds(value, limits.max_depth):
            problems.append(Problem(name, f"nests deeper than {limits.max_depth} levels"))
            continue
        try:
            text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError:
            problems.append(Problem(name, "holds text that is not valid Unicode"))
            continue
        except (TypeError, ValueError):
            problems.append(Problem(name, "holds a value that is not JSON (or NaN/Infinity)"))
            continue
        if size > limits.max_field_bytes:
            problems.append(
                Problem(name, f"is {size} bytes as JSON; the limit is {limits.max_field_bytes}")
            )
        total += size
    if total > limits.max_total_bytes and not problems:
        problems.append(
            Problem(
                "data+contained+meta",
                f"are {total} bytes together as JSON; the limit is {limits.max_total_bytes}",
            )
        )
    return problems


def payload_problems(
    raw: Mapping[str, Any], limits: EventLimits, now: datetime | None
) -> list[Problem]:
    """Everything wrong with a raw event's `data`, `contained` and `meta`."""
    problems = _measure_payloads(raw, limits)
    meta = raw.get("meta")
    if isinstance(meta, Mapping) and not any(p.field == "meta" for p in problems):
        problems.extend(Problem(p.field, p.reason) for p in meta_problems(meta, now))
    return problems

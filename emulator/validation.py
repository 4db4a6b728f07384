"""Judging raw record content against a profile: property types, rules, contained records, meta.

Each check returns a list of `details` entries (400 INVALID_ARGUMENT, naming the property); the
caller wraps them in the seed's envelope, `invalid schema for <type>` (FAILED_PRECONDITION) for
content and `invalid meta for <type>` (INVALID_ARGUMENT) for meta. Unknown properties are refused
with exactly the seed's `additionalProperties '<KEY>' not allowed`. Conditional rules (`when`) are
not evaluated: such a rule is skipped.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

from api_client.meta_rules import meta_problems
from emulator.failures import JSON, detail, failed_precondition, invalid_argument
from emulator.profiles import COMPLEX_TYPES, STRING_TYPES
from emulator.times import is_datetime, is_instant, is_partial_date, is_time

FORMAT_CHECKS: Final[dict[str, Callable[[str], bool]]] = {
    "date": is_partial_date,
    "datetime": is_datetime,
    "instant": is_instant,
    "time": is_time,
}


def schema_error(type_: str, details: list[JSON]) -> JSON:
    """The seed's envelope for content that does not fit its profile."""
    return failed_precondition(f"invalid schema for {type_}", details)


def meta_error(type_: str, details: list[JSON]) -> JSON:
    """The envelope for meta that breaks the documented meta rules."""
    return invalid_argument(f"invalid meta for {type_}", details)


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def validate_data(properties: dict[str, Any], data: Any, where: str = "") -> list[JSON]:
    """Problems of a record's `data` under `properties`; nested objects name their path."""
    if not isinstance(data, dict):
        return [detail(f"{where or 'data'}: expected object, got {json_type(data)}")]
    problems: list[JSON] = []
    for key in data:
        if key not in properties:
            suffix = f" in '{where}'" if where else ""
            problems.append(detail(f"additionalProperties '{key}' not allowed{suffix}"))
    for key, spec in properties.items():
        path = f"{where}.{key}" if where else key
        problems += _validate_value(spec, data.get(key), path)
    return problems


def _rules(spec: dict[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for rule in spec.get("rules", []):
        if "when" not in rule:
            merged.update(rule)
    return merged


def _validate_value(spec: dict[str, Any], value: Any, path: str) -> list[JSON]:
    rules = _rules(spec)
    if value is None:
        return [detail(f"property '{path}' is required")] if rules.get("required") else []
    kind = spec["type"]
    type_problem = _type_problem(kind, value, path)
    if type_problem is not None:
        return [type_problem]
    problems = _rule_problems(rules, value, path)
    if kind == "array":
        for index, item in enumerate(value):
            problems += _validate_value(spec["items"], item, f"{path}[{index}]")
    elif kind == "object" and "properties" in spec:
        problems += validate_data(spec["properties"], value, path)
    return problems


def _type_problem(kind: str, value: Any, path: str) -> JSON | None:
    expected = _expected_type(kind)
    if not _has_type(kind, value):
        return detail(
            f"invalid type for property '{path}': expected {expected}, got {json_type(value)}"
        )
    check = FORMAT_CHECKS.get(kind)
    if check is not None and not check(value):
        return detail(f"invalid format for property '{path}': {value!r} is not a valid {kind}")
    return None


def _expected_type(kind: str) -> str:
    if kind in STRING_TYPES or kind in FORMAT_CHECKS:
        return f"string ({kind})" if kind != "string" else "string"
    if kind in COMPLEX_TYPES:
        return f"object ({kind})"
    if kind == "reference":
        return "reference (an id, or an object with an 'id')"
    if kind == "decimal":
        return "number"
    return kind


def _has_type(kind: str, value: Any) -> bool:
    if kind in STRING_TYPES or kind in FORMAT_CHECKS:
        return isinstance(value, str)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "decimal":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "array":
        return isinstance(value, list)
    if kind == "reference":
        return reference_id(value) is not None
    return isinstance(value, dict)


def _rule_problems(rules: dict[str, Any], value: Any, path: str) -> list[JSON]:
    problems: list[JSON] = []
    measured, what = _measure(value)
    if measured is not None:
        if "min" in rules and measured < rules["min"]:
            problems.append(
                detail(f"property '{path}': {what} {measured} is below min {rules['min']}")
            )
        if "max" in rules and measured > rules["max"]:
            problems.append(
                detail(f"property '{path}': {what} {measured} is above max {rules['max']}")
            )
    scalars = value if isinstance(value, list) else [value]
    if "enum" in rules:
        for item in scalars:
            if item not in rules["enum"]:
                problems.append(
                    detail(f"property '{path}': {item!r} is not one of {rules['enum']!r}")
                )
    if "pattern" in rules:
        for item in scalars:
            if isinstance(item, str) and re.search(rules["pattern"], item) is None:
                problems.append(
                    detail(
                        f"property '{path}': {item!r} does not match pattern {rules['pattern']!r}"
                    )
                )
    return problems


def _measure(value: Any) -> tuple[int | float | None, str]:
    """What min and max bound: a number's value, a string's or an array's length."""
    if isinstance(value, bool):
        return None, ""
    if isinstance(value, int | float):
        return value, "value"
    if isinstance(value, str | list):
        return len(value), "length"
    return None, ""


def reference_id(value: Any) -> str | None:
    """The id a reference value names: the string itself, or the `id` of an object."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("id"), str):
        return str(value["id"])
    return None


def map_references(properties: dict[str, Any], data: Any, fn: Callable[[str], str]) -> Any:
    """`data` with `fn` applied to the id of every `reference` property, at any depth."""
    if not isinstance(data, dict):
        return data
    mapped = dict(data)
    for key, spec in properties.items():
        if key in mapped and isinstance(spec, dict):
            mapped[key] = _map_value(spec, mapped[key], fn)
    return mapped


def _map_value(spec: dict[str, Any], value: Any, fn: Callable[[str], str]) -> Any:
    kind = spec.get("type")
    if kind == "reference":
        if isinstance(value, str):
            return fn(value)
        if isinstance(value, dict) and isinstance(value.get("id"), str):
            return {**value, "id": fn(value["id"])}
        return value
    if kind == "array" and isinstance(value, list) and isinstance(spec.get("items"), dict):
        return [_map_value(spec["items"], item, fn) for item in value]
    if kind == "object" and isinstance(spec.get("properties"), dict):
        return map_references(spec["properties"], value, fn)
    return value


def validate_contained(
    profile: dict[str, Any], contained: Any, profiles: dict[str, dict[str, Any]]
) -> list[JSON]:
    """Problems of `contained`: known contain keys, allowed types, cardinality, each item's data."""
    if not isinstance(contained, dict):
        return [detail(f"contained: expected object, got {json_type(contained)}")]
    specs: dict[str, Any] = profile.get("contained") or {}
    problems = [
        detail(f"additionalProperties '{key}' not allowed in 'contained'")
        for key in contained
        if key not in specs
    ]
    for key, spec in specs.items():
        problems += _validate_contain_key(key, spec, contained.get(key), profiles)
    return problems


def _validate_contain_key(
    key: str, spec: dict[str, Any], items: Any, profiles: dict[str, dict[str, Any]]
) -> list[JSON]:
    low, _, high = str(spec.get("cardinality", "0:*")).partition(":")
    items = [] if items is None else items
    if not isinstance(items, list):
        return [detail(f"contained '{key}': expected array, got {json_type(items)}")]
    problems: list[JSON] = []
    if len(items) < int(low):
        problems.append(detail(f"contained '{key}' is required (cardinality {low}:{high})"))
    if high != "*" and len(items) > int(high):
        problems.append(detail(f"contained '{key}': at most {high} item(s), got {len(items)}"))
    for index, item in enumerate(items):
        at = f"contained.{key}[{index}]"
        if not isinstance(item, dict):
            problems.append(detail(f"{at}: expected object, got {json_type(item)}"))
            continue
        problems += [
            detail(f"{at}.{k}: unknown field") for k in item if k not in {"id", "type", "data"}
        ]
        item_type = item.get("type")
        if (
            not isinstance(item_type, str)
            or item_type not in spec.get("types", [])
            or (item_type not in profiles)
        ):
            problems.append(detail(f"{at}.type: expected one of {spec.get('types', [])!r}"))
            continue
        problems += validate_data(profiles[item_type]["properties"], item.get("data", {}), at)
    return problems


def validate_meta(meta: Any, now: datetime) -> list[JSON]:
    """Problems of a write's `meta`: the rules the worker also checks at publish (one copy)."""
    return [detail(str(problem)) for problem in meta_problems(meta, now)]

"""Profiles and relationship definitions: the defaults every source starts with, and shape checks.

A profile is `{"type": "ROOT|CONTAINED", "properties": {key: spec}, "contained"?, "description"?}`;
a property spec is `{"type", "items"? (arrays), "properties"? (objects), "rules"?}`. A relationship
definition is `{"from": {"profileKey", "includeKey"?, "includeCardinality"?}, "to": {...},
"description"?, "properties"?}` (docs/emulator.md section 3). The checks here are light: enough
that a bad definition is refused with the field named, not a full schema language.
"""

from __future__ import annotations

import copy
import re
from typing import Any, Final

from api_client.ids import is_type_key
from emulator.failures import (
    FAILED_PRECONDITION,
    RequestRefusedError,
    detail,
    invalid_argument,
    refuse,
)

JSON = dict[str, Any]

STRING_TYPES: Final = frozenset({"string", "symbol", "code", "markdown", "uri", "url", "xhtml"})
FORMATTED_TYPES: Final = frozenset({"date", "datetime", "instant", "time"})
COMPLEX_TYPES: Final = frozenset(
    {
        "address",
        "attachment",
        "coding",
        "contactpoint",
        "geopoint",
        "humanname",
        "identifier",
        "period",
    }
)
"""Documented complex types, accepted as objects whose inner fields are not checked."""
SCALAR_TYPES: Final = STRING_TYPES | FORMATTED_TYPES | {"integer", "decimal", "boolean"}
PROPERTY_TYPES: Final = SCALAR_TYPES | COMPLEX_TYPES | {"array", "object", "reference"}
RULE_KEYS: Final = frozenset({"required", "min", "max", "enum", "pattern", "when"})
CARDINALITIES: Final = frozenset({"0:1", "1:1", "0:*", "1:*"})
PROFILE_KINDS: Final = frozenset({"ROOT", "CONTAINED"})

DEFAULT_PROFILES: Final[dict[str, JSON]] = {
    "office": {
        "type": "ROOT",
        "description": "A place where providers work (the seed examples' office).",
        "properties": {
            "name": {"type": "string"},
            "description": {"type": "markdown"},
            "website": {"type": "url"},
            "active": {"type": "boolean"},
            "openedOn": {"type": "date"},
        },
    },
    "provider": {
        "type": "ROOT",
        "description": "A health provider (the seed examples' provider).",
        "properties": {
            "name": {"type": "string"},
            "practiceNumber": {"type": "integer"},
            "specialities": {"type": "array", "items": {"type": "string"}},
        },
    },
}
DEFAULT_RELATIONSHIP_DEFINITIONS: Final[dict[str, JSON]] = {
    "provider-office": {
        "description": "An office and a provider who works there (the seed example).",
        "from": {"profileKey": "office", "includeKey": "staff", "includeCardinality": "0:*"},
        "to": {"profileKey": "provider", "includeKey": "worksAt", "includeCardinality": "0:*"},
        "properties": {"description": {"type": "string"}},
    }
}


def default_profiles() -> dict[str, JSON]:
    """A fresh copy of the profiles a source is provisioned with."""
    return copy.deepcopy(DEFAULT_PROFILES)


def default_relationship_definitions() -> dict[str, JSON]:
    """A fresh copy of the relationship definitions a source is provisioned with."""
    return copy.deepcopy(DEFAULT_RELATIONSHIP_DEFINITIONS)


def refuse_profile(key: str, body: Any) -> None:
    """Raise a 400 listing every problem of a profile body, each naming its field."""
    problems = check_profile(body)
    if problems:
        details = [detail(problem) for problem in problems]
        error = invalid_argument(f"invalid profile '{key}'", details)
        raise RequestRefusedError(400, error)


def refuse_relationship_definition(key: str, body: Any, profiles: dict[str, JSON]) -> None:
    """Raise a 400 for a malformed definition, or one whose profiles do not exist."""
    problems = check_relationship_definition(body)
    if problems:
        details = [detail(problem) for problem in problems]
        error = invalid_argument(f"invalid relationship definition '{key}'", details)
        raise RequestRefusedError(400, error)
    for side in ("from", "to"):
        profile_key = body[side]["profileKey"]
        if profile_key not in profiles:
            message = f"{side}.profileKey: profile '{profile_key}' does not exist"
            raise refuse(FAILED_PRECONDITION, message)


def check_profile(body: Any) -> list[str]:
    """What is wrong with a profile body, each problem naming its field; empty when it is fine."""
    if not isinstance(body, dict):
        return ["body: expected an object"]
    problems = _unknown_keys(body, {"type", "properties", "contained", "description"}, "")
    kind = body.get("type", "ROOT")
    if not is_one_of(kind, PROFILE_KINDS):
        problems.append(f"type: expected one of {sorted(PROFILE_KINDS)}, got {kind!r}")
    problems += _check_description(body)
    problems += check_properties(body.get("properties"), "properties")
    contained = body.get("contained")
    if contained is not None:
        problems += _check_contained(contained)
    return problems


def check_relationship_definition(body: Any) -> list[str]:
    """What is wrong with a relationship definition body; empty when it is fine."""
    if not isinstance(body, dict):
        return ["body: expected an object"]
    problems = _unknown_keys(body, {"from", "to", "description", "properties"}, "")
    problems += _check_description(body)
    for side in ("from", "to"):
        problems += _check_side(body.get(side), side)
    if body.get("properties") is not None:
        problems += check_properties(body["properties"], "properties")
    return problems


def check_properties(properties: Any, where: str) -> list[str]:
    """Problems of a `properties` map: each key a type key, each spec well formed."""
    if not isinstance(properties, dict):
        return [f"{where}: expected an object of property specs"]
    problems: list[str] = []
    for key, spec in properties.items():
        if not is_type_key(key):
            problems.append(f"{where}.{key}: not a valid property key")
        problems += _check_spec(spec, f"{where}.{key}")
    return problems


def _check_spec(spec: Any, where: str) -> list[str]:
    if not isinstance(spec, dict):
        return [f"{where}: expected an object with a 'type'"]
    problems = _unknown_keys(spec, {"type", "items", "properties", "rules", "description"}, where)
    kind = spec.get("type")
    if not is_one_of(kind, PROPERTY_TYPES):
        problems.append(f"{where}.type: unknown property type {kind!r}")
    if kind == "array":
        problems += _check_spec(spec.get("items"), f"{where}.items")
    elif "items" in spec:
        problems.append(f"{where}.items: only an array has items")
    if "properties" in spec:
        if kind != "object":
            problems.append(f"{where}.properties: only an object has properties")
        else:
            problems += check_properties(spec["properties"], f"{where}.properties")
    problems += _check_rules(spec.get("rules", []), f"{where}.rules")
    return problems


def _check_rules(rules: Any, where: str) -> list[str]:
    if not isinstance(rules, list):
        return [f"{where}: expected a list of rules"]
    problems: list[str] = []
    for index, rule in enumerate(rules):
        at = f"{where}[{index}]"
        if not isinstance(rule, dict):
            problems.append(f"{at}: expected an object")
            continue
        problems += _unknown_keys(rule, set(RULE_KEYS), at)
        if "required" in rule and not isinstance(rule["required"], bool):
            problems.append(f"{at}.required: expected a boolean")
        for bound in ("min", "max"):
            value = rule.get(bound)
            if bound in rule and (isinstance(value, bool) or not isinstance(value, int | float)):
                problems.append(f"{at}.{bound}: expected a number")
        if "enum" in rule and not isinstance(rule["enum"], list):
            problems.append(f"{at}.enum: expected a list")
        if "pattern" in rule:
            problems += _check_pattern(rule["pattern"], f"{at}.pattern")
    return problems


def _check_pattern(pattern: Any, where: str) -> list[str]:
    if not isinstance(pattern, str):
        return [f"{where}: expected a string"]
    try:
        re.compile(pattern)
    except re.error as exc:
        return [f"{where}: not a valid regular expression ({exc})"]
    return []


def _check_contained(contained: Any) -> list[str]:
    if not isinstance(contained, dict):
        return ["contained: expected an object"]
    problems: list[str] = []
    for key, spec in contained.items():
        at = f"contained.{key}"
        if not isinstance(spec, dict):
            problems.append(f"{at}: expected an object with 'types' and 'cardinality'")
            continue
        problems += _unknown_keys(spec, {"types", "cardinality"}, at)
        types = spec.get("types")
        if not isinstance(types, list) or not types or not all(is_str_key(t) for t in types):
            problems.append(f"{at}.types: expected a non-empty list of profile keys")
        if not is_one_of(spec.get("cardinality", "0:*"), CARDINALITIES):
            problems.append(f"{at}.cardinality: expected one of {sorted(CARDINALITIES)}")
    return problems


def _check_side(side: Any, where: str) -> list[str]:
    if not isinstance(side, dict):
        return [f"{where}: expected an object with a 'profileKey'"]
    problems = _unknown_keys(
        side, {"profileKey", "includeKey", "includeCardinality", "cardinality"}, where
    )
    if not is_str_key(side.get("profileKey")):
        problems.append(f"{where}.profileKey: expected a profile key")
    if "includeKey" in side and not is_str_key(side["includeKey"]):
        problems.append(f"{where}.includeKey: expected a key")
    for field in ("includeCardinality", "cardinality"):
        if field in side and not is_one_of(side[field], CARDINALITIES):
            problems.append(f"{where}.{field}: expected one of {sorted(CARDINALITIES)}")
    return problems


def _check_description(body: JSON) -> list[str]:
    if "description" in body and not isinstance(body["description"], str):
        return ["description: expected a string"]
    return []


def _unknown_keys(body: JSON, allowed: set[str] | frozenset[str], where: str) -> list[str]:
    prefix = f"{where}." if where else ""
    return [f"{prefix}{key}: unknown field" for key in body if key not in allowed]


def is_str_key(value: Any) -> bool:
    """Whether `value` is a string that is a valid profile or definition key."""
    return isinstance(value, str) and is_type_key(value)


def is_one_of(value: Any, options: frozenset[str]) -> bool:
    """Whether `value` is a string among `options` (safe for any parsed JSON value)."""
    return isinstance(value, str) and value in options

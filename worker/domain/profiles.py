"""An event judged against its source's own profiles, by the rules the Registry applies.

A profile (`{"type", "properties", "contained"?}`) or a relationship definition (`{"from", "to",
"properties"?}`) is compiled once per version into closures (`compile_profile`,
`compile_definition`; `CompiledCache` keeps them per process), and `profile_problems` judges an
event with the compiled set of its source (`ProfileBook`). The rules are the emulator's
(emulator/validation.py, emulator/checks.py), in its order: the type must have a profile (a
relationship its definition), a resource's profile must be ROOT, a relationship's ends must have
the definition's types; then, except on DELETE, the properties: JSON types (with the date formats),
`required`, `min`/`max` (a number's value, a string's or array's length), `enum`, `pattern`, no
unknown property, `contained` (known keys, allowed types, cardinality, each item's data), and
reference properties naming valid resource ids. Conditional rules (`when`) are skipped, as the
emulator skips them; a property type this module does not know accepts anything, so an unknown
rule never refuses an event the Registry would take.

A problem names the event's field (`data.name`, `data.specialities[1]`,
`contained.staff[0].data.name`, `from.type`...) and never echoes a value: payloads carry health
data. Pure: no I/O; the caller reads the profiles.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from api_client.ids import is_resource_id, is_virtual_id
from api_client.rfc3339 import is_datetime, is_instant, is_partial_date, is_time
from worker.domain.events import ChangeEvent, Target
from worker.domain.payloads import Problem

__all__ = [
    "MISSING",
    "CompiledCache",
    "CompiledDefinition",
    "CompiledProfile",
    "Missing",
    "ProfileBook",
    "compile_definition",
    "compile_profile",
    "profile_problems",
    "profile_version",
]

_STRING_TYPES: Final = frozenset({"string", "symbol", "code", "markdown", "uri", "url", "xhtml"})
_COMPLEX_TYPES: Final = frozenset(
    {"address", "attachment", "coding", "contactpoint", "geopoint", "humanname", "identifier"}
    | {"period"}
)
_ITEM_FIELDS: Final = frozenset({"id", "type", "data"})
_BAD_REFERENCE: Final = "is not a valid resource id"

Out = list[Problem]
Check = Callable[[Any, str, Out], None]
"""Judges one value that is not None at a field path, appending what is wrong."""
DataCheck = Callable[[Mapping[str, Any], str, Out], None]
"""Judges an object of properties whose path prefix is given (`data`, `contained.x[0].data`)."""


class Missing:
    """A key the source does not have (the Registry answered 404 for that very key)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = Missing()


def profile_version(body: Any) -> str:
    """A short digest of a profile or definition body: equal bodies, equal versions."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


# -- formats and JSON types ---------------------------------------------------------------------

_FORMATS: Final[dict[str, Callable[[str], bool]]] = {
    "date": is_partial_date,
    "datetime": is_datetime,
    "instant": is_instant,
    "time": is_time,
}
_JSON_NAMES: Final[dict[type, str]] = {
    type(None): "null",
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "array",
}


def _json_type(value: Any) -> str:
    return _JSON_NAMES.get(type(value), "object")


def _reference_id(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("id"), str):
        return str(value["id"])
    return None


# -- compiling property specs -------------------------------------------------------------------


def _type_test(kind: str) -> tuple[Callable[[Any], bool], str] | None:
    """What a value of `kind` must be, and its name; None for a kind this module does not know."""
    if kind in _STRING_TYPES or kind in _FORMATS:
        return (lambda v: isinstance(v, str)), ("string" if kind == "string" else f"string {kind}")
    if kind == "integer":
        return (lambda v: isinstance(v, int) and not isinstance(v, bool)), "integer"
    if kind == "decimal":
        return (lambda v: isinstance(v, int | float) and not isinstance(v, bool)), "number"
    if kind == "boolean":
        return (lambda v: isinstance(v, bool)), "boolean"
    if kind == "array":
        return (lambda v: isinstance(v, list)), "array"
    if kind == "reference":
        return (lambda v: _reference_id(v) is not None), "reference"
    if kind == "object" or kind in _COMPLEX_TYPES:
        return (lambda v: isinstance(v, dict)), "object"
    return None


def _merged_rules(spec: Mapping[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for rule in spec.get("rules") or []:
        if isinstance(rule, dict) and "when" not in rule:
            merged.update(rule)
    return merged


def _enum_members(values: list[Any]) -> Any:
    """The enum as a set when every member is hashable (same `in` as a list), else the list."""
    try:
        return frozenset(values)
    except TypeError:
        return list(values)


def _rule_checks(rules: dict[str, Any]) -> list[Check]:
    checks: list[Check] = []
    low, high = rules.get("min"), rules.get("max")
    if low is not None or high is not None:

        def bounds(value: Any, path: str, out: Out) -> None:
            if isinstance(value, bool):
                return
            if isinstance(value, int | float):
                measured, what = value, "value"
            elif isinstance(value, str | list):
                measured, what = len(value), "length"
            else:
                return
            if low is not None and measured < low:
                out.append(Problem(path, f"{what} is below min {low}"))
            if high is not None and measured > high:
                out.append(Problem(path, f"{what} is above max {high}"))

        checks.append(bounds)
    if "enum" in rules and isinstance(rules["enum"], list):
        members = _enum_members(rules["enum"])

        def enum(value: Any, path: str, out: Out) -> None:
            for item in value if isinstance(value, list) else (value,):
                try:
                    allowed = item in members
                except TypeError:  # an unhashable item against a set of hashables
                    allowed = False
                if not allowed:
                    out.append(Problem(path, "is not one of the allowed values"))

        checks.append(enum)
    if isinstance(rules.get("pattern"), str):
        search = re.compile(rules["pattern"]).search

        def pattern(value: Any, path: str, out: Out) -> None:
            for item in value if isinstance(value, list) else (value,):
                if isinstance(item, str) and search(item) is None:
                    out.append(Problem(path, "does not match the profile's pattern"))

        checks.append(pattern)
    return checks


def _compile_value(spec: Any) -> tuple[Check, bool]:
    """The check of one property's value (not None), and whether the property is required."""
    if not isinstance(spec, dict):
        return _accept, False
    rules = _merged_rules(spec)
    required = rules.get("required") is True
    kind = spec.get("type")
    test = _type_test(kind) if isinstance(kind, str) else None
    if test is None:
        return _accept, required
    is_kind, kind_name = test
    fmt = _FORMATS.get(str(kind))
    rule_checks = _rule_checks(rules)
    inner: Check | None = None
    if kind == "array":
        inner = _compile_items(spec.get("items"))
    elif kind == "object" and isinstance(spec.get("properties"), dict):
        data_check = compile_data(spec["properties"])

        def inner_object(value: Any, path: str, out: Out) -> None:
            data_check(value, path, out)

        inner = inner_object
    elif kind == "reference":
        inner = _check_reference

    def check(value: Any, path: str, out: Out) -> None:
        if not is_kind(value):
            out.append(Problem(path, f"expected {kind_name}, got {_json_type(value)}"))
            return
        if fmt is not None and not fmt(value):
            out.append(Problem(path, f"is not a valid {kind}"))
            return
        for rule in rule_checks:
            rule(value, path, out)
        if inner is not None:
            inner(value, path, out)

    return check, required


def _compile_items(items_spec: Any) -> Check:
    item_check, item_required = _compile_value(items_spec)

    def items(value: Any, path: str, out: Out) -> None:
        for index, item in enumerate(value):
            at = f"{path}[{index}]"
            if item is None:
                if item_required:
                    out.append(Problem(at, "is required"))
            else:
                item_check(item, at, out)

    return items


def _accept(value: Any, path: str, out: Out) -> None:
    """Anything goes (an unknown property type, or an object without properties)."""


def _check_reference(value: Any, path: str, out: Out) -> None:
    """A reference's id must be a resource id (the Registry refuses a virtual one here too)."""
    named = _reference_id(value)
    if named is not None and (is_virtual_id(named) or not is_resource_id(named)):
        out.append(Problem(path, _BAD_REFERENCE))


def compile_data(properties: Mapping[str, Any]) -> DataCheck:
    """The check of an object under `properties`: each property's rules and no unknown key."""
    specs = [(key, *_compile_value(spec)) for key, spec in properties.items()]
    known = frozenset(properties)

    def check(data: Mapping[str, Any], prefix: str, out: Out) -> None:
        for key in data:
            if key not in known:
                out.append(Problem(f"{prefix}.{key}", "is not a property of the profile"))
        for key, value_check, required in specs:
            value = data.get(key)
            if value is None:
                if required:
                    out.append(Problem(f"{prefix}.{key}", "is required"))
            else:
                value_check(value, f"{prefix}.{key}", out)

    return check


# -- compiled profiles and definitions ----------------------------------------------------------


@dataclass(frozen=True)
class ContainSpec:
    """What a profile may contain under one key: the allowed types and the cardinality."""

    types: tuple[str, ...]
    low: int
    high: int | None


@dataclass(frozen=True)
class CompiledProfile:
    """A profile, compiled: its kind, the check of its `data`, what it may contain."""

    key: str
    version: str
    kind: str
    check_data: DataCheck
    contained: Mapping[str, ContainSpec]

    @property
    def contained_types(self) -> frozenset[str]:
        """The profile keys its contained records may have (whose profiles judge them)."""
        return frozenset(t for spec in self.contained.values() for t in spec.types)


@dataclass(frozen=True)
class CompiledDefinition:
    """A relationship definition, compiled: its ends' profile keys and the check of its data."""

    key: str
    version: str
    from_type: str
    to_type: str
    check_data: DataCheck


def _cardinality(text: Any) -> tuple[int, int | None]:
    low, _, high = str(text).partition(":")
    try:
        return int(low), (None if high == "*" else int(high))
    except ValueError:
        return 0, None


def compile_profile(key: str, body: Mapping[str, Any]) -> CompiledProfile:
    """A profile body as the Registry serves it, compiled once."""
    contained: dict[str, ContainSpec] = {}
    for contain_key, spec in (body.get("contained") or {}).items():
        if isinstance(spec, dict):
            low, high = _cardinality(spec.get("cardinality", "0:*"))
            types = tuple(t for t in spec.get("types") or [] if isinstance(t, str))
            contained[contain_key] = ContainSpec(types, low, high)
    properties = body.get("properties")
    return CompiledProfile(
        key=key,
        version=profile_version(body),
        kind=str(body.get("type", "ROOT")),
        check_data=compile_data(properties if isinstance(properties, dict) else {}),
        contained=contained,
    )


def compile_definition(key: str, body: Mapping[str, Any]) -> CompiledDefinition:
    """A relationship definition body as the Registry serves it, compiled once."""
    properties = body.get("properties")
    return CompiledDefinition(
        key=key,
        version=profile_version(body),
        from_type=str((body.get("from") or {}).get("profileKey", "")),
        to_type=str((body.get("to") or {}).get("profileKey", "")),
        check_data=compile_data(properties if isinstance(properties, dict) else {}),
    )


@dataclass
class CompiledCache:
    """Compiled profiles and definitions by (kind, key, version): each compiled once per process.

    `limit` bounds it; past it the oldest half is forgotten (a version no longer served is never
    asked for again).
    """

    limit: int = 4096
    _entries: dict[tuple[str, str, str], CompiledProfile | CompiledDefinition] = field(
        default_factory=dict
    )

    def get(self, kind: str, key: str, version: str) -> CompiledProfile | CompiledDefinition | None:
        """The compiled entry of this version, or None when it was not compiled here."""
        return self._entries.get((kind, key, version))

    def compile(
        self, kind: str, key: str, body: Mapping[str, Any], version: str | None = None
    ) -> CompiledProfile | CompiledDefinition:
        """Compile `body` (or return its compiled copy); `kind` is "p" (profile) or "r"."""
        version = version or profile_version(body)
        found = self._entries.get((kind, key, version))
        if found is not None:
            return found
        compiled = compile_profile(key, body) if kind == "p" else compile_definition(key, body)
        if len(self._entries) >= self.limit:
            for old in list(self._entries)[: self.limit // 2]:
                self._entries.pop(old, None)  # another thread may have dropped it already
        self._entries[(kind, key, version)] = compiled
        return compiled


@dataclass(frozen=True)
class ProfileBook:
    """What is known of one source's profiles and definitions: compiled, MISSING, or absent
    (not read: an event that needs it is not judged)."""

    source: str
    profiles: Mapping[str, CompiledProfile | Missing] = field(default_factory=dict)
    definitions: Mapping[str, CompiledDefinition | Missing] = field(default_factory=dict)


# -- judging an event ---------------------------------------------------------------------------


def profile_problems(event: ChangeEvent, book: ProfileBook) -> list[Problem] | None:
    """What the Registry would refuse in `event` under `book`: [] when it fits, the problems when
    it does not, None when the book lacks what is needed to judge it (never a refusal)."""
    if event.target is Target.RELATIONSHIP:
        return _relationship_problems(event, book)
    profile = book.profiles.get(event.type)
    if profile is None:
        return None
    if isinstance(profile, Missing):
        return [Problem("type", f"profile '{event.type}' does not exist in source '{book.source}'")]
    if profile.kind == "CONTAINED":
        return [Problem("type", f"profile '{event.type}' is CONTAINED: not a record of its own")]
    if event.action == "DELETE":
        return []  # the type is all the Registry judges of a DELETE
    out: Out = []
    profile.check_data(event.data or {}, "data", out)
    if event.contained is not None and not _contained_problems(profile, event.contained, book, out):
        return None
    return _references_last(out)


def _references_last(out: Out) -> Out:
    """The Registry judges references (in `data` only) once the content fits its profile."""
    content = [p for p in out if p.reason != _BAD_REFERENCE]
    if content:
        return content
    return [p for p in out if p.field.startswith("data.")]


def _relationship_problems(event: ChangeEvent, book: ProfileBook) -> list[Problem] | None:
    definition = book.definitions.get(event.type)
    if definition is None:
        return None
    if isinstance(definition, Missing):
        reason = f"relationship definition '{event.type}' does not exist in source '{book.source}'"
        return [Problem("type", reason)]
    out: Out = []
    for name, end, expected in (
        ("from", event.from_, definition.from_type),
        ("to", event.to, definition.to_type),
    ):
        if end is not None and end.type != expected:
            out.append(Problem(f"{name}.type", f"relationship '{event.type}' needs '{expected}'"))
    if out or event.action == "DELETE":
        return out
    definition.check_data(event.data or {}, "data", out)
    return [p for p in out if p.reason != _BAD_REFERENCE]  # not judged on relationships


def _contained_problems(
    profile: CompiledProfile, contained: Mapping[str, Any], book: ProfileBook, out: Out
) -> bool:
    """Append the problems of `contained`; False when an item's profile is unknown to the book."""
    for key in contained:
        if key not in profile.contained:
            out.append(Problem(f"contained.{key}", "is not a contain key of the profile"))
    for key, spec in profile.contained.items():
        items = contained.get(key)
        at_key = f"contained.{key}"
        items = [] if items is None else items
        if not isinstance(items, list):
            out.append(Problem(at_key, f"expected array, got {_json_type(items)}"))
            continue
        if len(items) < spec.low:
            out.append(Problem(at_key, f"needs at least {spec.low} item(s)"))
        if spec.high is not None and len(items) > spec.high:
            out.append(Problem(at_key, f"takes at most {spec.high} item(s)"))
        for index, item in enumerate(items):
            at = f"{at_key}[{index}]"
            if not isinstance(item, dict):
                out.append(Problem(at, f"expected object, got {_json_type(item)}"))
                continue
            for name in item:
                if name not in _ITEM_FIELDS:
                    out.append(Problem(f"{at}.{name}", "unknown field"))
            item_type = item.get("type")
            item_profile = book.profiles.get(item_type) if isinstance(item_type, str) else None
            if isinstance(item_type, str) and item_type in spec.types and item_profile is None:
                return False
            if not isinstance(item_profile, CompiledProfile) or item_type not in spec.types:
                out.append(Problem(f"{at}.type", f"expected one of {list(spec.types)!r}"))
                continue
            data = item.get("data", {})
            if not isinstance(data, dict):
                out.append(Problem(f"{at}.data", f"expected object, got {_json_type(data)}"))
                continue
            item_profile.check_data(data, f"{at}.data", out)
    return True

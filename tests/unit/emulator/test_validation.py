"""Profile conformance: each property type, each rule, contained records, and the meta rules."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from emulator.validation import validate_contained, validate_data, validate_meta

NOW = datetime(2024, 11, 27, 12, 0, 0, tzinfo=UTC)


def _messages(problems: list[dict[str, Any]]) -> list[str]:
    for problem in problems:
        assert problem["code"] == 400
        assert problem["type"] == "INVALID_ARGUMENT"
    return [str(problem["message"]) for problem in problems]


def _check(spec: dict[str, Any], value: Any) -> list[str]:
    return _messages(validate_data({"field": spec}, {"field": value}))


@pytest.mark.parametrize(
    ("kind", "good", "bad"),
    [
        ("string", "text", 1),
        ("symbol", "sym", True),
        ("code", "c", ["c"]),
        ("markdown", "*m*", {}),
        ("uri", "urn:x", 1.5),
        ("url", "https://x.example", 3),
        ("integer", 1020993, 1.5),
        ("integer", -3, "3"),
        ("decimal", 1.25, "1.25"),
        ("decimal", 2, True),
        ("boolean", False, "false"),
        ("boolean", True, 1),
        ("date", "2024-02-29", "2023-02-29"),
        ("date", "2024-02", "2024-13"),
        ("date", "2024", "24"),
        ("datetime", "2024-11-27T15:43:09Z", "2024-11-27 15:43"),
        ("datetime", "2024-11", "2024-11-27T15:43:09"),
        ("instant", "2024-11-27T15:43:09.438665+01:00", "2024-11-27"),
        ("time", "15:43:09", "25:00"),
        ("time", "08:30", "8h30"),
        ("object", {"anything": [1]}, "text"),
        ("address", {"city": "Montreal"}, ["Montreal"]),
        ("reference", "2pUv7EdiOrKlphAYBtTKF0TwCM9", 42),
        ("reference", {"id": "1", "type": "office"}, {"type": "office"}),
    ],
)
def test_validation_property_types(kind: str, good: Any, bad: Any) -> None:
    assert _check({"type": kind}, good) == []
    problems = _check({"type": kind}, bad)
    assert len(problems) == 1
    assert "'field'" in problems[0]


def test_validation_wrong_type_names_property_and_expected_type() -> None:
    assert _check({"type": "integer"}, "12") == [
        "invalid type for property 'field': expected integer, got string"
    ]


def test_validation_unknown_property_uses_the_seed_message() -> None:
    problems = validate_data({"name": {"type": "string"}}, {"name": "x", "UNKNOWN": 1})

    assert problems == [
        {
            "code": 400,
            "message": "additionalProperties 'UNKNOWN' not allowed",
            "type": "INVALID_ARGUMENT",
        }
    ]


def test_validation_array_items_are_checked_with_their_index() -> None:
    spec = {"type": "array", "items": {"type": "string"}}

    assert _check(spec, ["a", "b"]) == []
    assert _check(spec, ["a", 2]) == [
        "invalid type for property 'field[1]': expected string, got integer"
    ]
    assert len(_check(spec, "a")) == 1


def test_validation_nested_object_properties() -> None:
    spec = {"type": "object", "properties": {"city": {"type": "string"}}}

    assert _check(spec, {"city": "Laval"}) == []
    assert _check(spec, {"city": 1}) == [
        "invalid type for property 'field.city': expected string, got integer"
    ]
    assert _check(spec, {"zip": "H0H"}) == ["additionalProperties 'zip' not allowed in 'field'"]


def test_validation_rule_required() -> None:
    properties = {"name": {"type": "string", "rules": [{"required": True}]}}

    assert _messages(validate_data(properties, {"name": "x"})) == []
    assert _messages(validate_data(properties, {})) == ["property 'name' is required"]
    assert _messages(validate_data(properties, {"name": None})) == ["property 'name' is required"]


def test_validation_absent_or_null_optional_property_passes() -> None:
    properties = {"name": {"type": "string", "rules": [{"min": 3}]}}

    assert validate_data(properties, {}) == []
    assert validate_data(properties, {"name": None}) == []


@pytest.mark.parametrize(
    ("spec", "good", "too_low", "too_high"),
    [
        ({"type": "integer"}, 5, 0, 11),
        ({"type": "decimal"}, 1.5, 0.5, 10.5),
        ({"type": "string"}, "abc", "", "x" * 11),
        ({"type": "array", "items": {"type": "integer"}}, [1], [], list(range(11))),
    ],
)
def test_validation_rules_min_and_max(
    spec: dict[str, Any], good: Any, too_low: Any, too_high: Any
) -> None:
    ruled = {**spec, "rules": [{"min": 1}, {"max": 10}]}

    assert _check(ruled, good) == []
    assert "below min 1" in _check(ruled, too_low)[0]
    assert "above max 10" in _check(ruled, too_high)[0]


def test_validation_rule_min_and_max_in_one_rule_object() -> None:
    ruled = {"type": "integer", "rules": [{"min": 1, "max": 2}]}

    assert _check(ruled, 2) == []
    assert len(_check(ruled, 3)) == 1


def test_validation_rule_enum() -> None:
    ruled = {"type": "code", "rules": [{"enum": ["active", "inactive"]}]}

    assert _check(ruled, "active") == []
    assert _check(ruled, "gone") == [
        "property 'field': 'gone' is not one of ['active', 'inactive']"
    ]


def test_validation_rule_enum_on_array_items() -> None:
    ruled = {"type": "array", "items": {"type": "string"}, "rules": [{"enum": ["a", "b"]}]}

    assert _check(ruled, ["a", "b"]) == []
    assert len(_check(ruled, ["a", "c"])) == 1


def test_validation_rule_pattern() -> None:
    ruled = {"type": "string", "rules": [{"pattern": "^[A-Z]{2}-\\d+$"}]}

    assert _check(ruled, "QC-123") == []
    assert "does not match pattern" in _check(ruled, "qc-123")[0]


def test_validation_conditional_rule_is_skipped() -> None:
    ruled = {"type": "string", "rules": [{"required": True, "when": {"x": 1}}]}

    assert validate_data({"field": ruled}, {}) == []


def test_validation_data_must_be_an_object() -> None:
    assert _messages(validate_data({}, [])) == ["data: expected object, got array"]


def test_validation_contained_records() -> None:
    profiles = {"address": {"type": "CONTAINED", "properties": {"city": {"type": "string"}}}}
    parent = {
        "properties": {},
        "contained": {"addresses": {"types": ["address"], "cardinality": "1:1"}},
    }

    good = {"addresses": [{"id": "a1", "type": "address", "data": {"city": "Laval"}}]}
    assert validate_contained(parent, good, profiles) == []
    assert len(validate_contained(parent, {}, profiles)) == 1
    two = {"addresses": good["addresses"] * 2}
    assert "at most 1" in _messages(validate_contained(parent, two, profiles))[0]
    unknown: dict[str, Any] = {"phones": []}
    assert "additionalProperties 'phones' not allowed in 'contained'" in _messages(
        validate_contained(parent, {**good, **unknown}, profiles)
    )
    wrong_type = {"addresses": [{"type": "office", "data": {}}]}
    assert len(validate_contained(parent, wrong_type, profiles)) == 1
    bad_data = {"addresses": [{"type": "address", "data": {"city": 1}}]}
    assert len(validate_contained(parent, bad_data, profiles)) == 1


T0 = "2024-01-01T00:00:00Z"


@pytest.mark.parametrize(
    "meta",
    [
        {},
        {"createdAt": T0},
        {"createdAt": T0, "updatedAt": T0},
        {"createdAt": T0, "updatedAt": "2024-11-27T12:00:00Z"},  # exactly now
        {"createdAt": "2024-01-01t00:00:00.123456789z"},
        {"createdAt": "2024-01-01T05:30:00+05:30", "updatedAt": T0},  # the same moment
        {
            "identifier": [
                {"system": "https://x.example", "value": "1", "use": "official"},
                {"system": "https://x.example", "value": "1", "use": "secondary"},
            ]
        },
        {"identifier": [{"value": "1"}, {"value": "1", "system": "None"}]},
        {
            "identifier": [
                {
                    "id": "i1",
                    "system": "s",
                    "value": "1",
                    "use": "u",
                    "type": {"text": "npi"},
                    "period": {"id": "p1", "start": "2020", "end": "2024-01-01"},
                }
            ]
        },
        {"identifier": []},
    ],
)
def test_validation_meta_accepts_what_the_rules_allow(meta: dict[str, Any]) -> None:
    assert validate_meta(meta, NOW) == []


META_REFUSALS: list[tuple[Any, str, str]] = [
    ([], "meta", "must be a JSON object"),
    ({"updatedAt": T0}, "meta.createdAt", "is required when meta.updatedAt is given"),
    ({"createdAt": "2024-02-01T00:00:00Z", "updatedAt": T0}, "meta.updatedAt", "before"),
    ({"createdAt": "2024-11-27T12:00:00.000001Z"}, "meta.createdAt", "in the future"),
    ({"createdAt": T0, "updatedAt": "2024-11-28T00:00:00Z"}, "meta.updatedAt", "in the future"),
    ({"createdAt": "yesterday"}, "meta.createdAt", "RFC 3339"),
    ({"createdAt": "2024-01-01 00:00:00Z"}, "meta.createdAt", "RFC 3339"),
    ({"createdAt": "2024-01-01T00:00Z"}, "meta.createdAt", "RFC 3339"),
    ({"createdAt": "2024-01-01T00:00:00"}, "meta.createdAt", "RFC 3339"),
    ({"createdAt": "20240101T000000Z"}, "meta.createdAt", "RFC 3339"),
    ({"createdAt": T0, "updatedAt": "2024-01-01T00:00:00+0000"}, "meta.updatedAt", "RFC 3339"),
    ({"createdAt": 1_700_000_000}, "meta.createdAt", "RFC 3339"),
    ({"createdAt": None}, "meta.createdAt", "RFC 3339"),
    ({"source": "mine"}, "meta.source", "set by the Registry"),
    ({"colour": 1}, "meta.colour", "unknown field"),
    ({"identifier": {}}, "meta.identifier", "must be a list"),
    ({"identifier": None}, "meta.identifier", "must be a list"),
    ({"identifier": ["1"]}, "meta.identifier[0]", "must be an object"),
    ({"identifier": [{"value": "1", "colour": 1}]}, "meta.identifier[0].colour", "unknown"),
    ({"identifier": [{"system": "s"}]}, "meta.identifier[0].value", "is required"),
    ({"identifier": [{"value": 1}]}, "meta.identifier[0].value", "must be a string"),
    ({"identifier": [{"value": None}]}, "meta.identifier[0].value", "must be a string"),
    ({"identifier": [{"value": "1", "system": 1}]}, "meta.identifier[0].system", "a string"),
    ({"identifier": [{"value": "1", "use": ["a"]}]}, "meta.identifier[0].use", "a string"),
    ({"identifier": [{"value": "1", "id": 7}]}, "meta.identifier[0].id", "a string"),
    ({"identifier": [{"value": "1", "use": "source"}]}, "meta.identifier[0].use", "reserved"),
    ({"identifier": [{"value": "1", "system": "mdm"}]}, "meta.identifier[0].system", "reserved"),
    (
        {"identifier": [{"system": "s", "value": "1"}, {"system": "s", "value": "1"}]},
        "meta.identifier[1]",
        "repeats",
    ),
    ({"identifier": [{"value": "1", "period": "2020"}]}, "meta.identifier[0].period", "object"),
    (
        {"identifier": [{"value": "1", "period": {"start": "2020", "colour": 1}}]},
        "meta.identifier[0].period.colour",
        "unknown field",
    ),
    (
        {"identifier": [{"value": "1", "period": {"start": 2020}}]},
        "meta.identifier[0].period.start",
        "must be a string",
    ),
]


@pytest.mark.parametrize(("meta", "field", "fragment"), META_REFUSALS)
def test_validation_meta_rules(meta: Any, field: str, fragment: str) -> None:
    messages = _messages(validate_meta(meta, NOW))

    assert any(m.startswith(f"{field}: ") and fragment in m for m in messages), messages


def test_validation_meta_messages_never_echo_values() -> None:
    secret = "Patient-Name-Zed"
    meta = {
        "createdAt": secret,
        "colour": secret,
        "identifier": [{"value": secret, "use": "source", "period": {"start": 1}}] * 2,
    }

    messages = _messages(validate_meta(meta, NOW))

    assert len(messages) >= 4
    assert all(secret not in message for message in messages)

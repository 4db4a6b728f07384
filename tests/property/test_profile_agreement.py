"""The worker refuses at publish exactly the content the emulator refuses, naming the same fields.

Each side runs through its real entry point on a whole write: the worker's `parse_event` then
`profile_problems` with the compiled profiles, the emulator's request parsing then
`check_resource` / `check_relationship` on the same operation. The profiles are the emulator's
seeds (`office`, `provider`, `provider-office`) plus a profile using every rule and property type
(`clinic`), a CONTAINED one (`member`) and a definition with properties; payloads are drawn around
them: valid values, near misses of each rule, wrong types, nulls, unknown keys, bad contained items.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator.checks import check_relationship, check_resource
from emulator.operations import relationship_op_from_payload, resource_op_from_payload
from emulator.profiles import check_profile, default_profiles, default_relationship_definitions
from worker.domain.events import ChangeEvent, parse_event
from worker.domain.profiles import (
    MISSING,
    CompiledCache,
    ProfileBook,
    profile_problems,
)

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
SOURCE = "src"

PROFILES: dict[str, Any] = {
    **default_profiles(),
    "clinic": {
        "type": "ROOT",
        "properties": {
            "name": {"type": "string", "rules": [{"required": True}, {"min": 2, "max": 8}]},
            "code": {"type": "code", "rules": [{"pattern": "^[A-Z]{2}-[0-9]+$"}]},
            "beds": {"type": "integer", "rules": [{"min": 1}, {"max": 10}]},
            "rating": {"type": "decimal", "rules": [{"min": 0.5, "max": 5}]},
            "kind": {"type": "string", "rules": [{"enum": ["public", "private"]}]},
            "open": {"type": "boolean"},
            "opened": {"type": "date"},
            "since": {"type": "datetime"},
            "stamp": {"type": "instant"},
            "opens": {"type": "time"},
            "tags": {
                "type": "array",
                "items": {"type": "string", "rules": [{"max": 3}]},
                "rules": [{"max": 2}, {"enum": ["a", "ab", "abc", "abcd"]}],
            },
            "address": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "rules": [{"required": True}]},
                    "zip": {"type": "string", "rules": [{"pattern": "^[0-9]{5}$"}]},
                },
            },
            "extra": {"type": "object"},
            "phone": {"type": "contactpoint"},
            "owner": {"type": "reference"},
            "owners": {"type": "array", "items": {"type": "reference"}},
            "note": {"type": "string", "rules": [{"required": True, "when": {"kind": "x"}}]},
        },
        "contained": {
            "staff": {"types": ["member"], "cardinality": "0:1"},
            "site": {"types": ["member", "office"], "cardinality": "1:1"},
        },
    },
    "member": {
        "type": "CONTAINED",
        "properties": {
            "role": {"type": "string", "rules": [{"required": True}, {"enum": ["doc", "nurse"]}]},
            "since": {"type": "date"},
        },
    },
}
DEFINITIONS: dict[str, Any] = {
    **default_relationship_definitions(),
    "clinic-member": {
        "from": {"profileKey": "clinic"},
        "to": {"profileKey": "provider"},
        "properties": {
            "role": {"type": "string", "rules": [{"required": True}, {"max": 4}]},
            "hours": {"type": "integer", "rules": [{"min": 0}]},
        },
    },
}


def _book() -> ProfileBook:
    cache = CompiledCache()
    profiles: dict[str, Any] = {
        key: cache.compile("p", key, body) for key, body in PROFILES.items()
    }
    profiles["nope"] = MISSING
    definitions: dict[str, Any] = {
        key: cache.compile("r", key, body) for key, body in DEFINITIONS.items()
    }
    definitions["nope-link"] = MISSING
    return ProfileBook(SOURCE, profiles, definitions)


BOOK = _book()


def test_the_test_profiles_are_ones_the_emulator_accepts() -> None:
    assert {key: check_profile(body) for key, body in PROFILES.items()} == {
        key: [] for key in PROFILES
    }


# -- each side's answer as a set of fields ------------------------------------------------------

REFERENCE = "<reference>"
"""The emulator names no field for a bad reference; both sides' answers map to this marker."""


def worker_refuses(event: ChangeEvent) -> set[str]:
    problems = profile_problems(event, BOOK)
    assert problems is not None, "the book holds every profile the tests use"
    if problems and all(p.reason == "is not a valid resource id" for p in problems):
        return {REFERENCE}
    return {p.field for p in problems}


_NAMED = re.compile(
    r"^(?:property '(?P<p>[^']+)'|invalid (?:type|format) for property '(?P<q>[^']+)'"
    r"|contained '(?P<c>[^']+)')"
)
_EXTRA = re.compile(r"^additionalProperties '(?P<k>[^']+)' not allowed(?: in '(?P<w>[^']+)')?$")


def _event_path(path: str) -> str:
    """An emulator property path as the event names it (`contained.k[0].x` -> `.data.x`)."""
    if path.startswith("contained."):
        head, _, rest = path.partition("]")
        return f"{head}].data{rest}"
    return f"data.{path}"


def _detail_field(message: str, contained: dict[str, Any] | None) -> str:
    extra = _EXTRA.match(message)
    if extra is not None:
        where = extra["w"]
        if where is None:
            return f"data.{extra['k']}"
        if where == "contained":
            return f"contained.{extra['k']}"
        return f"{_event_path(where)}.{extra['k']}"
    named = _NAMED.match(message)
    if named is not None:
        if named["c"] is not None:
            return f"contained.{named['c']}"
        return _event_path(named["p"] or named["q"])
    field = message.split(": ", 1)[0]
    item = re.fullmatch(r"contained\.(\w+)\[(\d+)\]", field)
    if item is not None and contained is not None:
        # "contained.k[i]: expected object": the item itself, or its data when the item is one
        entry = contained[item[1]][int(item[2])]
        return f"{field}.data" if isinstance(entry, dict) else field
    return field


def emulator_refuses(payload: dict[str, Any], relationship: bool, action: str) -> set[str]:
    if relationship:
        rel = relationship_op_from_payload(action, payload, "op")
        error = check_relationship(rel, DEFINITIONS, SOURCE, NOW)
    else:
        res = resource_op_from_payload(action, payload, "op")
        error = check_resource(res, PROFILES, SOURCE, NOW)
    if error is None:
        return set()
    message = str(error["message"])
    if message.startswith("invalid schema for "):
        contained = payload.get("contained")
        return {_detail_field(str(d["message"]), contained) for d in error["details"]}
    if message.startswith("reference: "):
        return {REFERENCE}
    if "does not exist in source" in message or "is CONTAINED" in message:
        return {"type"}
    goes = re.match(r"relationship '[^']+' goes from '(\w+)' to '(\w+)'", message)
    assert goes is not None, message
    ends = (payload["from"]["type"], payload["to"]["type"])
    return {
        f"{n}.type"
        for n, want, got in zip(("from", "to"), goes.groups(), ends, strict=True)
        if want != got
    }


# -- payloads around the profiles ---------------------------------------------------------------

_TEXTS = ["", "a", "ab", "abc", "abcdefghij", "AB-12", "ab-12", "12345", "1234", "public",
          "private", "doc", "nurse", "2026", "2026-02", "2026-02-30", "2026-01-02",
          "2026-01-02T03:04:05Z", "2026-01-02T03:04:05", "12:30", "25:00", "12:30:61", "r-1",
          "@rootId1", "bad id!"]  # fmt: skip
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-2, 12)
    | st.sampled_from([0.4, 0.5, 2.5, 5.0, 5.5, 1.0])
    | st.sampled_from(_TEXTS)
)
JUNK = SCALARS | st.lists(SCALARS, max_size=3) | st.dictionaries(st.sampled_from(["id", "x"]),
                                                                  SCALARS, max_size=2)  # fmt: skip


def value_for(spec: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values of the property's type (valid, near misses of its rules) mixed with junk."""
    kind = spec["type"]
    own: st.SearchStrategy[Any]
    if kind == "array":
        own = st.lists(value_for(spec["items"]) | st.none(), max_size=4)
    elif kind == "object" and "properties" in spec:
        own = data_for(spec["properties"])
    elif kind in ("object", "contactpoint"):
        own = st.dictionaries(st.sampled_from(["a", "b"]), SCALARS, max_size=2)
    elif kind == "reference":
        ids = st.sampled_from(["r-1", "@rootId1", "bad id!"])
        own = ids | st.builds(lambda i: {"id": i}, ids)
    elif kind == "integer":
        own = st.integers(-2, 12)
    elif kind == "decimal":
        own = st.integers(-1, 6) | st.sampled_from([0.4, 0.5, 2.5, 5.0, 5.5])
    elif kind == "boolean":
        own = st.booleans()
    else:
        own = st.sampled_from(_TEXTS)
    return st.one_of(own, own, own, JUNK)


def data_for(properties: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    optional = {key: value_for(spec) for key, spec in properties.items()}
    optional.update({"UNKNOWN": SCALARS, "colour": SCALARS})
    return st.fixed_dictionaries({}, optional=optional)


ITEMS = st.fixed_dictionaries(
    {"type": st.sampled_from(["member", "member", "office", "nope", "clinic"])},
    optional={
        "data": data_for(PROFILES["member"]["properties"]) | JUNK,
        "id": st.just("c-1"),
        "label": SCALARS,
    },
)
CONTAINED = st.fixed_dictionaries(
    {},
    optional={
        "staff": st.lists(ITEMS | SCALARS, max_size=3) | SCALARS,
        "site": st.lists(ITEMS, max_size=2),
        "wing": st.lists(ITEMS, max_size=1),
    },
)


@st.composite
def resource_writes(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    type_ = draw(st.sampled_from(["clinic", "clinic", "clinic", "office", "provider", "member",
                                  "nope"]))  # fmt: skip
    action = draw(st.sampled_from(["UPSERT", "CREATE", "DELETE"]))
    payload: dict[str, Any] = {"type": type_, "id": "r-1"}
    if action != "DELETE":
        props = PROFILES.get(type_, PROFILES["office"])["properties"]
        payload["data"] = draw(data_for(props))
        if draw(st.booleans()):
            payload["contained"] = draw(CONTAINED)
    return payload, action


@st.composite
def relationship_writes(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    type_ = draw(st.sampled_from(["provider-office", "clinic-member", "nope-link"]))
    defined = DEFINITIONS.get(type_, DEFINITIONS["clinic-member"])
    action = draw(st.sampled_from(["UPSERT", "CREATE", "DELETE"]))
    payload: dict[str, Any] = {"type": type_}
    for end, at in (("from", "f-1"), ("to", "t-1")):
        own = defined[end]["profileKey"]
        kind = draw(st.sampled_from([own, own, own, "office", "provider", "clinic"]))
        payload[end] = {"type": kind, "id": at}
    if action != "DELETE" and draw(st.booleans()):
        payload["data"] = draw(data_for(DEFINITIONS["clinic-member"]["properties"]))
    return payload, action


def _event(payload: dict[str, Any], action: str, relationship: bool) -> ChangeEvent:
    raw = {"eventId": "e1", "sourceKey": SOURCE, "action": action, **payload,
           "target": "relationship" if relationship else "resource"}  # fmt: skip
    event = parse_event(raw, new_event_id=lambda: "unused", now=NOW)
    assert isinstance(event, ChangeEvent), event  # the drawn shapes are valid events
    return event


def _agree(payload: dict[str, Any], action: str, relationship: bool) -> set[str]:
    event = _event(payload, action, relationship)
    refused = emulator_refuses(payload, relationship, action)
    assert worker_refuses(event) == refused
    return refused


# -- samples, then random payloads --------------------------------------------------------------

SITE = {"site": [{"type": "member", "data": {"role": "doc"}}]}
SAMPLES: list[tuple[str, dict[str, Any], set[str]]] = [
    ("fits", {"type": "clinic", "id": "r-1", "data": {"name": "ab"}, "contained": SITE}, set()),
    ("seed-unknown", {"type": "office", "id": "r-1", "data": {"UNKNOWN": 1}}, {"data.UNKNOWN"}),
    ("required", {"type": "clinic", "id": "r-1", "data": {}, "contained": SITE}, {"data.name"}),
    ("null-required", {"type": "clinic", "id": "r-1", "data": {"name": None}}, {"data.name"}),
    (
        "type",
        {"type": "provider", "id": "r-1", "data": {"practiceNumber": "1"}},
        {"data.practiceNumber"},
    ),
    (
        "min",
        {"type": "clinic", "id": "r-1", "data": {"name": "a", "beds": 0}},
        {"data.name", "data.beds"},
    ),
    (
        "max-float",
        {"type": "clinic", "id": "r-1", "data": {"name": "ab", "rating": 5.5}},
        {"data.rating"},
    ),
    ("enum", {"type": "clinic", "id": "r-1", "data": {"name": "ab", "kind": "x"}}, {"data.kind"}),
    (
        "pattern",
        {"type": "clinic", "id": "r-1", "data": {"name": "ab", "code": "ab-1"}},
        {"data.code"},
    ),
    (
        "date",
        {"type": "clinic", "id": "r-1", "data": {"name": "ab", "opened": "2026-02-30"}},
        {"data.opened"},
    ),
    (
        "array-item",
        {"type": "clinic", "id": "r-1", "data": {"name": "ab", "tags": ["a", "abcd", "x"]}},
        {"data.tags", "data.tags[1]"},
    ),
    (
        "nested",
        {"type": "clinic", "id": "r-1", "data": {"name": "ab", "address": {"zip": "1", "x": 1}}},
        {"data.address.city", "data.address.zip", "data.address.x"},
    ),
    (
        "reference",
        {"type": "clinic", "id": "r-1", "data": {"name": "ab", "owner": "@rootId1"}},
        {REFERENCE},
    ),
    (
        "contained-key",
        {"type": "clinic", "id": "r-1", "data": {"name": "ab"}, "contained": {**SITE, "wing": []}},
        {"contained.wing"},
    ),
    (
        "contained-card",
        {"type": "clinic", "id": "r-1", "data": {"name": "ab"}, "contained": {}},
        {"contained.site"},
    ),
    (
        "contained-item",
        {
            "type": "clinic",
            "id": "r-1",
            "data": {"name": "ab"},
            "contained": {"site": [{"type": "member", "data": {"role": "x"}}]},
        },
        {"contained.site[0].data.role"},
    ),
    (
        "contained-type",
        {
            "type": "clinic",
            "id": "r-1",
            "data": {"name": "ab"},
            "contained": {"site": [{"type": "clinic"}]},
        },
        {"contained.site[0].type"},
    ),
    ("no-profile", {"type": "nope", "id": "r-1", "data": {}}, {"type"}),
    ("contained-profile", {"type": "member", "id": "r-1", "data": {"role": "doc"}}, {"type"}),
]


@pytest.mark.parametrize(
    ("payload", "refused"), [s[1:] for s in SAMPLES], ids=[s[0] for s in SAMPLES]
)
def test_profile_agreement_on_samples(payload: dict[str, Any], refused: set[str]) -> None:
    assert _agree(payload, "UPSERT", relationship=False) == refused


REL_SAMPLES: list[tuple[str, str, dict[str, Any], set[str]]] = [
    (
        "seed",
        "UPSERT",
        {
            "type": "provider-office",
            "from": {"type": "office", "id": "f-1"},
            "to": {"type": "provider", "id": "t-1"},
        },
        set(),
    ),
    (
        "ends",
        "DELETE",
        {
            "type": "provider-office",
            "from": {"type": "provider", "id": "f-1"},
            "to": {"type": "provider", "id": "t-1"},
        },
        {"from.type"},
    ),
    (
        "data",
        "UPSERT",
        {
            "type": "clinic-member",
            "from": {"type": "clinic", "id": "f-1"},
            "to": {"type": "provider", "id": "t-1"},
            "data": {"role": "nurse"},
        },
        {"data.role"},
    ),
    (
        "no-definition",
        "UPSERT",
        {
            "type": "nope-link",
            "from": {"type": "clinic", "id": "f-1"},
            "to": {"type": "provider", "id": "t-1"},
        },
        {"type"},
    ),
]


@pytest.mark.parametrize(
    ("action", "payload", "refused"),
    [s[1:] for s in REL_SAMPLES],
    ids=[s[0] for s in REL_SAMPLES],
)
def test_relationship_agreement_on_samples(
    action: str, payload: dict[str, Any], refused: set[str]
) -> None:
    assert _agree(payload, action, relationship=True) == refused


WRITES = st.one_of(
    resource_writes().map(lambda write: (*write, False)),
    relationship_writes().map(lambda write: (*write, True)),
)


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(WRITES)
def test_profile_agreement_on_random_writes(write: tuple[dict[str, Any], str, bool]) -> None:
    payload, action, relationship = write
    _agree(payload, action, relationship)

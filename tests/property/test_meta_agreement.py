"""The worker refuses at publish exactly the meta the emulator refuses, naming the same fields.

Each side runs through its real entry point on a whole write: the worker's `parse_event` on an
UPSERT event, the emulator's request parsing then `check_resource` on the same UPSERT of the seed
profile `office`. First a table of samples (each rule, the near misses `datetime.fromisoformat`
would take, and meta both accept), then random meta built from the same pieces.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emulator.checks import check_resource
from emulator.operations import ShapeError, resource_op_from_payload
from emulator.profiles import default_profiles
from worker.domain.events import ChangeEvent, parse_event

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
PAST = "2026-01-01T00:00:00Z"


def worker_refuses(meta: Any) -> set[str]:
    """The fields the worker's publish check refuses (empty when it accepts the event)."""
    raw = {"eventId": "e1", "sourceKey": "src", "target": "resource", "action": "UPSERT",
           "type": "office", "id": "o1", "data": {"name": "x"}, "meta": meta}  # fmt: skip
    result = parse_event(raw, new_event_id=lambda: "unused", now=NOW)
    if isinstance(result, ChangeEvent):
        return set()
    return {problem.field for problem in result.problems}


def emulator_refuses(meta: Any) -> set[str]:
    """The fields the emulator refuses in the same write (empty when it would apply it)."""
    payload = {"type": "office", "id": "o1", "data": {"name": "x"}, "meta": meta}
    try:
        op = resource_op_from_payload("UPSERT", payload, "upsert")
    except ShapeError as exc:  # a malformed request, refused before any rule runs
        return {exc.field.removeprefix("upsert.")}
    error = check_resource(op, default_profiles(), "src", NOW)
    if error is None:
        return set()
    assert error["message"] == "invalid meta for office", error
    return {str(item["message"]).split(": ", 1)[0] for item in error["details"]}


IDENTIFIER_0 = "meta.identifier[0]"
SAMPLES: list[tuple[str, Any, set[str]]] = [
    ("empty", {}, set()),
    ("times", {"createdAt": PAST, "updatedAt": "2026-11-22T12:00:00Z"}, set()),
    ("lowercase-nanos", {"createdAt": "2026-01-01t00:00:00.123456789z"}, set()),
    ("offset", {"createdAt": "2026-01-01T01:00:00+01:00", "updatedAt": PAST}, set()),
    (
        "full-identifier",
        {
            "identifier": [
                {"id": "i", "system": "s", "value": "1", "use": "u", "type": {}, "period": {}}
            ]
        },
        set(),
    ),
    ("none-system", {"identifier": [{"value": "1"}, {"value": "1", "system": "None"}]}, set()),
    ("not-object", [PAST], {"meta"}),
    ("space", {"createdAt": "2026-01-01 00:00:00Z"}, {"meta.createdAt"}),
    ("no-seconds", {"createdAt": "2026-01-01T00:00Z"}, {"meta.createdAt"}),
    ("no-zone", {"createdAt": "2026-01-01T00:00:00"}, {"meta.createdAt"}),
    ("basic", {"createdAt": PAST, "updatedAt": "20260102T000000Z"}, {"meta.updatedAt"}),
    ("future", {"createdAt": "2026-11-22T12:00:00.000001Z"}, {"meta.createdAt"}),
    ("updated-alone", {"updatedAt": PAST}, {"meta.createdAt"}),
    ("updated-first", {"createdAt": "2026-01-02T00:00:00Z", "updatedAt": PAST}, {"meta.updatedAt"}),
    ("source", {"source": "src"}, {"meta.source"}),
    ("no-value", {"identifier": [{"system": "s"}]}, {f"{IDENTIFIER_0}.value"}),
    ("use-source", {"identifier": [{"value": "1", "use": "source"}]}, {f"{IDENTIFIER_0}.use"}),
    ("system-mdm", {"identifier": [{"value": "1", "system": "mdm"}]}, {f"{IDENTIFIER_0}.system"}),
    ("twice", {"identifier": [{"value": "1"}, {"value": "1"}]}, {"meta.identifier[1]"}),
    (
        "period",
        {"identifier": [{"value": "1", "period": {"end": 1}}]},
        {f"{IDENTIFIER_0}.period.end"},
    ),
]


@pytest.mark.parametrize(("meta", "refused"), [s[1:] for s in SAMPLES], ids=[s[0] for s in SAMPLES])
def test_meta_agreement_on_samples(meta: Any, refused: set[str]) -> None:
    assert worker_refuses(meta) == refused
    assert emulator_refuses(meta) == refused


_TEXTS = ["a", "b", "source", "mdm", "None", ""]
_TIMES = [PAST, "2026-01-02T00:00:00+01:00", "2026-11-22T12:00:00Z", "2026-11-22T12:00:01Z",
          "2026-01-01 00:00:00Z", "2026-01-01T00:00Z", "2026-01-01T00:00:00", "20260101T000000Z",
          "2026-01-01t00:00:00.5z", "2026-01-01T00:00:00+0100", "yesterday"]  # fmt: skip
_SCALARS = st.sampled_from(_TEXTS) | st.integers(0, 2) | st.none() | st.booleans()
_PERIODS = st.dictionaries(st.sampled_from(["id", "start", "end", "from"]), _SCALARS, max_size=3)
_ENTRIES = st.dictionaries(
    st.sampled_from(["id", "system", "value", "use", "type", "colour"]), _SCALARS, max_size=4
)


@st.composite
def identifiers(draw: st.DrawFn) -> Any:
    """A list of identifier entries (some with a period), or something that is not a list."""
    if draw(st.integers(0, 9)) == 0:
        return draw(_SCALARS | st.just({}))
    entries: list[Any] = []
    for _ in range(draw(st.integers(0, 4))):
        entry: Any = draw(_ENTRIES | _SCALARS)
        if isinstance(entry, dict) and draw(st.booleans()):
            entry["period"] = draw(_PERIODS | _SCALARS)
        entries.append(entry)
    return entries


METAS = st.fixed_dictionaries(
    {},
    optional={
        "createdAt": st.sampled_from(_TIMES) | _SCALARS,
        "updatedAt": st.sampled_from(_TIMES) | _SCALARS,
        "identifier": identifiers(),
        "source": _SCALARS,
        "colour": _SCALARS,
    },
)


@given(METAS)
def test_meta_agreement_on_random_meta(meta: dict[str, Any]) -> None:
    assert worker_refuses(meta) == emulator_refuses(meta)

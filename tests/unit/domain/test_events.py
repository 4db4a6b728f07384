"""Change-event validation: every refusal names the field and the reason, and never raises."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from api_client.models import Action
from worker.domain.events import (
    ChangeEvent,
    EventError,
    EventLimits,
    Target,
    parse_event,
    parse_events,
)

from .factories import ids_from

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)

FORMAT_EXAMPLES: list[dict[str, Any]] = [
    {
        "eventId": "e-1001",
        "sourceKey": "hospital-a",
        "target": "resource",
        "action": "UPSERT",
        "type": "provider",
        "id": "p-17",
        "data": {"name": "John Doe", "practiceNumber": 1020993},
        "contained": {},
        "meta": {},
        "group": "office:1",
        "occurredAt": "2026-11-22T10:00:00Z",
    },
    {
        "eventId": "e-1002",
        "sourceKey": "hospital-a",
        "target": "resource",
        "action": "CREATE",
        "type": "provider",
        "ref": "new-provider-1",
        "data": {"name": "Jane Roe"},
    },
    {
        "eventId": "e-1003",
        "sourceKey": "hospital-a",
        "target": "relationship",
        "action": "CREATE",
        "type": "provider-office",
        "from": {"type": "office", "id": "1"},
        "to": {"type": "provider", "ref": "new-provider-1"},
        "data": {"description": "Works at"},
    },
]


def _resource(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "eventId": "e-1",
        "sourceKey": "src",
        "target": "resource",
        "action": "UPSERT",
        "type": "provider",
        "id": "p1",
        "data": {"name": "x"},
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def _relationship(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "eventId": "e-2",
        "sourceKey": "src",
        "target": "relationship",
        "action": "UPSERT",
        "type": "works-at",
        "from": {"type": "office", "id": "o1"},
        "to": {"type": "provider", "id": "p1"},
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def _parse(raw: object, **kwargs: Any) -> ChangeEvent | EventError:
    return parse_event(raw, new_event_id=ids_from("ev"), **kwargs)


@pytest.mark.parametrize("raw", FORMAT_EXAMPLES, ids=["upsert", "create-ref", "rel-ref"])
def test_parse_event_accepts_the_design_examples(raw):
    event = _parse(raw)
    assert isinstance(event, ChangeEvent)
    assert event.event_id == raw["eventId"]
    assert event.target is Target(raw["target"])
    assert event.action is Action(raw["action"])


def test_parse_event_round_trips_through_its_json_form():
    event = _parse(FORMAT_EXAMPLES[0])
    assert isinstance(event, ChangeEvent)
    again = ChangeEvent.model_validate_json(event.to_json())
    assert again == event
    assert '"occurredAt":"2026-11-22T10:00:00Z"' in event.to_json()


def test_parse_event_generates_a_missing_event_id():
    raw = _resource(eventId=None)
    event = parse_event(raw, new_event_id=lambda: "generated-1")
    assert isinstance(event, ChangeEvent)
    assert event.event_id == "generated-1"


REFUSALS: list[tuple[str, dict[str, Any] | list[Any], str, str]] = [
    ("not-an-object", [1, 2], "event", "JSON object"),
    ("bad-source-key", _resource(sourceKey="hospital a"), "sourceKey", "must match"),
    ("non-ascii-source", _resource(sourceKey="hôpital"), "sourceKey", "must match"),
    ("missing-source", _resource(sourceKey=None), "sourceKey", "is required"),
    ("bad-type", _resource(type="pro.vider"), "type", "must match"),
    ("bad-id", _resource(id="p 1"), "id", "must match"),
    ("virtual-id", _resource(id="@rootId1"), "id", "virtual ids"),
    ("bad-target", _resource(target="record"), "target", "resource"),
    ("bad-action", _resource(action="PATCH"), "action", "CREATE"),
    ("lowercase-action", _resource(action="upsert"), "action", "UPSERT"),
    ("unknown-field", _resource(colour="red"), "colour", "unknown field"),
    ("bad-event-id", _resource(eventId="e 1"), "eventId", "ASCII"),
    ("brace-in-group", _resource(group="{office}"), "group", "ASCII"),
    ("bad-ref", _resource(action="CREATE", id=None, ref="new ref"), "ref", "ASCII"),
    ("naive-time", _resource(occurredAt="2026-11-22T10:00:00"), "occurredAt", "time zone"),
    ("upsert-without-id", _resource(id=None), "id", "is required for UPSERT"),
    ("delete-without-id", _resource(action="DELETE", id=None, data=None), "id", "DELETE"),
    ("id-and-ref", _resource(ref="r1"), "ref", "either id or ref"),
    ("upsert-without-data", _resource(data=None), "data", "is required"),
    ("data-not-object", _resource(data=[1]), "data", "JSON object"),
    ("delete-with-data", _resource(action="DELETE"), "data", "no data"),
    ("delete-with-contained", _resource(action="DELETE", data=None, contained={}), "contained", ""),
    ("delete-with-meta", _resource(action="DELETE", data=None, meta={}), "meta", "no meta"),
    ("resource-with-from", _resource(**{"from": {"type": "a", "id": "1"}}), "from", "only"),
    ("resource-with-to", _resource(to={"type": "a", "id": "1"}), "to", "only"),
    ("rel-without-from", _relationship(**{"from": None}), "from", "is required"),
    ("rel-without-to", _relationship(to=None), "to", "is required"),
    ("rel-with-contained", _relationship(contained={}), "contained", "not allowed"),
    ("rel-with-id", _relationship(id="x1"), "id", "not allowed"),
    ("rel-with-ref", _relationship(ref="r1"), "ref", "not allowed"),
    ("endpoint-no-id", _relationship(to={"type": "provider"}), "to.id", "is required"),
    (
        "endpoint-id-and-ref",
        _relationship(to={"type": "provider", "id": "p1", "ref": "r"}),
        "to.ref",
        "either",
    ),
    ("endpoint-bad-type", _relationship(to={"type": "pro vider", "id": "p"}), "to.type", "match"),
    (
        "endpoint-virtual",
        _relationship(to={"type": "provider", "id": "@rootId2"}),
        "to.id",
        "virtual",
    ),
    ("endpoint-extra", _relationship(to={"type": "p", "id": "1", "x": 1}), "to.x", "unknown"),
    ("generated-on-upsert", _resource(generatedId=True), "generatedId", "CREATE"),
    ("meta-source", _resource(meta={"source": "x"}), "meta.source", "set by the Registry"),
    ("meta-unknown", _resource(meta={"colour": 1}), "meta.colour", "unknown"),
    (
        "meta-updated-alone",
        _resource(meta={"updatedAt": "2026-01-01T00:00:00Z"}),
        "meta.createdAt",
        "required",
    ),
    (
        "meta-updated-before-created",
        _resource(meta={"createdAt": "2026-01-02T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z"}),
        "meta.updatedAt",
        "before",
    ),
    (
        "meta-future",
        _resource(meta={"createdAt": "2027-01-01T00:00:00Z"}),
        "meta.createdAt",
        "future",
    ),
    ("meta-bad-time", _resource(meta={"createdAt": "yesterday"}), "meta.createdAt", "RFC 3339"),
    (
        "identifier-use-source",
        _resource(meta={"identifier": [{"use": "source", "value": "1"}]}),
        "meta.identifier[0].use",
        "source",
    ),
    (
        "identifier-system-mdm",
        _resource(meta={"identifier": [{"system": "mdm", "value": "1"}]}),
        "meta.identifier[0].system",
        "mdm",
    ),
    (
        "identifier-repeated",
        _resource(meta={"identifier": [{"system": "a", "value": "1"}] * 2}),
        "meta.identifier[1]",
        "repeats",
    ),
    ("identifier-not-list", _resource(meta={"identifier": {}}), "meta.identifier", "list"),
    ("meta-not-object", _resource(meta=[1]), "meta", "JSON object"),
    ("meta-time-not-text", _resource(meta={"createdAt": 1}), "meta.createdAt", "RFC 3339"),
    *[
        (f"meta-time-{name}", _resource(meta={"createdAt": text}), "meta.createdAt", "RFC 3339")
        for name, text in [
            ("space", "2026-01-01 00:00:00Z"),
            ("no-seconds", "2026-01-01T00:00Z"),
            ("no-zone", "2026-01-01T00:00:00"),
            ("basic-format", "20260101T000000Z"),
            ("offset-no-colon", "2026-01-01T00:00:00+0000"),
            ("comma-fraction", "2026-01-01T00:00:00,5Z"),
            ("week-date", "2026-W01-1T00:00:00Z"),
        ]
    ],
    (
        "meta-updated-bad-time",
        _resource(meta={"createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-02 00:00Z"}),
        "meta.updatedAt",
        "RFC 3339",
    ),
    (
        "identifier-not-object",
        _resource(meta={"identifier": ["1"]}),
        "meta.identifier[0]",
        "object",
    ),
    (
        "identifier-without-value",
        _resource(meta={"identifier": [{"system": "a"}]}),
        "meta.identifier[0].value",
        "is required",
    ),
    (
        "identifier-value-not-text",
        _resource(meta={"identifier": [{"value": 1}]}),
        "meta.identifier[0].value",
        "string",
    ),
    (
        "identifier-id-not-text",
        _resource(meta={"identifier": [{"value": "1", "id": 1}]}),
        "meta.identifier[0].id",
        "string",
    ),
    (
        "identifier-unknown-field",
        _resource(meta={"identifier": [{"value": "1", "colour": "x"}]}),
        "meta.identifier[0].colour",
        "unknown field",
    ),
    (
        "identifier-period-not-object",
        _resource(meta={"identifier": [{"value": "1", "period": "2020"}]}),
        "meta.identifier[0].period",
        "object",
    ),
    (
        "identifier-period-unknown-field",
        _resource(meta={"identifier": [{"value": "1", "period": {"from": "2020"}}]}),
        "meta.identifier[0].period.from",
        "unknown field",
    ),
    (
        "identifier-period-start-not-text",
        _resource(meta={"identifier": [{"value": "1", "period": {"start": 2020}}]}),
        "meta.identifier[0].period.start",
        "string",
    ),
    (
        "relationship-meta",
        _relationship(data={}, meta={"identifier": [{"system": "mdm", "value": "1"}]}),
        "meta.identifier[0].system",
        "mdm",
    ),
    ("data-not-json", _resource(data={"x": object()}), "data", "not JSON"),
    ("data-nan", _resource(data={"x": float("nan")}), "data", "NaN"),
    ("data-lone-surrogate", _resource(data={"x": "\ud800"}), "data", "Unicode"),
]


@pytest.mark.parametrize(
    ("raw", "field", "reason"),
    [case[1:] for case in REFUSALS],
    ids=[case[0] for case in REFUSALS],
)
def test_parse_event_refusal_names_the_field_and_the_reason(raw, field, reason):
    result = _parse(raw, now=NOW)
    assert isinstance(result, EventError), result
    fields = {p.field: p.reason for p in result.problems}
    assert field in fields, str(result)
    assert reason in fields[field]


def test_parse_event_lists_every_independent_problem():
    raw = _resource(sourceKey="bad key", type="bad type", colour=1)
    result = _parse(raw)
    assert isinstance(result, EventError)
    assert {"sourceKey", "type", "colour"} <= {p.field for p in result.problems}


def test_parse_event_reasons_never_echo_values():
    secret = "Patient-Name-Zed"
    raw = _resource(id=f"{secret} x", data={"name": secret}, meta={"colour": secret})
    result = _parse(raw)
    assert isinstance(result, EventError)
    assert secret not in str(result)
    assert secret not in repr(result.as_dict())


def test_parse_event_repr_of_an_event_hides_its_payload():
    event = _parse(_resource(data={"name": "Patient-Name-Zed"}))
    assert isinstance(event, ChangeEvent)
    assert "Patient-Name-Zed" not in repr(event)
    assert "p1" in repr(event)


@pytest.mark.parametrize("field", ["data", "contained", "meta"])
def test_parse_event_refuses_a_field_over_the_size_cap(field):
    limits = EventLimits(max_field_bytes=100, max_total_bytes=1_000)
    body = {"identifier": [{"value": "x" * 200}]} if field == "meta" else {"x": "y" * 200}
    result = _parse(_resource(**{field: body}), limits=limits)
    assert isinstance(result, EventError)
    assert [p.field for p in result.problems] == [field]
    assert "the limit is 100" in result.problems[0].reason


def test_parse_event_size_cap_counts_utf8_bytes_exactly():
    # {"x":"ééé"} is 8 ASCII bytes plus 3 two-byte characters = 14 bytes.
    at_cap = _parse(_resource(data={"x": "ééé"}), limits=EventLimits(max_field_bytes=14))
    over = _parse(_resource(data={"x": "ééé"}), limits=EventLimits(max_field_bytes=13))
    assert isinstance(at_cap, ChangeEvent)
    assert isinstance(over, EventError)


def test_parse_event_refuses_payloads_over_the_total_cap():
    limits = EventLimits(max_field_bytes=100, max_total_bytes=150)
    raw = _resource(data={"x": "y" * 80}, contained={"x": "y" * 80})
    result = _parse(raw, limits=limits)
    assert isinstance(result, EventError)
    assert result.problems[0].field == "data+contained+meta"


def test_parse_event_refuses_nesting_past_the_depth_cap_without_recursion():
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(5_000):  # deeper than Python's recursion limit
        node["x"] = {}
        node = node["x"]
    result = _parse(_resource(data=deep), limits=EventLimits(max_depth=32))
    assert isinstance(result, EventError)
    assert result.problems[0].field == "data"
    assert "deeper than 32" in result.problems[0].reason


def test_parse_event_depth_cap_counts_the_field_itself_as_one():
    assert isinstance(
        _parse(_resource(data={"a": {"b": 1}}), limits=EventLimits(max_depth=2)), ChangeEvent
    )
    assert isinstance(
        _parse(_resource(data={"a": [{"b": 1}]}), limits=EventLimits(max_depth=2)), EventError
    )


@pytest.mark.parametrize(
    "meta",
    [
        {"createdAt": "2026-01-01t00:00:00.123456789z"},
        {"createdAt": "2026-01-01T05:30:00+05:30", "updatedAt": "2026-01-01T00:00:00Z"},
        {"createdAt": "2026-11-22T12:00:00Z", "updatedAt": "2026-11-22T12:00:00Z"},  # now
        {"identifier": [{"value": "1"}, {"value": "1", "system": "None"}]},
        {"identifier": [{"system": "s", "value": "1", "use": "a"}, {"system": "s", "value": "1"}]},
        {
            "identifier": [
                {
                    "id": "i1",
                    "system": "https://npi.example",
                    "value": "1",
                    "use": "official",
                    "type": {"text": "npi"},
                    "period": {"id": "p1", "start": "2020", "end": "2026-01-01"},
                }
            ]
        },
    ],
)
def test_parse_event_accepts_meta_the_registry_accepts(meta):
    assert isinstance(_parse(_resource(meta=meta), now=NOW), ChangeEvent)


def test_parse_event_meta_times_in_the_future_pass_when_no_clock_is_given():
    raw = _resource(meta={"createdAt": "2999-01-01T00:00:00Z"})
    assert isinstance(_parse(raw), ChangeEvent)
    assert isinstance(_parse(raw, now=NOW), EventError)


def test_parse_events_keeps_one_result_per_input_in_order():
    results = parse_events(
        [FORMAT_EXAMPLES[0], {"nope": 1}, FORMAT_EXAMPLES[1]], new_event_id=ids_from("ev")
    )
    assert [type(r).__name__ for r in results] == ["ChangeEvent", "EventError", "ChangeEvent"]
    error = results[1]
    assert isinstance(error, EventError)
    assert error.index == 1
    assert str(error).startswith("event[1]")


def test_event_limits_refuse_non_positive_caps():
    with pytest.raises(ValueError, match="max_depth"):
        EventLimits(max_depth=0)


def test_change_event_is_frozen():
    event = _parse(_resource())
    assert isinstance(event, ChangeEvent)
    with pytest.raises(ValueError, match="frozen"):
        event.id = "other"  # type: ignore[misc]


def test_change_event_defines_ref_only_on_a_create_without_its_own_id():
    create = _parse(_resource(action="CREATE", id=None, ref="r1"))
    upsert = _parse(_resource(id=None, ref="r1"))
    assert isinstance(create, ChangeEvent)
    assert isinstance(upsert, ChangeEvent)
    assert create.defines_ref
    assert not upsert.defines_ref
    assert not create.is_resolved

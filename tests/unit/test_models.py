"""What every Registry model shares: unknown fields, open enums, frozen, errors, serializer."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from api_client.models import (
    Action,
    BundleRequest,
    ErrorBody,
    ErrorType,
    Profile,
    ProfileType,
    Receipt,
    ReceiptStatus,
    RelationshipOperation,
    ResourceBulkRequest,
    ResourceOperation,
    ResourcePayload,
    SubmissionStatus,
    TargetType,
    TaskAccepted,
    TaskState,
    TaskStatus,
    dump_json,
    is_terminal,
)
from tests.unit.model_samples import link, provider

SECRET_VALUE = "John Doe, diagnosis 42"


# --- unknown fields and open enums -------------------------------------------------------------


def test_registry_model_keeps_unknown_fields_through_a_dump() -> None:
    receipt = Receipt.model_validate(
        {"status": "SUCCESS", "futureField": {"nested": [1, 2]}, "retries": 3}
    )

    assert receipt.model_extra == {"futureField": {"nested": [1, 2]}, "retries": 3}
    assert json.loads(dump_json(receipt)) == {
        "status": "SUCCESS",
        "futureField": {"nested": [1, 2]},
        "retries": 3,
    }


OPEN_ENUM_CASES = [
    pytest.param(Receipt, {"status": "SKIPPED"}, "status", ReceiptStatus, id="receipt-status"),
    pytest.param(TaskState, {"status": "PAUSED"}, "status", TaskStatus, id="task-status"),
    pytest.param(
        Receipt, {"status": "SUCCESS", "action": "UPDATE"}, "action", Action, id="receipt-action"
    ),
    pytest.param(
        ResourceOperation, {"action": "PATCH", "patch": []}, "action", Action, id="op-action"
    ),
    pytest.param(ErrorBody, {"type": "DEADLINE_EXCEEDED"}, "type", ErrorType, id="error-type"),
    pytest.param(
        Receipt,
        {"status": "SUCCESS", "targetType": "OBJECT"},
        "target_type",
        TargetType,
        id="target-type",
    ),
    pytest.param(
        TaskAccepted, {"taskId": "t", "status": "QUEUED"}, "status", SubmissionStatus, id="submit"
    ),
    pytest.param(Profile, {"type": "ABSTRACT", "properties": {}}, "type", ProfileType, id="prof"),
]


@pytest.mark.parametrize(("model", "data", "field", "enum"), OPEN_ENUM_CASES)
def test_open_enum_keeps_an_unknown_value_as_its_raw_string(
    model: type[BaseModel], data: dict[str, Any], field: str, enum: type[StrEnum]
) -> None:
    parsed = model.model_validate(data)

    value = getattr(parsed, field)
    raw = data[model.model_fields[field].alias or field]
    assert type(value) is str
    assert value == raw
    assert value not in {member.value for member in enum}
    assert model.model_validate_json(dump_json(parsed)) == parsed


@pytest.mark.parametrize(
    ("model", "data", "field", "member"),
    [
        (Receipt, {"status": "CANCELLED"}, "status", ReceiptStatus.CANCELLED),
        (TaskState, {"status": "PENDING"}, "status", TaskStatus.PENDING),
        (Receipt, {"status": "SUCCESS", "action": "DELETE"}, "action", Action.DELETE),
        (ErrorBody, {"type": "NOT_FOUND"}, "type", ErrorType.NOT_FOUND),
        (
            Receipt,
            {"status": "SUCCESS", "targetType": "RESOURCE"},
            "target_type",
            TargetType.RESOURCE,
        ),
    ],
)
def test_open_enum_parses_a_known_value_to_its_member(
    model: type[BaseModel], data: dict[str, Any], field: str, member: Any
) -> None:
    assert getattr(model.model_validate(data), field) is member
    assert getattr(model.model_validate_json(json.dumps(data)), field) is member


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (TaskStatus.SUCCESS, True),
        (TaskStatus.FAILURE, True),
        (TaskStatus.CANCELLED, True),
        (TaskStatus.PENDING, False),
        ("SUCCESS", True),
        ("PENDING", False),
        ("PAUSED", False),
        ("success", False),
        ("", False),
    ],
)
def test_is_terminal_stops_only_on_known_final_statuses(
    status: TaskStatus | str, expected: bool
) -> None:
    assert is_terminal(status) is expected


def test_task_state_with_unknown_status_is_not_terminal() -> None:
    assert not TaskState.model_validate({"status": "PAUSED"}).is_terminal
    assert TaskState.model_validate({"status": "FAILURE"}).is_terminal


# --- frozen, errors without input --------------------------------------------------------------


def test_models_are_frozen() -> None:
    payload = provider()

    with pytest.raises(ValidationError, match="frozen"):
        payload.id = "other"  # type: ignore[misc]


def test_validation_error_names_the_field_but_not_the_data() -> None:
    with pytest.raises(ValidationError) as caught:
        ResourceOperation.model_validate(
            {"action": "CREATE", "upsert": {"type": "provider", "data": {"name": SECRET_VALUE}}}
        )

    text = str(caught.value)
    assert "'upsert' is not allowed" in text
    assert SECRET_VALUE not in text


def test_validation_error_locates_a_bad_field() -> None:
    with pytest.raises(ValidationError) as caught:
        ResourcePayload.model_validate({"type": 5, "data": {"name": SECRET_VALUE}})

    [error] = caught.value.errors()
    assert error["loc"] == ("type",)
    assert error["type"] == "string_type"


# --- dump_json ---------------------------------------------------------------------------------


def test_dump_json_is_compact_and_omits_none() -> None:
    request = BundleRequest(
        resource_operations=[ResourceOperation.for_create(provider())],
        relationship_operations=[RelationshipOperation.for_create(link())],
    )

    wire = dump_json(request)

    assert wire == (
        b'{"resourceOperations":[{"action":"CREATE","create":{"type":"provider","id":"p-17",'
        b'"data":{"name":"John Doe"}}}],"relationshipOperations":[{"action":"CREATE","create":'
        b'{"type":"provider-office","from":{"id":"1","type":"office"},'
        b'"to":{"id":"2","type":"provider"}}}]}'
    )
    assert b"null" not in wire


def test_dump_json_keeps_nulls_inside_data() -> None:
    payload = provider(data={"name": "John Doe", "middleName": None}, meta=None)

    assert json.loads(dump_json(payload)) == {
        "type": "provider",
        "id": "p-17",
        "data": {"name": "John Doe", "middleName": None},
    }


def test_dump_json_always_sends_both_bundle_lists() -> None:
    assert dump_json(BundleRequest()) == b'{"resourceOperations":[],"relationshipOperations":[]}'


_JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
_JSON_VALUES = st.recursive(
    _JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(
    data=st.dictionaries(st.text(max_size=10), _JSON_VALUES, max_size=5),
    resource_id=st.text(min_size=1, max_size=30),
)
def test_dump_json_matches_model_dump_and_round_trips(
    data: dict[str, Any], resource_id: str
) -> None:
    request = ResourceBulkRequest(
        operations=[
            ResourceOperation.for_upsert(
                ResourcePayload(type="provider", id=resource_id, data=data)
            ),
            ResourceOperation.for_delete(resource_id, "provider"),
        ]
    )

    wire = dump_json(request)

    expected = request.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert json.loads(wire) == expected
    if not _floats_in(data):
        assert wire == json.dumps(expected, separators=(",", ":"), ensure_ascii=False).encode()
    assert ResourceBulkRequest.model_validate_json(wire) == request


def _floats_in(value: Any) -> bool:
    """Float text may differ between serializers (`1e+16` vs `1e16`); the values still match."""
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_floats_in(item) for item in value.values())
    if isinstance(value, list):
        return any(_floats_in(item) for item in value)
    return False

"""The Registry models: open enums, unknown fields, the operation rule, dispatch, serializer."""

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
    BulkRejected,
    BundleReceipts,
    BundleRequest,
    DeleteAnswer,
    EntityRef,
    ErrorBody,
    ErrorType,
    Meta,
    PipelineExecutionRef,
    Profile,
    ProfileType,
    PurgeAnswer,
    PurgeRequest,
    Receipt,
    ReceiptStatus,
    Relationship,
    RelationshipCreateRequest,
    RelationshipDefinition,
    RelationshipDeletePayload,
    RelationshipOperation,
    RelationshipPayload,
    ResourceBulkRequest,
    ResourceDeletePayload,
    ResourceOperation,
    ResourcePayload,
    ResourceWriteAnswer,
    SubmissionStatus,
    TargetType,
    TaskAccepted,
    TaskState,
    TaskStatus,
    dump_json,
    is_terminal,
    parse_bulk_answer,
    parse_bundle_answer,
)

OFFICE = EntityRef(id="1", type="office")
PROVIDER = EntityRef(id="2", type="provider")
SECRET_VALUE = "John Doe, diagnosis 42"


def _provider(**changes: Any) -> ResourcePayload:
    fields: dict[str, Any] = {"type": "provider", "id": "p-17", "data": {"name": "John Doe"}}
    return ResourcePayload(**(fields | changes))


def _link() -> RelationshipPayload:
    return RelationshipPayload(type="provider-office", from_=OFFICE, to=PROVIDER)


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


# --- the operation rule ------------------------------------------------------------------------

OPERATION_REFUSALS = [
    pytest.param(
        ResourceOperation,
        {"action": "CREATE", "upsert": {"type": "provider", "data": {}}},
        "'upsert'",
        id="resource-key-not-matching-action",
    ),
    pytest.param(
        ResourceOperation,
        {
            "action": "UPSERT",
            "upsert": {"type": "provider", "data": {}},
            "delete": {"type": "provider", "id": "1"},
        },
        "'delete'",
        id="resource-two-keys",
    ),
    pytest.param(ResourceOperation, {"action": "DELETE"}, "'delete'", id="resource-no-payload"),
    pytest.param(
        ResourceOperation,
        {"action": "PATCH", "create": {"type": "provider", "data": {}}},
        "'create'",
        id="resource-known-key-on-unknown-action",
    ),
    pytest.param(
        ResourceOperation, {"action": "PATCH"}, "'patch'", id="resource-unknown-action-no-payload"
    ),
    pytest.param(
        RelationshipOperation,
        {
            "action": "DELETE",
            "create": {
                "type": "t",
                "from": {"id": "1", "type": "o"},
                "to": {"id": "2", "type": "p"},
            },
        },
        "'create'",
        id="relationship-key-not-matching-action",
    ),
]


@pytest.mark.parametrize(("model", "data", "field"), OPERATION_REFUSALS)
def test_operation_validator_refuses_payload_not_under_its_action(
    model: type[BaseModel], data: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)

    [error] = caught.value.errors()
    assert error["type"] == "value_error"
    assert field in error["msg"]
    assert str(data["action"]) in error["msg"]


def test_operation_validator_refuses_mismatch_on_direct_construction() -> None:
    with pytest.raises(ValidationError, match="'create' is not allowed when action is 'UPSERT'"):
        ResourceOperation(action=Action.UPSERT, create=_provider())


def test_operation_constructors_put_the_payload_under_the_action_key() -> None:
    created = ResourceOperation.for_create(_provider())
    upserted = ResourceOperation.for_upsert(_provider())
    deleted = ResourceOperation.for_delete("p-17", "provider")

    assert (created.action, created.payload) == (Action.CREATE, _provider())
    assert (upserted.action, upserted.payload) == (Action.UPSERT, _provider())
    assert deleted.payload == ResourceDeletePayload(id="p-17", type="provider")
    assert json.loads(dump_json(deleted)) == {
        "action": "DELETE",
        "delete": {"id": "p-17", "type": "provider"},
    }
    assert set(json.loads(dump_json(upserted))) == {"action", "upsert"}


def test_relationship_operation_constructors_put_the_payload_under_the_action_key() -> None:
    created = RelationshipOperation.for_create(_link())
    upserted = RelationshipOperation.for_upsert(_link())
    deleted = RelationshipOperation.for_delete("provider-office", OFFICE, PROVIDER)

    assert (created.action, created.create) == (Action.CREATE, _link())
    assert (upserted.action, upserted.upsert) == (Action.UPSERT, _link())
    assert deleted.payload == RelationshipDeletePayload(
        type="provider-office", from_=OFFICE, to=PROVIDER
    )
    assert json.loads(dump_json(deleted))["delete"] == {
        "type": "provider-office",
        "from": {"id": "1", "type": "office"},
        "to": {"id": "2", "type": "provider"},
    }


def test_operation_with_unknown_action_is_kept_but_has_no_payload() -> None:
    operation = ResourceOperation.model_validate({"action": "PATCH", "patch": [{"op": "add"}]})

    assert operation.model_extra == {"patch": [{"op": "add"}]}
    with pytest.raises(ValueError, match="'PATCH' is not an action this client knows"):
        _ = operation.payload


# --- from_ / from ------------------------------------------------------------------------------


def test_relationship_from_field_builds_by_name_or_alias_and_dumps_as_from() -> None:
    by_name = RelationshipPayload(type="provider-office", from_=OFFICE, to=PROVIDER)
    by_alias = RelationshipPayload.model_validate(
        {
            "type": "provider-office",
            "from": {"id": "1", "type": "office"},
            "to": {"id": "2", "type": "provider"},
        }
    )
    by_name_dict = RelationshipPayload.model_validate(
        {"type": "provider-office", "from_": OFFICE, "to": PROVIDER}
    )

    assert by_name == by_alias == by_name_dict
    wire = json.loads(dump_json(by_name))
    assert wire["from"] == {"id": "1", "type": "office"}
    assert "from_" not in wire
    assert "from" in by_name.model_dump()
    assert RelationshipPayload.model_validate_json(dump_json(by_name)) == by_name


@pytest.mark.parametrize(
    "model",
    [RelationshipCreateRequest, RelationshipDeletePayload, Relationship],
    ids=lambda model: model.__name__,
)
def test_every_from_field_round_trips_under_its_alias(
    model: type[RelationshipCreateRequest | RelationshipDeletePayload | Relationship],
) -> None:
    data = {
        "type": "provider-office",
        "from": {"id": "1", "type": "office"},
        "to": {"id": "2", "type": "provider"},
    }
    parsed = model.model_validate(data)

    assert parsed.from_ == OFFICE
    assert json.loads(dump_json(parsed))["from"] == data["from"]


def test_relationship_definition_from_end_round_trips() -> None:
    data = {
        "from": {"profileKey": "provider", "includeKey": "worksAt", "includeCardinality": "0:*"},
        "to": {"profileKey": "office", "includeKey": "staff", "cardinality": "0:*"},
        "description": "Works at",
    }
    definition = RelationshipDefinition.model_validate(data)

    assert definition.from_.include_key == "worksAt"
    assert definition.to.include_cardinality is None
    assert definition.to.model_extra == {"cardinality": "0:*"}
    assert json.loads(dump_json(definition)) == data


# --- answer dispatch ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"taskId": "bd_1", "status": "ACCEPTED"}, TaskAccepted),
        (b'{"taskId":"bd_1","status":"ACCEPTED"}', TaskAccepted),
        ({"resourceOperationReceipts": [{"status": "SUCCESS"}]}, BundleReceipts),
        ({"relationshipOperationReceipts": []}, BundleReceipts),
        ('{"status":"PERSISTED","taskId":"bd_2","resourceOperationReceipts":[]}', BundleReceipts),
        ({"status": "PERSISTED"}, BundleReceipts),
    ],
)
def test_parse_bundle_answer_picks_task_or_receipts(
    body: dict[str, Any] | bytes | str, expected: type[BaseModel]
) -> None:
    assert type(parse_bundle_answer(body)) is expected


def test_parse_bundle_answer_reads_top_level_status_of_a_synchronous_run() -> None:
    answer = parse_bundle_answer(
        {"status": "PERSISTED", "taskId": "bd_2", "resourceOperationReceipts": None}
    )

    assert isinstance(answer, BundleReceipts)
    assert answer.status is SubmissionStatus.PERSISTED
    assert answer.task_id == "bd_2"
    assert answer.resource_operation_receipts == []


@pytest.mark.parametrize("body", [{"status": "ACCEPTED"}, [], b"[1]", {}])
def test_parse_bundle_answer_refuses_a_body_of_neither_shape(body: Any) -> None:
    with pytest.raises(ValidationError):
        parse_bundle_answer(body)


def test_parse_bundle_answer_refuses_a_body_that_is_not_json() -> None:
    with pytest.raises(ValueError, match="at line 1 column"):
        parse_bundle_answer(b"{not json")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"taskId": "bk_1", "status": "ACCEPTED", "bulkId": "bk_1"}, TaskAccepted),
        ({"status": "ACCEPTED", "bulkId": "1"}, TaskAccepted),
        ({"status": "REJECTED", "receipts": [{"status": "CANCELLED"}]}, BulkRejected),
        ({"status": "REJECTED"}, BulkRejected),
        (b'{"status":"SOMETHING_NEW","receipts":[]}', BulkRejected),
    ],
)
def test_parse_bulk_answer_picks_task_or_rejection(
    body: dict[str, Any] | bytes, expected: type[BaseModel]
) -> None:
    assert type(parse_bulk_answer(body)) is expected


def test_parse_bulk_answer_refuses_an_acceptance_without_any_task_id() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_bulk_answer({"status": "ACCEPTED"})

    assert caught.value.errors()[0]["loc"] == ("taskId",)


def test_task_accepted_prefers_task_id_over_legacy_bulk_id() -> None:
    answer = TaskAccepted.model_validate(
        {"taskId": "bk_new", "bulkId": "old", "status": "ACCEPTED"}
    )

    assert (answer.task_id, answer.bulk_id) == ("bk_new", "old")


# --- other answers and schemas -----------------------------------------------------------------


def test_task_state_reads_a_pending_task_with_a_receipt_in_review() -> None:
    state = TaskState.model_validate(
        {
            "status": "PENDING",
            "taskId": "bk_2wil2vg5uqi08x1aet097gLW8DO",
            "receipts": [
                {"status": "SUCCESS", "action": "UPSERT", "targetType": "RESOURCE", "id": "1"},
                {
                    "status": "PENDING",
                    "pipelineExecution": {"id": "x", "status": "IN_REVIEW"},
                },
            ],
        }
    )

    assert not state.is_terminal
    assert state.receipts is not None
    in_review = state.receipts[1].pipeline_execution
    assert in_review == PipelineExecutionRef(id="x", status="IN_REVIEW")
    assert state.receipts[1].completed_at is None


def test_error_body_reads_nested_details_and_null_lists() -> None:
    error = ErrorBody.model_validate(
        {
            "code": 400,
            "type": "FAILED_PRECONDITION",
            "details": [{"type": "INVALID_ARGUMENT", "details": None, "field": "name"}],
        }
    )

    [detail] = error.details
    assert detail.type is ErrorType.INVALID_ARGUMENT
    assert detail.details == []
    assert detail.model_extra == {"field": "name"}
    assert ErrorBody.model_validate({}).details == []


def test_single_write_and_delete_answers_read_their_payloads() -> None:
    written = ResourceWriteAnswer.model_validate(
        {
            "taskId": "s_1",
            "status": "PERSISTED",
            "resource": {
                "id": "p-17",
                "type": "provider",
                "data": {"name": "John Doe"},
                "meta": {"createdAt": "2024-01-01T00:00:00Z", "source": "hospital-a"},
            },
        }
    )
    deleted = DeleteAnswer.model_validate({"taskId": "s_2", "status": "ACCEPTED"})

    assert written.status is SubmissionStatus.PERSISTED
    assert written.resource is not None
    assert written.resource.meta == Meta(created_at="2024-01-01T00:00:00Z", source="hospital-a")
    assert deleted.status is SubmissionStatus.ACCEPTED


def test_purge_request_and_answer_use_camel_case() -> None:
    request = PurgeRequest(collection_type="resources", collection_key="provider")
    answer = PurgeAnswer.model_validate(
        {
            "taskId": "pg_1",
            "status": "ACCEPTED",
            "purgeOperation": {
                "taskId": "pg_1",
                "purgeId": "purge:1",
                "collectionType": "resources",
                "collectionKey": "provider",
                "status": "PENDING",
                "deletedCount": 0,
            },
        }
    )

    assert dump_json(request) == b'{"collectionType":"resources","collectionKey":"provider"}'
    assert answer.purge_operation is not None
    assert answer.purge_operation.status is TaskStatus.PENDING
    assert answer.purge_operation.deleted_count == 0


def test_profile_reads_nested_properties_rules_and_contained() -> None:
    profile = Profile.model_validate(
        {
            "type": "ROOT",
            "properties": {
                "name": {"type": "symbol", "rules": [{"required": True, "max": 120}]},
                "specialities": {"type": "array", "items": {"type": "code"}},
                "address": {
                    "type": "object",
                    "properties": {"city": {"type": "symbol", "rules": [{"min": 1.5}]}},
                },
            },
            "contained": {"phones": {"types": ["phone"], "cardinality": "0:*"}},
        }
    )

    name = profile.properties["name"]
    assert profile.type is ProfileType.ROOT
    assert name.rules is not None
    assert name.rules[0].required is True
    assert type(name.rules[0].max) is int
    items = profile.properties["specialities"].items
    assert items is not None
    assert items.type == "code"
    city = (profile.properties["address"].properties or {})["city"]
    assert city.rules is not None
    assert city.rules[0].min == 1.5
    assert profile.contained is not None
    assert profile.contained["phones"].types == ["phone"]


# --- frozen, errors without input --------------------------------------------------------------


def test_models_are_frozen() -> None:
    payload = _provider()

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
        resource_operations=[ResourceOperation.for_create(_provider())],
        relationship_operations=[RelationshipOperation.for_create(_link())],
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
    payload = _provider(data={"name": "John Doe", "middleName": None}, meta=None)

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


def test_parse_bulk_answer_reads_receipts_without_status_as_rejected() -> None:
    answer = parse_bulk_answer({"receipts": [{"status": "CANCELLED"}]})
    assert isinstance(answer, BulkRejected)
    assert answer.status == SubmissionStatus.REJECTED
    assert [receipt.status for receipt in answer.receipts] == [ReceiptStatus.CANCELLED]

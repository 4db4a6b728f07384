"""The requests we build: the operation rule (one payload, under its action), `from_`, purge."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from api_client.models import (
    Action,
    PurgeAnswer,
    PurgeRequest,
    Relationship,
    RelationshipCreateRequest,
    RelationshipDeletePayload,
    RelationshipOperation,
    RelationshipPayload,
    ResourceDeletePayload,
    ResourceOperation,
    TaskStatus,
    dump_json,
)
from tests.unit.model_samples import OFFICE, PROVIDER, link, provider

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
        ResourceOperation(action=Action.UPSERT, create=provider())


def test_operation_constructors_put_the_payload_under_the_action_key() -> None:
    created = ResourceOperation.for_create(provider())
    upserted = ResourceOperation.for_upsert(provider())
    deleted = ResourceOperation.for_delete("p-17", "provider")

    assert (created.action, created.payload) == (Action.CREATE, provider())
    assert (upserted.action, upserted.payload) == (Action.UPSERT, provider())
    assert deleted.payload == ResourceDeletePayload(id="p-17", type="provider")
    assert json.loads(dump_json(deleted)) == {
        "action": "DELETE",
        "delete": {"id": "p-17", "type": "provider"},
    }
    assert set(json.loads(dump_json(upserted))) == {"action", "upsert"}


def test_relationship_operation_constructors_put_the_payload_under_the_action_key() -> None:
    created = RelationshipOperation.for_create(link())
    upserted = RelationshipOperation.for_upsert(link())
    deleted = RelationshipOperation.for_delete("provider-office", OFFICE, PROVIDER)

    assert (created.action, created.create) == (Action.CREATE, link())
    assert (upserted.action, upserted.upsert) == (Action.UPSERT, link())
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


# --- purge -------------------------------------------------------------------------------------


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

"""Single-record endpoints: create, upsert, read and delete resources and relationships."""

from __future__ import annotations

from typing import Any

import pytest

from api_client import ids
from emulator.config import SourceMode
from emulator.registry import Registry
from tests.unit.emulator.conftest import FakeClock, RegistryFactory, seed


def _office_and_provider(registry: Registry, source: str = "s") -> None:
    assert registry.upsert_resource(source, "office", "1", {"data": {"name": "C"}}).status == 200
    assert registry.upsert_resource(source, "provider", "2", {"data": {"name": "J"}}).status == 200


def test_create_resource_persisted_answer_holds_the_stored_record(registry: Registry) -> None:
    reply = registry.create_resource("s", "provider", {"id": "p-1", "data": {"name": "Jane"}})

    assert reply.status == 200
    assert reply.body["status"] == "PERSISTED"
    assert reply.body["taskId"].startswith("s_")
    assert reply.body["resource"] == {
        "id": "p-1",
        "type": "provider",
        "data": {"name": "Jane"},
        "meta": {
            "createdAt": "2024-11-27T15:43:09.438665Z",
            "updatedAt": "2024-11-27T15:43:09.438665Z",
            "source": "s",
        },
    }
    assert registry.get_resource("s", "provider", "p-1").body == reply.body["resource"]


@pytest.mark.parametrize("body", [{"data": {}}, {"id": "@rootId", "data": {}}])
def test_create_resource_without_id_generates_one(registry: Registry, body: dict[str, Any]) -> None:
    reply = registry.create_resource("s", "provider", body)

    generated = reply.body["resource"]["id"]
    assert len(generated) == ids.GENERATED_ID_LENGTH
    assert registry.get_resource("s", "provider", generated).status == 200


def test_create_resource_of_an_existing_id_is_409_with_the_seed_message(
    registry: Registry,
) -> None:
    registry.create_resource("s", "provider", {"id": "2dMo6zb0yWtzHvt8MhmbI2ddQbR", "data": {}})

    reply = registry.create_resource("s", "provider", {"id": "2dMo6zb0yWtzHvt8MhmbI2ddQbR"})

    assert reply.status == 409
    assert reply.body == {
        "code": 409,
        "message": "record with id '2dMo6zb0yWtzHvt8MhmbI2ddQbR' already exists",
        "type": "ALREADY_EXISTS",
        "details": [],
    }


def test_create_resource_invalid_data_is_400_with_details(registry: Registry) -> None:
    reply = registry.create_resource("s", "office", {"data": {"UNKNOWN": 1}})

    assert reply.status == 400
    assert reply.body["message"] == "invalid schema for office"
    assert reply.body["details"][0]["message"] == "additionalProperties 'UNKNOWN' not allowed"


def test_create_resource_body_type_must_match_the_path(registry: Registry) -> None:
    reply = registry.create_resource("s", "office", {"type": "provider", "data": {}})

    assert reply.status == 400
    assert reply.body["message"].startswith("body.type")


def test_upsert_resource_replaces_data_and_keeps_created_at(
    registry: Registry, clock: FakeClock
) -> None:
    registry.upsert_resource("s", "provider", "1", {"data": {"name": "A", "practiceNumber": 7}})
    clock.advance(60)

    reply = registry.upsert_resource("s", "provider", "1", {"data": {"name": "B"}})

    stored = registry.get_resource("s", "provider", "1").body
    assert reply.status == 200
    assert stored["data"] == {"name": "B"}
    assert stored["meta"]["createdAt"] == "2024-11-27T15:43:09.438665Z"
    assert stored["meta"]["updatedAt"] == "2024-11-27T15:44:09.438665Z"


def test_upsert_resource_with_a_virtual_id_is_refused(registry: Registry) -> None:
    reply = registry.upsert_resource("s", "provider", "@rootId1", {"data": {}})

    assert reply.status == 400
    assert "only allowed on CREATE" in reply.body["message"]


def test_get_resource_missing_is_404(registry: Registry) -> None:
    reply = registry.get_resource("s", "provider", "nope")

    assert reply.status == 404
    assert reply.body["type"] == "NOT_FOUND"


def test_delete_resource_answers_task_and_status_then_is_gone(registry: Registry) -> None:
    registry.upsert_resource("s", "provider", "1", {"data": {}})

    reply = registry.delete_resource("s", "provider", "1")

    assert reply.status == 200
    assert set(reply.body) == {"taskId", "status"}
    assert reply.body["status"] == "PERSISTED"
    assert registry.get_resource("s", "provider", "1").status == 404
    assert registry.delete_resource("s", "provider", "1").status == 404


def test_delete_resource_cascade_deletes_its_relationships(registry: Registry) -> None:
    _office_and_provider(registry)
    registry.create_relationship(
        "s", "provider-office", seed("relationship-create-reference.request")
    )

    assert registry.delete_resource("s", "provider", "2").status == 200

    assert registry.get_relationship("s", "provider-office", "1.2").status == 404
    assert [(w["target"], w["action"]) for w in registry.write_log()[-2:]] == [
        ("relationship", "DELETE"),
        ("resource", "DELETE"),
    ]


def test_delete_resource_refuse_policy_fails_naming_the_count(
    make_registry: RegistryFactory,
) -> None:
    registry = make_registry(delete_policy="refuse")
    _office_and_provider(registry)
    registry.create_relationship(
        "s", "provider-office", seed("relationship-create-reference.request")
    )

    reply = registry.delete_resource("s", "office", "1")

    assert reply.status == 400
    assert reply.body["type"] == "FAILED_PRECONDITION"
    assert "1 relationship" in reply.body["message"]
    assert registry.get_resource("s", "office", "1").status == 200


def test_create_relationship_seed_request_answers_the_seed_shape(
    make_registry: RegistryFactory,
) -> None:
    registry = make_registry()
    _office_and_provider(registry, "hospital-a")
    registry.config.mode = SourceMode.ASYNC

    reply = registry.create_relationship(
        "hospital-a", "provider-office", seed("relationship-create-reference.request")
    )

    expected = seed("relationship-create-reference.answer")
    assert reply.status == 202
    assert reply.body["taskId"].startswith("s_")
    assert {**reply.body, "taskId": expected["taskId"]} == expected


def test_create_relationship_persisted_then_read_by_both_id_forms(registry: Registry) -> None:
    _office_and_provider(registry)

    reply = registry.create_relationship(
        "s",
        "provider-office",
        {"from": {"id": "1", "type": "office"}, "to": {"id": "2", "type": "provider"}},
    )

    assert reply.status == 200
    assert reply.body["relationship"]["id"] == "1.2"
    by_path_form = registry.get_relationship("s", "provider-office", "1.2")
    by_receipt_form = registry.get_relationship("s", "provider-office", "office.1,provider.2")
    assert by_path_form.status == by_receipt_form.status == 200
    assert by_path_form.body == by_receipt_form.body == reply.body["relationship"]


def test_create_relationship_twice_is_409(registry: Registry) -> None:
    _office_and_provider(registry)
    body = {"from": {"id": "1", "type": "office"}, "to": {"id": "2", "type": "provider"}}
    registry.create_relationship("s", "provider-office", body)

    reply = registry.create_relationship("s", "provider-office", body)

    assert reply.status == 409
    assert reply.body["message"] == "record with id 'office.1,provider.2' already exists"


def test_create_relationship_to_a_missing_resource_is_failed_precondition(
    registry: Registry,
) -> None:
    registry.upsert_resource("s", "office", "1", {"data": {}})

    reply = registry.create_relationship(
        "s",
        "provider-office",
        {"from": {"id": "1", "type": "office"}, "to": {"id": "9", "type": "provider"}},
    )

    assert reply.status == 400
    assert reply.body["type"] == "FAILED_PRECONDITION"
    assert "'9'" in reply.body["message"]


def test_create_relationship_with_wrong_endpoint_types_is_refused(registry: Registry) -> None:
    _office_and_provider(registry)

    reply = registry.create_relationship(
        "s",
        "provider-office",
        {"from": {"id": "2", "type": "provider"}, "to": {"id": "1", "type": "office"}},
    )

    assert reply.status == 400
    assert "goes from 'office' to 'provider'" in reply.body["message"]


@pytest.mark.parametrize("rel_id", ["1.2", "office.1,provider.2"])
def test_delete_relationship_accepts_both_id_forms(registry: Registry, rel_id: str) -> None:
    _office_and_provider(registry)
    registry.create_relationship(
        "s",
        "provider-office",
        {"from": {"id": "1", "type": "office"}, "to": {"id": "2", "type": "provider"}},
    )

    reply = registry.delete_relationship("s", "provider-office", rel_id)

    assert reply.status == 200
    assert set(reply.body) == {"taskId", "status"}
    assert registry.get_relationship("s", "provider-office", "1.2").status == 404
    assert registry.get_resource("s", "office", "1").status == 200


@pytest.mark.parametrize("rel_id", ["1", "1.2.3", "a.1,b", "office.1;provider.2"])
def test_relationship_malformed_id_is_400(registry: Registry, rel_id: str) -> None:
    reply = registry.get_relationship("s", "provider-office", rel_id)

    assert reply.status == 400
    assert reply.body["message"].startswith("relationshipId")


def test_delete_relationship_missing_is_404(registry: Registry) -> None:
    assert registry.delete_relationship("s", "provider-office", "1.2").status == 404


def test_async_single_write_echoes_the_record_and_applies_later(
    make_registry: RegistryFactory,
) -> None:
    registry = make_registry(mode="async", task_pending_polls=1)

    reply = registry.upsert_resource("s", "provider", "1", {"data": {"name": "x"}})

    assert reply.status == 202
    assert reply.body["status"] == "ACCEPTED"
    assert reply.body["resource"]["data"] == {"name": "x"}
    assert registry.get_resource("s", "provider", "1").status == 404
    registry.task_status("s", reply.body["taskId"], with_receipts=False)
    assert registry.get_resource("s", "provider", "1").status == 200


def test_async_single_write_with_bad_content_is_refused_at_once(
    make_registry: RegistryFactory,
) -> None:
    registry = make_registry(mode="async")

    reply = registry.upsert_resource("s", "provider", "1", {"data": {"practiceNumber": 1.5}})

    assert reply.status == 400
    assert registry.task_ids_of("s") == []

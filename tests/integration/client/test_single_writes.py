"""Single writes, reads, purges and schemas through `RegistryClient`, and the errors they raise."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from api_client._client import RegistryClient
from api_client.errors import AlreadyExistsError, InvalidRequestError, NotFoundError
from api_client.ids import GENERATED_ID_LENGTH, is_resource_id
from api_client.models import (
    EntityRef,
    Profile,
    PropertyDefinition,
    PurgeRequest,
    RelationshipCreateRequest,
    RelationshipDefinition,
    RelationshipDefinitionEnd,
    ResourcePayload,
    Rule,
)
from api_client.tasks import IssuedBy, TaskRef
from tests.integration.client.conftest import FAST_POLLS, SOURCE, Harness, seed_bundle

pytestmark = pytest.mark.integration


def provider(id_: str | None, name: str = "John Doe") -> ResourcePayload:
    """A provider payload (no id: the Registry generates one on CREATE)."""
    return ResourcePayload(type="provider", id=id_, data={"name": name})


def works_at(office_id: str = "1", provider_id: str = "2") -> RelationshipCreateRequest:
    """The body of a provider-office create between office `office_id` and a provider."""
    return RelationshipCreateRequest(
        from_=EntityRef(id=office_id, type="office"),
        to=EntityRef(id=provider_id, type="provider"),
        data={"description": "Works at"},
    )


def test_client_resource_create_upsert_get_delete(harness: Harness):
    client = harness.client()

    created = client.create_resource(SOURCE, provider("p-1"))
    assert created.status == "PERSISTED"
    assert created.task_id is not None
    assert created.task_id.startswith("s_")
    assert created.resource is not None
    assert (created.resource.id, created.resource.data) == ("p-1", {"name": "John Doe"})

    generated = client.create_resource(SOURCE, provider(None, "Jane Roe"))
    assert generated.resource is not None
    new_id = str(generated.resource.id)
    assert len(new_id) == GENERATED_ID_LENGTH
    assert is_resource_id(new_id)
    assert client.get_resource(SOURCE, "provider", new_id).data == {"name": "Jane Roe"}

    upserted = client.upsert_resource(SOURCE, provider("p-1", "John Q. Doe"))
    assert upserted.status == "PERSISTED"
    stored = client.get_resource(SOURCE, "provider", "p-1")
    assert stored.data == {"name": "John Q. Doe"}
    assert stored.meta is not None
    assert created.resource.meta is not None
    assert stored.meta.created_at == created.resource.meta.created_at

    deleted = client.delete_resource(SOURCE, "provider", "p-1")
    assert deleted.status == "PERSISTED"
    with pytest.raises(NotFoundError):
        client.get_resource(SOURCE, "provider", "p-1")
    assert [(w["action"], w["id"]) for w in harness.writes()] == [
        ("CREATE", "p-1"),
        ("CREATE", new_id),
        ("UPSERT", "p-1"),
        ("DELETE", "p-1"),
    ]


def test_client_relationship_create_get_delete(harness: Harness):
    client = harness.client()
    client.upsert_resource(SOURCE, ResourcePayload(type="office", id="1", data={"name": "Clinic"}))
    client.upsert_resource(SOURCE, provider("2"))

    created = client.create_relationship(SOURCE, "provider-office", works_at())
    assert created.status == "PERSISTED"
    assert created.relationship is not None
    assert created.relationship.id == "1.2"

    stored = client.get_relationship(SOURCE, "provider-office", "1.2")
    assert (stored.type, stored.from_.id, stored.to.id) == ("provider-office", "1", "2")
    assert stored.data == {"description": "Works at"}

    deleted = client.delete_relationship(SOURCE, "provider-office", "1.2")
    assert deleted.status == "PERSISTED"
    with pytest.raises(NotFoundError):
        client.get_relationship(SOURCE, "provider-office", "1.2")
    assert client.get_resource(SOURCE, "provider", "2").id == "2"


def test_client_single_writes_in_async_mode_answer_tasks_that_finish(harness: Harness):
    harness.configure(source_modes={SOURCE: "async"})
    client = harness.client()

    created = client.create_resource(SOURCE, provider("p-1"))
    assert created.status == "ACCEPTED"
    assert created.task_id is not None
    assert created.task_id.startswith("s_")
    assert created.resource is not None
    assert created.resource.id == "p-1"
    ref = TaskRef.from_submission(SOURCE, created.task_id, issued_by=IssuedBy.SINGLE_WRITE)
    state = client.wait_for_task(ref, deadline_s=10.0, policy=FAST_POLLS)
    assert state.status == "SUCCESS"
    assert state.receipts is not None
    [receipt] = state.receipts
    assert (receipt.action, receipt.type, receipt.id, receipt.status) == (
        "CREATE",
        "provider",
        "p-1",
        "SUCCESS",
    )
    assert client.get_resource(SOURCE, "provider", "p-1").data == {"name": "John Doe"}

    deleted = client.delete_resource(SOURCE, "provider", "p-1")
    assert deleted.status == "ACCEPTED"
    assert deleted.task_id is not None
    delete_ref = TaskRef.from_submission(SOURCE, deleted.task_id, issued_by=IssuedBy.SINGLE_WRITE)
    assert client.wait_for_task(delete_ref, deadline_s=10.0, policy=FAST_POLLS).status == "SUCCESS"
    with pytest.raises(NotFoundError):
        client.get_resource(SOURCE, "provider", "p-1")


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_client_single_write_off_its_profile_raises_invalid_request_with_details(
    harness: Harness, mode: str
):
    harness.configure(source_modes={SOURCE: mode})
    client = harness.client()
    payload = ResourcePayload(type="provider", id="p-1", data={"name": "J", "UNKNOWN": 1})

    with pytest.raises(InvalidRequestError) as raised:
        client.upsert_resource(SOURCE, payload)

    error = raised.value
    assert (error.status, error.error_type, error.message) == (
        400,
        "FAILED_PRECONDITION",
        "invalid schema for provider",
    )
    assert [(d.type, d.message) for d in error.details] == [
        ("INVALID_ARGUMENT", "additionalProperties 'UNKNOWN' not allowed")
    ]
    assert harness.admin("GET", f"/sources/{SOURCE}/tasks") == []
    assert harness.writes() == []


@pytest.mark.parametrize(
    ("route", "create", "message"),
    [
        (
            "create_resource",
            lambda c: c.create_resource(SOURCE, provider("2", "Someone Else")),
            "record with id '2' already exists",
        ),
        (
            "create_relationship",
            lambda c: c.create_relationship(SOURCE, "provider-office", works_at()),
            "record with id 'office.1,provider.2' already exists",
        ),
    ],
)
def test_client_create_of_an_existing_record_raises_already_exists(
    harness: Harness, route: str, create: Callable[[RegistryClient], object], message: str
):
    client = harness.client()
    client.submit_bundle(SOURCE, seed_bundle())

    with pytest.raises(AlreadyExistsError) as raised:
        create(client)

    error = raised.value
    assert (error.status, error.error_type, error.message) == (409, "ALREADY_EXISTS", message)
    assert message in str(error)
    assert [entry["status"] for entry in harness.requests(route)] == [409]
    assert client.get_resource(SOURCE, "provider", "2").data == {"name": "John Doe"}


@pytest.mark.parametrize(
    ("route", "call", "message"),
    [
        (
            "get_resource",
            lambda c: c.get_resource(SOURCE, "provider", "p-404"),
            "record with id 'p-404' not found",
        ),
        (
            "delete_resource",
            lambda c: c.delete_resource(SOURCE, "provider", "p-404"),
            "record with id 'p-404' not found",
        ),
        (
            "get_relationship",
            lambda c: c.get_relationship(SOURCE, "provider-office", "1.p-404"),
            "record with id '1.p-404' not found",
        ),
        (
            "delete_relationship",
            lambda c: c.delete_relationship(SOURCE, "provider-office", "1.p-404"),
            "record with id 'office.1,provider.p-404' not found",
        ),
    ],
)
def test_client_missing_record_raises_not_found_once(
    harness: Harness, route: str, call: Callable[[RegistryClient], object], message: str
):
    client = harness.client()

    with pytest.raises(NotFoundError) as raised:
        call(client)

    error = raised.value
    assert (error.status, error.error_type, error.message) == (404, "NOT_FOUND", message)
    assert [entry["status"] for entry in harness.requests(route)] == [404]
    assert harness.time.sleeps == []


def test_client_purge_deletes_a_collection_and_reports_its_progress(harness: Harness):
    client = harness.client()
    client.submit_bundle(SOURCE, seed_bundle())
    client.upsert_resource(SOURCE, provider("3"))

    answer = client.purge(
        SOURCE, PurgeRequest(collection_type="resources", collection_key="provider")
    )

    assert answer.status == "ACCEPTED"
    assert answer.task_id is not None
    assert answer.task_id.startswith("pg_")
    assert answer.purge_operation is not None
    assert answer.purge_operation.collection_key == "provider"
    ref = TaskRef.from_submission(SOURCE, answer.task_id, issued_by=IssuedBy.PURGE)
    state = client.wait_for_task(ref, deadline_s=10.0, policy=FAST_POLLS)
    assert state.status == "SUCCESS"
    assert state.receipts is None
    operation = client.get_purge(SOURCE, answer.task_id)
    assert (operation.status, operation.deleted_count) == ("SUCCESS", 2)
    assert operation.task_id == answer.task_id
    assert operation.purge_id is not None
    assert operation.purge_id.startswith("purge:")
    assert client.get_purge(SOURCE, operation.purge_id).deleted_count == 2
    assert client.get_task_state(TaskRef(SOURCE, operation.purge_id)).status == "SUCCESS"
    for type_, id_ in (("provider", "2"), ("provider", "3")):
        with pytest.raises(NotFoundError):
            client.get_resource(SOURCE, type_, id_)
    with pytest.raises(NotFoundError):
        client.get_relationship(SOURCE, "provider-office", "1.2")
    assert client.get_resource(SOURCE, "office", "1").data == {"name": "Clinic Name"}


def test_client_profiles_and_relationship_definitions_round_trip(harness: Harness):
    client = harness.client()
    office = client.get_profile(SOURCE, "office")
    assert office.type == "ROOT"
    assert office.properties["name"].type == "string"
    clinic = Profile(
        type="ROOT",
        description="A clinic",
        properties={
            "name": PropertyDefinition(type="string", rules=[Rule(required=True)]),
            "beds": PropertyDefinition(type="integer", rules=[Rule(min=0, max=500)]),
        },
    )

    assert client.put_profile(SOURCE, "clinic", clinic) == clinic
    assert client.get_profile(SOURCE, "clinic") == clinic
    definition = RelationshipDefinition(
        from_=RelationshipDefinitionEnd(profile_key="clinic", include_key="staff"),
        to=RelationshipDefinitionEnd(profile_key="provider", include_key="clinics"),
        description="A provider who works at a clinic",
    )
    assert client.put_relationship_definition(SOURCE, "provider-clinic", definition) == definition
    assert client.get_relationship_definition(SOURCE, "provider-clinic") == definition
    original = client.get_relationship_definition(SOURCE, "provider-office")
    assert (original.from_.profile_key, original.to.profile_key) == ("office", "provider")

    # the new schemas govern writes at once
    client.upsert_resource(SOURCE, ResourcePayload(type="clinic", id="c-1", data={"name": "C"}))
    client.upsert_resource(SOURCE, provider("2"))
    linked = client.create_relationship(
        SOURCE,
        "provider-clinic",
        RelationshipCreateRequest(
            from_=EntityRef(id="c-1", type="clinic"), to=EntityRef(id="2", type="provider")
        ),
    )
    assert linked.status == "PERSISTED"
    with pytest.raises(NotFoundError):
        client.get_profile(SOURCE, "hospital")

"""Bulk requests through `RegistryClient`: tasks, every route that reads them, and refusals."""

from __future__ import annotations

import pytest

from api_client._client import RegistryClient
from api_client.errors import NotFoundError
from api_client.models import (
    BulkRejected,
    EntityRef,
    Receipt,
    RelationshipBulkRequest,
    RelationshipCreateRequest,
    RelationshipOperation,
    RelationshipPayload,
    ResourceBulkRequest,
    ResourceOperation,
    ResourcePayload,
    TaskAccepted,
    TaskState,
)
from api_client.tasks import IssuedBy, PollRoute, TaskRef
from tests.integration.client.conftest import FAST_POLLS, SOURCE, Harness, seed_bundle

pytestmark = pytest.mark.integration


def provider(id_: str, name: str = "John Doe", **extra: object) -> ResourcePayload:
    """A provider payload."""
    return ResourcePayload(type="provider", id=id_, data={"name": name, **extra})


def link(from_id: str, to_id: str) -> RelationshipPayload:
    """A provider-office relationship payload from office `from_id` to provider `to_id`."""
    return RelationshipPayload(
        type="provider-office",
        from_=EntityRef(id=from_id, type="office"),
        to=EntityRef(id=to_id, type="provider"),
        data={"description": "Works at"},
    )


def accepted_task(answer: TaskAccepted | BulkRejected) -> TaskAccepted:
    """The answer, which must be an accepted bulk task."""
    assert isinstance(answer, TaskAccepted), answer
    assert answer.status == "ACCEPTED"
    assert answer.task_id.startswith("bk_")
    assert answer.bulk_id == answer.task_id
    return answer


def by_identity(receipts: list[Receipt] | None) -> dict[tuple[str | None, str | None], Receipt]:
    """Receipts keyed by (type, id), the way a caller matches them to its operations."""
    assert receipts is not None
    keyed = {(r.type, r.id): r for r in receipts}
    assert len(keyed) == len(receipts), "two receipts for one (type, id)"
    return keyed


def same_task(left: TaskState, right: TaskState) -> None:
    """Two reads of one finished task agree on its status and receipts."""
    assert left.status == right.status
    assert left.receipts == right.receipts


def bare(task_id: str) -> str:
    """The deprecated, unprefixed form of a bulk task id."""
    return task_id.removeprefix("bk_")


@pytest.mark.parametrize(("legacy", "task_status"), [(False, "FAILURE"), (True, "SUCCESS")])
def test_client_resource_bulk_create_of_an_existing_id_fails_only_its_receipt(
    harness: Harness, legacy: bool, task_status: str
):
    harness.configure(legacy_bulk_status=legacy)
    client = harness.client()
    client.upsert_resource(SOURCE, provider("p-1"))
    request = ResourceBulkRequest(
        operations=[
            ResourceOperation.for_create(provider("p-2")),
            ResourceOperation.for_create(provider("p-1", "Someone Else")),
            ResourceOperation.for_upsert(provider("p-3")),
        ]
    )

    accepted = accepted_task(client.submit_resource_bulk(SOURCE, request))
    ref = TaskRef.from_submission(SOURCE, accepted.task_id, issued_by=IssuedBy.RESOURCES_BULK)
    state = client.wait_for_task(ref, deadline_s=10.0, policy=FAST_POLLS)

    assert state.status == task_status
    receipts = by_identity(state.receipts)
    assert set(receipts) == {("provider", "p-1"), ("provider", "p-2"), ("provider", "p-3")}
    assert receipts["provider", "p-2"].status == "SUCCESS"
    assert receipts["provider", "p-3"].status == "SUCCESS"
    failed = receipts["provider", "p-1"]
    assert failed.status == "FAILURE"
    assert failed.error is not None
    assert (failed.error.code, failed.error.type, failed.error.message) == (
        409,
        "ALREADY_EXISTS",
        "record with id 'p-1' already exists",
    )
    assert client.get_resource(SOURCE, "provider", "p-1").data == {"name": "John Doe"}
    # the same finished task, through every route that reads it
    same_task(state, client.get_task(SOURCE, accepted.task_id, with_receipts=True))
    on_bulk_route = client.get_resource_bulk_status(SOURCE, accepted.task_id, with_receipts=True)
    same_task(state, on_bulk_route)
    assert on_bulk_route.task_id is None
    legacy_ref = TaskRef(SOURCE, bare(accepted.task_id), IssuedBy.RESOURCES_BULK)
    assert legacy_ref.poll_route is PollRoute.RESOURCES_BULK
    same_task(state, client.get_task_state(legacy_ref, with_receipts=True))
    same_task(state, client.get_task_state(ref, with_receipts=True))
    assert client.get_task_state(legacy_ref).receipts is None


def test_client_relationship_bulk_create_of_an_existing_relationship_fails_its_receipt(
    harness: Harness,
):
    client = harness.client()
    client.submit_bundle(SOURCE, seed_bundle())
    client.upsert_resource(SOURCE, provider("3"))
    client.create_relationship(
        SOURCE,
        "provider-office",
        RelationshipCreateRequest(
            from_=EntityRef(id="1", type="office"), to=EntityRef(id="3", type="provider")
        ),
    )
    request = RelationshipBulkRequest(
        operations=[
            RelationshipOperation.for_create(link("1", "3")),
            RelationshipOperation.for_upsert(link("1", "2")),
        ]
    )

    accepted = accepted_task(client.submit_relationship_bulk(SOURCE, request))
    ref = TaskRef.from_submission(SOURCE, accepted.task_id, issued_by=IssuedBy.RELATIONSHIPS_BULK)
    state = client.wait_for_task(ref, deadline_s=10.0, policy=FAST_POLLS)

    assert state.status == "FAILURE"
    receipts = by_identity(state.receipts)
    failed = receipts["provider-office", "office.1,provider.3"]
    assert failed.status == "FAILURE"
    assert failed.target_type == "RELATIONSHIP"
    assert failed.error is not None
    assert failed.error.type == "ALREADY_EXISTS"
    assert receipts["provider-office", "office.1,provider.2"].status == "SUCCESS"
    on_bulk_route = client.get_relationship_bulk_status(
        SOURCE, accepted.task_id, with_receipts=True
    )
    same_task(state, on_bulk_route)
    legacy_ref = TaskRef(SOURCE, bare(accepted.task_id), IssuedBy.RELATIONSHIPS_BULK)
    assert legacy_ref.poll_route is PollRoute.RELATIONSHIPS_BULK
    same_task(state, client.get_task_state(legacy_ref, with_receipts=True))
    # a relationship bulk task is not a resource bulk task
    with pytest.raises(NotFoundError):
        client.get_resource_bulk_status(SOURCE, accepted.task_id)


def test_client_legacy_rejected_bulk_is_a_value_and_applies_nothing(harness: Harness):
    client = harness.client()
    request = ResourceBulkRequest(
        operations=[
            ResourceOperation.for_upsert(provider("p-1")),
            ResourceOperation.for_upsert(provider("p-2", UNKNOWN="not in the profile")),
        ]
    )

    answer = client.submit_resource_bulk(SOURCE, request)

    assert isinstance(answer, BulkRejected)
    assert answer.status == "REJECTED"
    assert [str(r.status) for r in answer.receipts] == ["CANCELLED", "FAILURE"]
    error = answer.receipts[1].error
    assert error is not None
    assert error.type == "FAILED_PRECONDITION"
    assert error.message == "invalid schema for provider"
    assert [detail.message for detail in error.details] == [
        "additionalProperties 'UNKNOWN' not allowed"
    ]
    assert [entry["status"] for entry in harness.requests("resources_bulk")] == [400]
    assert harness.admin("GET", f"/sources/{SOURCE}/tasks") == []
    assert harness.writes() == []
    with pytest.raises(NotFoundError):
        client.get_resource(SOURCE, "provider", "p-1")


def shuffled_state(client: RegistryClient, request: ResourceBulkRequest) -> TaskState:
    accepted = accepted_task(client.submit_resource_bulk(SOURCE, request))
    ref = TaskRef.from_submission(SOURCE, accepted.task_id, issued_by=IssuedBy.RESOURCES_BULK)
    return client.wait_for_task(ref, deadline_s=10.0, policy=FAST_POLLS)


def test_client_shuffled_receipts_still_match_operations_by_type_and_id(harness: Harness):
    harness.configure(shuffle_receipts=True)
    client = harness.client()
    payloads = [
        ResourcePayload(type=type_, id=f"{type_}-{n}", data={"name": f"{type_} {n}"})
        for n in range(4)
        for type_ in ("office", "provider")
    ]
    request = ResourceBulkRequest(operations=[ResourceOperation.for_upsert(p) for p in payloads])

    state = shuffled_state(client, request)

    assert state.status == "SUCCESS"
    assert state.receipts is not None
    sent_order = [(p.type, p.id) for p in payloads]
    assert [(r.type, r.id) for r in state.receipts] != sent_order
    receipts = by_identity(state.receipts)
    assert sorted(receipts) == sorted(sent_order)
    for payload in payloads:
        receipt = receipts[payload.type, payload.id]
        assert (receipt.status, receipt.action) == ("SUCCESS", "UPSERT")
        stored = client.get_resource(SOURCE, payload.type, str(payload.id))
        assert stored.data == payload.data

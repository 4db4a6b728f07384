"""Bundles through `RegistryClient`: the seed examples, failures as values, and async tasks."""

from __future__ import annotations

import copy

import pytest

from api_client.errors import NotFoundError
from api_client.ids import GENERATED_ID_LENGTH, is_resource_id
from api_client.models import (
    BundleReceipts,
    BundleRequest,
    ErrorBody,
    Receipt,
    TaskAccepted,
)
from api_client.tasks import IssuedBy, TaskRef
from tests.integration.client.conftest import FAST_POLLS, SOURCE, Harness, seed, seed_bundle

pytestmark = pytest.mark.integration


def identities(receipts: list[Receipt]) -> list[tuple[str | None, str | None, str]]:
    """(type, id, status) of each receipt, in order."""
    return [(r.type, r.id, str(r.status)) for r in receipts]


def unknown_property_bundle() -> BundleRequest:
    """The seed bundle with a property the office profile does not have."""
    body = copy.deepcopy(seed("bundle-guide.use-case-request"))
    body["resourceOperations"][0]["upsert"]["data"]["UNKNOWN"] = "not in the profile"
    return BundleRequest.model_validate(body)


def test_client_seed_bundle_persists_and_reads_back(harness: Harness):
    client = harness.client()
    answer = client.submit_bundle(SOURCE, seed_bundle())

    assert isinstance(answer, BundleReceipts)
    expected = seed("bundle-guide.success-answer")
    assert identities(answer.resource_operation_receipts) == [
        (r["type"], r["id"], r["status"]) for r in expected["resourceOperationReceipts"]
    ]
    assert identities(answer.relationship_operation_receipts) == [
        ("provider-office", "office.1,provider.2", "SUCCESS")
    ]
    office = client.get_resource(SOURCE, "office", "1")
    assert office.data == {"name": "Clinic Name"}
    assert office.meta is not None
    assert office.meta.source == SOURCE
    assert client.get_resource(SOURCE, "provider", "2").data == {"name": "John Doe"}
    relationship = client.get_relationship(SOURCE, "provider-office", "1.2")
    assert (relationship.from_.type, relationship.from_.id) == ("office", "1")
    assert (relationship.to.type, relationship.to.id) == ("provider", "2")
    assert relationship.data == {"description": "Works at"}


def test_client_virtual_id_bundle_returns_generated_ids_that_read_back(harness: Harness):
    client = harness.client()
    request = BundleRequest.model_validate(seed("bundle-guide.virtual-id-request"))

    answer = client.submit_bundle(SOURCE, request)

    assert isinstance(answer, BundleReceipts)
    office, provider = answer.resource_operation_receipts
    (relationship,) = answer.relationship_operation_receipts
    for receipt in (office, provider):
        assert receipt.status == "SUCCESS"
        assert receipt.id is not None
        assert len(receipt.id) == GENERATED_ID_LENGTH
        assert is_resource_id(receipt.id)
    assert office.id != provider.id
    assert relationship.id == f"office.{office.id},provider.{provider.id}"
    assert client.get_resource(SOURCE, "office", str(office.id)).data == {"name": "Clinic Name"}
    assert client.get_resource(SOURCE, "provider", str(provider.id)).data == {"name": "John Doe"}
    stored = client.get_relationship(SOURCE, "provider-office", f"{office.id}.{provider.id}")
    assert (stored.from_.id, stored.to.id) == (office.id, provider.id)


@pytest.mark.parametrize("failure_status", [400, 200])
def test_client_unknown_property_bundle_is_a_value_and_persists_nothing(
    harness: Harness, failure_status: int
):
    harness.configure(bundle_failure_status=failure_status)
    client = harness.client()

    answer = client.submit_bundle(SOURCE, unknown_property_bundle())

    assert isinstance(answer, BundleReceipts)
    assert identities(answer.resource_operation_receipts) == [
        ("office", "1", "FAILURE"),
        ("provider", "2", "CANCELLED"),
    ]
    assert identities(answer.relationship_operation_receipts) == [
        ("provider-office", "office.1,provider.2", "CANCELLED")
    ]
    error = answer.resource_operation_receipts[0].error
    assert error is not None
    assert (error.code, error.type, error.message) == (
        400,
        "FAILED_PRECONDITION",
        "invalid schema for office",
    )
    assert error.details == [
        ErrorBody(
            code=400, type="INVALID_ARGUMENT", message="additionalProperties 'UNKNOWN' not allowed"
        )
    ]
    assert all(r.error is None for r in answer.resource_operation_receipts[1:])
    [logged] = harness.requests("bundle")
    assert logged["status"] == failure_status
    for type_, id_ in (("office", "1"), ("provider", "2")):
        with pytest.raises(NotFoundError):
            client.get_resource(SOURCE, type_, id_)
    assert harness.writes() == []


def test_client_async_bundle_waits_to_success_applying_each_operation_once(harness: Harness):
    harness.configure(source_modes={SOURCE: "async"})
    client = harness.client()

    accepted = client.submit_bundle(SOURCE, seed_bundle())

    assert isinstance(accepted, TaskAccepted)
    assert accepted.status == "ACCEPTED"
    assert accepted.task_id.startswith("bd_")
    ref = TaskRef.from_submission(SOURCE, accepted.task_id, issued_by=IssuedBy.BUNDLE)
    state = client.wait_for_task(ref, deadline_s=10.0, policy=FAST_POLLS)
    assert state.status == "SUCCESS"
    assert state.receipts is not None
    assert [(r.type, r.id, r.status, r.action) for r in state.receipts] == [
        ("office", "1", "SUCCESS", "UPSERT"),
        ("provider", "2", "SUCCESS", "UPSERT"),
        ("provider-office", "office.1,provider.2", "SUCCESS", "UPSERT"),
    ]
    assert {r.task_id for r in state.receipts} == {accepted.task_id}
    # more reads of a finished task apply nothing again
    assert client.get_task(SOURCE, accepted.task_id).status == "SUCCESS"
    writes = harness.writes()
    assert [w["id"] for w in writes] == ["1", "2", "office.1,provider.2"]
    assert {w["taskId"] for w in writes} == {accepted.task_id}
    assert client.get_resource(SOURCE, "office", "1").data == {"name": "Clinic Name"}


def test_client_async_bundle_failure_ends_the_task_failure_and_persists_nothing(
    harness: Harness,
):
    harness.configure(source_modes={SOURCE: "async"})
    client = harness.client()

    accepted = client.submit_bundle(SOURCE, unknown_property_bundle())

    assert isinstance(accepted, TaskAccepted)
    ref = TaskRef.from_submission(SOURCE, accepted.task_id, issued_by=IssuedBy.BUNDLE)
    state = client.wait_for_task(ref, deadline_s=10.0, policy=FAST_POLLS)
    assert state.status == "FAILURE"
    assert state.receipts is not None
    assert [str(r.status) for r in state.receipts] == ["FAILURE", "CANCELLED", "CANCELLED"]
    assert state.receipts[0].error is not None
    assert state.receipts[0].error.type == "FAILED_PRECONDITION"
    assert harness.writes() == []


def test_client_wait_polls_status_only_until_terminal_then_reads_receipts_once(
    harness: Harness,
):
    harness.configure(source_modes={SOURCE: "async"}, task_pending_polls=3)
    client = harness.client()
    accepted = client.submit_bundle(SOURCE, seed_bundle())
    assert isinstance(accepted, TaskAccepted)
    ref = TaskRef.from_submission(SOURCE, accepted.task_id, issued_by=IssuedBy.BUNDLE)

    state = client.wait_for_task(ref, deadline_s=10.0, policy=FAST_POLLS)

    assert state.status == "SUCCESS"
    assert state.receipts is not None
    assert len(state.receipts) == 3
    task_path = f"/sources/{SOURCE}/v1/tasks/{accepted.task_id}"
    queries = [line.query for line in harness.sent if line.path == task_path]
    # three PENDING answers, the terminal one, then a single read of the receipts
    assert queries == ["withReceipts=false"] * 4 + ["withReceipts=true"]
    polls = harness.requests("task_status")
    assert [(p["path"], p["status"]) for p in polls] == [(task_path, 200)] * 5
    assert harness.time.sleeps == [FAST_POLLS.first_wait_s] * 3

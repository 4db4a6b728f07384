"""Injected task faults through `RegistryClient`: a task held in review, and a task that fails."""

from __future__ import annotations

from typing import Any

import pytest

from api_client._client import RegistryClient
from api_client.errors import NotFoundError, TaskStillPendingError
from api_client.models import (
    BundleReceipts,
    ErrorBody,
    Receipt,
    ResourceBulkRequest,
    ResourceOperation,
    ResourcePayload,
    TaskAccepted,
)
from api_client.tasks import IssuedBy, TaskRef
from api_client.waiting import PollPolicy
from tests.integration.client.conftest import FAST_POLLS, SOURCE, Harness, seed_bundle

pytestmark = pytest.mark.integration

ONE_SECOND_POLLS = PollPolicy(first_wait_s=1.0, multiplier=1.0, cap_s=1.0, jitter=0.0)
"""A poll every (fake) second, so a deadline fixes the number of polls exactly."""
INJECTED = {"code": 500, "message": "pipeline crashed", "type": "INTERNAL"}


def test_client_wait_on_a_task_held_in_review_stops_at_its_deadline_then_resumes(
    harness: Harness,
):
    harness.add_fault({"route": "bundle", "times": 1, "effect": {"kind": "pending", "polls": 8}})
    client = harness.client()
    accepted = client.submit_bundle(SOURCE, seed_bundle())
    assert isinstance(accepted, TaskAccepted)
    ref = TaskRef.from_submission(SOURCE, accepted.task_id, issued_by=IssuedBy.BUNDLE)

    # polls at 0, 1, 2 and 3 s: every one PENDING
    with pytest.raises(TaskStillPendingError) as raised:
        client.wait_for_task(ref, deadline_s=3.0, policy=ONE_SECOND_POLLS)

    assert raised.value.ref == ref
    assert (raised.value.last_status, raised.value.polls) == ("PENDING", 4)
    assert raised.value.elapsed_s == 3.0
    assert harness.writes() == []
    in_review = client.get_task_state(ref, with_receipts=True)
    assert in_review.status == "PENDING"
    assert in_review.receipts is not None
    assert len(in_review.receipts) == 3
    for receipt in in_review.receipts:
        assert receipt.status == "PENDING"
        assert receipt.pipeline_execution is not None
        assert receipt.pipeline_execution.status == "IN_REVIEW"

    state = client.wait_for_task(ref, deadline_s=30.0, policy=ONE_SECOND_POLLS)

    assert state.status == "SUCCESS"
    assert state.receipts is not None
    assert {str(r.status) for r in state.receipts} == {"SUCCESS"}
    task_path = f"/sources/{SOURCE}/v1/tasks/{accepted.task_id}"
    queries = [line.query for line in harness.sent if line.path == task_path]
    # 8 PENDING answers (4 + 1 + 3), the terminal poll, the final read of the receipts
    assert queries == (
        ["withReceipts=false"] * 4
        + ["withReceipts=true"]
        + ["withReceipts=false"] * 4
        + ["withReceipts=true"]
    )
    assert harness.written_ids() == ["1", "2", "office.1,provider.2"]


def failed_everywhere(receipts: list[Receipt], count: int) -> None:
    """Every one of `count` receipts is FAILURE with the injected error."""
    assert len(receipts) == count
    for receipt in receipts:
        assert receipt.status == "FAILURE"
        assert receipt.error == ErrorBody.model_validate({**INJECTED, "details": []})


def bulk_failure(harness: Harness, client: RegistryClient) -> tuple[Any, int]:
    harness.add_fault(
        {
            "route": "resources_bulk",
            "times": 1,
            "effect": {"kind": "task_failure", "error": INJECTED},
        }
    )
    request = ResourceBulkRequest(
        operations=[
            ResourceOperation.for_upsert(
                ResourcePayload(type="provider", id=id_, data={"name": "John Doe"})
            )
            for id_ in ("2", "3")
        ]
    )
    return client.submit_resource_bulk(SOURCE, request), 2


def bundle_failure(harness: Harness, client: RegistryClient) -> tuple[Any, int]:
    harness.configure(source_modes={SOURCE: "async"})
    harness.add_fault(
        {"route": "bundle", "times": 1, "effect": {"kind": "task_failure", "error": INJECTED}}
    )
    return client.submit_bundle(SOURCE, seed_bundle()), 3


@pytest.mark.parametrize(
    ("submit", "issued_by"),
    [(bulk_failure, IssuedBy.RESOURCES_BULK), (bundle_failure, IssuedBy.BUNDLE)],
    ids=["resources-bulk", "async-bundle"],
)
def test_client_task_failure_ends_failure_with_the_error_on_every_receipt(
    harness: Harness, submit: Any, issued_by: IssuedBy
):
    client = harness.client()
    accepted, count = submit(harness, client)
    assert isinstance(accepted, TaskAccepted)
    ref = TaskRef.from_submission(SOURCE, accepted.task_id, issued_by=issued_by)

    state = client.wait_for_task(ref, deadline_s=10.0, policy=FAST_POLLS)

    assert state.status == "FAILURE"
    assert state.receipts is not None
    failed_everywhere(state.receipts, count)
    assert harness.writes() == []
    with pytest.raises(NotFoundError):
        client.get_resource(SOURCE, "provider", "2")


def test_client_task_failure_on_a_synchronous_bundle_fails_every_receipt_at_once(
    harness: Harness,
):
    harness.add_fault(
        {"route": "bundle", "times": 1, "effect": {"kind": "task_failure", "error": INJECTED}}
    )
    client = harness.client()

    answer = client.submit_bundle(SOURCE, seed_bundle())

    assert isinstance(answer, BundleReceipts)
    failed_everywhere(
        answer.resource_operation_receipts + answer.relationship_operation_receipts, 3
    )
    assert harness.writes() == []

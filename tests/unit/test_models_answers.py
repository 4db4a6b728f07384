"""What the Registry answers: bundle and bulk dispatch, task states, errors, single writes."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from api_client.models import (
    BulkRejected,
    BundleReceipts,
    DeleteAnswer,
    ErrorBody,
    ErrorType,
    Meta,
    PipelineExecutionRef,
    ReceiptStatus,
    ResourceWriteAnswer,
    SubmissionStatus,
    TaskAccepted,
    TaskState,
    parse_bulk_answer,
    parse_bundle_answer,
)

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


def test_parse_bulk_answer_reads_receipts_without_status_as_rejected() -> None:
    answer = parse_bulk_answer({"receipts": [{"status": "CANCELLED"}]})
    assert isinstance(answer, BulkRejected)
    assert answer.status == SubmissionStatus.REJECTED
    assert [receipt.status for receipt in answer.receipts] == [ReceiptStatus.CANCELLED]


def test_task_accepted_prefers_task_id_over_legacy_bulk_id() -> None:
    answer = TaskAccepted.model_validate(
        {"taskId": "bk_new", "bulkId": "old", "status": "ACCEPTED"}
    )

    assert (answer.task_id, answer.bulk_id) == ("bk_new", "old")


# --- task states, errors, single writes --------------------------------------------------------


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

"""What the Registry answers: errors, receipts, submissions, task states, single writes, purges.

Validation here is deliberately light: we must be able to read whatever the Registry sends, so only
the fields that give an answer its meaning are required, unknown fields are kept, and unknown enum
values stay strings. A `null` list reads as an empty one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Final

import pydantic_core
from pydantic import Field, model_validator

from api_client._models_base import (
    NoneAsEmpty,
    OpenAction,
    OpenErrorType,
    OpenReceiptStatus,
    OpenSubmissionStatus,
    OpenTargetType,
    OpenTaskStatus,
    RegistryModel,
    SubmissionStatus,
    is_terminal,
)
from api_client._models_entities import Relationship, Resource

_RESOURCE_RECEIPTS: Final = "resourceOperationReceipts"
_RELATIONSHIP_RECEIPTS: Final = "relationshipOperationReceipts"


class ErrorBody(RegistryModel):
    """The Registry's error object, in receipts and (presumably) in non-2xx answers."""

    code: int | None = None
    message: str | None = None
    type: OpenErrorType | None = None
    details: Annotated[list[ErrorBody], NoneAsEmpty] = Field(default_factory=list)


class PipelineExecutionRef(RegistryModel):
    """The ingestion-pipeline run behind a receipt; IN_REVIEW keeps its task PENDING."""

    id: str | None = None
    pipeline_definition_id: str | None = None
    status: str


class Receipt(RegistryModel):
    """The fate of one operation; matched to its operation by target, type and id."""

    status: OpenReceiptStatus
    id: str | None = None
    type: str | None = None
    received_at: str | None = None
    completed_at: str | None = None
    task_id: str | None = None
    action: OpenAction | None = None
    target_type: OpenTargetType | None = None
    error: ErrorBody | None = None
    pipeline_execution: PipelineExecutionRef | None = None


class BundleReceipts(RegistryModel):
    """The synchronous bundle answer: one receipt per operation, all SUCCESS or none applied."""

    resource_operation_receipts: Annotated[list[Receipt], NoneAsEmpty] = Field(default_factory=list)
    relationship_operation_receipts: Annotated[list[Receipt], NoneAsEmpty] = Field(
        default_factory=list
    )
    status: OpenSubmissionStatus | None = None
    task_id: str | None = None


class TaskAccepted(RegistryModel):
    """A write queued for asynchronous processing: poll `task_id` (with its source key).

    The legacy bulk answer carries only `bulkId`; it then stands in for the missing `taskId`
    (the current reference says the two are equal).
    """

    task_id: str
    status: OpenSubmissionStatus
    bulk_id: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _task_id_from_legacy_bulk_id(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "taskId" not in data and "task_id" not in data:
            bulk_id = data.get("bulkId", data.get("bulk_id"))
            if bulk_id is not None:
                return {**data, "taskId": bulk_id}
        return data


class BulkRejected(RegistryModel):
    """The legacy synchronous refusal of a bulk request: nothing was applied."""

    status: OpenSubmissionStatus = SubmissionStatus.REJECTED
    """Absent in a refusal that carries only receipts; the receipts alone say it was refused."""
    receipts: Annotated[list[Receipt], NoneAsEmpty] = Field(default_factory=list)


class TaskState(RegistryModel):
    """A task's progress, from /tasks/{id} or a bulk status GET (which has no `taskId`)."""

    status: OpenTaskStatus
    task_id: str | None = None
    receipts: list[Receipt] | None = None

    @property
    def is_terminal(self) -> bool:
        """Whether polling may stop (an unknown status is not terminal)."""
        return is_terminal(self.status)


class ResourceWriteAnswer(RegistryModel):
    """The answer to a single resource create or upsert."""

    task_id: str | None = None
    status: OpenSubmissionStatus
    resource: Resource | None = None


class RelationshipWriteAnswer(RegistryModel):
    """The answer to a single relationship create or update."""

    task_id: str | None = None
    status: OpenSubmissionStatus
    relationship: Relationship | None = None


class DeleteAnswer(RegistryModel):
    """The answer to a single delete."""

    task_id: str | None = None
    status: OpenSubmissionStatus


class PurgeOperation(RegistryModel):
    """A collection purge and its progress (`purge_id` is deprecated in favour of `task_id`)."""

    task_id: str | None = None
    purge_id: str | None = None
    collection_type: str | None = None
    collection_key: str | None = None
    status: OpenTaskStatus | None = None
    deleted_count: int | None = None
    created_at: str | None = None
    updated_at: str | None = None


class PurgeAnswer(RegistryModel):
    """The answer to a purge request."""

    task_id: str | None = None
    status: OpenSubmissionStatus
    purge_operation: PurgeOperation | None = None


def _as_object(data: Mapping[str, Any] | bytes | str) -> Any:
    return pydantic_core.from_json(data) if isinstance(data, bytes | str) else data


def parse_bundle_answer(data: Mapping[str, Any] | bytes | str) -> TaskAccepted | BundleReceipts:
    """Read a bundle answer, which is either a queued task or the receipts of a synchronous run.

    Receipt lists, or a PERSISTED status, make it `BundleReceipts`; anything else must be a
    `TaskAccepted`.

    Args:
        data: the decoded JSON object, or the raw body.

    Raises:
        ValueError: the body is not JSON, or (as `pydantic.ValidationError`) fits neither shape.
    """
    body = _as_object(data)
    if isinstance(body, Mapping) and (
        _RESOURCE_RECEIPTS in body
        or _RELATIONSHIP_RECEIPTS in body
        or body.get("status") == SubmissionStatus.PERSISTED
    ):
        return BundleReceipts.model_validate(body)
    return TaskAccepted.model_validate(body)


def parse_bulk_answer(data: Mapping[str, Any] | bytes | str) -> TaskAccepted | BulkRejected:
    """Read a bulk submit answer: a queued task, or the legacy synchronous rejection.

    REJECTED, or receipts without any task id, make it `BulkRejected`; anything else must be a
    `TaskAccepted`.

    Args:
        data: the decoded JSON object, or the raw body.

    Raises:
        ValueError: the body is not JSON, or (as `pydantic.ValidationError`) fits neither shape.
    """
    body = _as_object(data)
    if isinstance(body, Mapping) and (
        body.get("status") == SubmissionStatus.REJECTED
        or ("receipts" in body and "taskId" not in body and "bulkId" not in body)
    ):
        return BulkRejected.model_validate(body)
    return TaskAccepted.model_validate(body)

"""Readers of answers, passed to `_http.read_answer`: each turns decoded JSON into one value.

They live apart from the HTTP boundary because they know models, not httpx: a ValueError or
TypeError they raise (pydantic's `ValidationError` is a ValueError) is what `read_answer` turns
into a `ContractError`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel

from api_client.models import (
    BulkRejected,
    BundleReceipts,
    PurgeOperation,
    TaskState,
    parse_bulk_answer,
    parse_bundle_answer,
)

__all__ = [
    "bulk_refusal",
    "bundle_refusal",
    "echo_or",
    "model_reader",
    "purge_operation",
    "purge_state",
]

_M = TypeVar("_M", bound=BaseModel)


def model_reader(model: type[_M]) -> Callable[[Any], _M]:
    """Reads a 2xx answer as `model` (a validation error becomes a `ContractError`)."""

    def read(body: Any) -> _M:
        return model.model_validate(body)

    return read


def echo_or(model: type[_M], sent: _M) -> Callable[[Any], _M]:
    """Reads the answer of a schema PUT; an empty answer means the Registry stored what was sent."""

    def read(body: Any) -> _M:
        return sent if body is None else model.model_validate(body)

    return read


def bundle_refusal(body: Any) -> BundleReceipts | None:
    """The receipts of a refused bundle (any status), or None when the body carries none."""
    if not isinstance(body, Mapping) or not (
        "resourceOperationReceipts" in body or "relationshipOperationReceipts" in body
    ):
        return None
    answer = parse_bundle_answer(body)
    return answer if isinstance(answer, BundleReceipts) else None


def bulk_refusal(body: Any) -> BulkRejected | None:
    """A legacy bulk REJECTED with receipts (any status), or None when the body is not one."""
    if not isinstance(body, Mapping) or "receipts" not in body:
        return None
    answer = parse_bulk_answer(body)
    return answer if isinstance(answer, BulkRejected) else None


def purge_operation(body: Any) -> PurgeOperation:
    """The purge GET answers the operation itself; a wrapped `purgeOperation` is read too."""
    if isinstance(body, Mapping) and isinstance(body.get("purgeOperation"), Mapping):
        body = body["purgeOperation"]
    return PurgeOperation.model_validate(body)


def purge_state(body: Any) -> TaskState:
    """A purge's progress as a `TaskState`, so that waiting treats every task alike."""
    operation = purge_operation(body)
    if operation.status is None:
        raise ValueError("the purge operation has no status")
    return TaskState.model_validate({"status": operation.status, "taskId": operation.task_id})

"""How RegistryClient reads answers: receipts as values, refusals as errors, open values."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from api_client import errors
from api_client._client import RegistryClient
from api_client.models import (
    BulkRejected,
    BundleReceipts,
    ErrorType,
    ReceiptStatus,
)
from api_client.retry import RetryPolicy
from tests.unit.test_client_fakes import (
    BUNDLE,
    RES_BULK,
    SOURCE,
    FakeTime,
    Script,
    assert_no_secret,
    json_response,
    make_client,
)

# -- receipts are values, whatever the status -----------------------------------------------------

FAILED_BUNDLE = {
    "resourceOperationReceipts": [
        {
            "id": "p-17",
            "type": "provider",
            "status": "FAILURE",
            "error": {"code": 400, "type": "FAILED_PRECONDITION", "message": "invalid schema"},
        }
    ],
    "relationshipOperationReceipts": [
        {"id": "1.2", "type": "provider-office", "status": "CANCELLED"}
    ],
}


@pytest.mark.parametrize("status", [200, 400, 409, 422])
def test_client_submit_bundle_returns_receipts_whatever_the_status(status: int) -> None:
    script = Script(json_response(status, FAILED_BUNDLE))
    answer = make_client(script).submit_bundle(SOURCE, BUNDLE)
    assert isinstance(answer, BundleReceipts)
    assert [r.status for r in answer.resource_operation_receipts] == [ReceiptStatus.FAILURE]
    assert answer.resource_operation_receipts[0].error is not None
    assert answer.resource_operation_receipts[0].error.type is ErrorType.FAILED_PRECONDITION
    assert len(script.requests) == 1


def test_client_submit_resource_bulk_returns_a_legacy_rejection_as_a_value() -> None:
    rejected = {
        "status": "REJECTED",
        "receipts": [
            {"status": "CANCELLED"},
            {"status": "FAILURE", "error": {"code": 400, "message": "m", "type": "X"}},
        ],
    }
    answer = make_client(Script(json_response(400, rejected))).submit_resource_bulk(
        SOURCE, RES_BULK
    )
    assert isinstance(answer, BulkRejected)
    assert [r.status for r in answer.receipts] == [ReceiptStatus.CANCELLED, ReceiptStatus.FAILURE]


def test_client_submit_bundle_answers_persisted_receipts() -> None:
    ok = {
        "resourceOperationReceipts": [{"id": "p-17", "type": "provider", "status": "SUCCESS"}],
        "relationshipOperationReceipts": [],
    }
    answer = make_client(Script(json_response(200, ok))).submit_bundle(SOURCE, BUNDLE)
    assert isinstance(answer, BundleReceipts)
    assert answer.resource_operation_receipts[0].status is ReceiptStatus.SUCCESS


# -- errors without receipts ----------------------------------------------------------------------

SCHEMA_ERROR = {
    "code": 400,
    "type": "FAILED_PRECONDITION",
    "message": "invalid schema for office",
    "details": [{"code": 400, "type": "INVALID_ARGUMENT", "message": "additionalProperties"}],
}


@pytest.mark.parametrize(
    ("status", "body", "expected", "error_type"),
    [
        (400, SCHEMA_ERROR, errors.InvalidRequestError, ErrorType.FAILED_PRECONDITION),
        (
            404,
            {"code": 404, "type": "NOT_FOUND", "message": "no source"},
            errors.NotFoundError,
            ErrorType.NOT_FOUND,
        ),
        (
            409,
            {"code": 409, "type": "ALREADY_EXISTS", "message": "exists"},
            errors.AlreadyExistsError,
            ErrorType.ALREADY_EXISTS,
        ),
        (
            401,
            {"code": 401, "type": "UNAUTHENTICATED", "message": "who?"},
            errors.UnauthenticatedError,
            ErrorType.UNAUTHENTICATED,
        ),
        (
            403,
            {"code": 403, "type": "PERMISSION_DENIED", "message": "no"},
            errors.PermissionDeniedError,
            ErrorType.PERMISSION_DENIED,
        ),
    ],
)
@pytest.mark.parametrize(
    "call", [lambda c: c.submit_bundle(SOURCE, BUNDLE), lambda c: c.get_task(SOURCE, "bd_1")]
)
def test_client_raises_the_error_of_a_refusal_without_receipts(
    status: int,
    body: dict[str, Any],
    expected: type[errors.APIError],
    error_type: ErrorType,
    call: Callable[[RegistryClient], Any],
) -> None:
    script = Script(json_response(status, body))
    time = FakeTime()
    with pytest.raises(expected) as caught:
        call(make_client(script, time=time))
    error = caught.value
    assert error.status == status
    assert error.error_type is error_type
    assert error.message == body["message"]
    assert [d.message for d in error.details] == [d["message"] for d in body.get("details", [])]
    assert not error.retryable
    assert len(script.requests) == 1
    assert time.waits == []
    assert_no_secret(error)


def test_client_auth_errors_share_a_base() -> None:
    for status in (401, 403):
        with pytest.raises(errors.AuthError):
            make_client(Script(httpx.Response(status))).get_task(SOURCE, "bd_1")


# -- contract violations and open values ----------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "call"),
    [
        (b"<html>oops</html>", lambda c: c.get_task(SOURCE, "bd_1")),
        (b'{"status": ', lambda c: c.submit_bundle(SOURCE, BUNDLE)),
        (b'{"receipts": "not a list"}', lambda c: c.get_task(SOURCE, "bd_1")),
        (b"[]", lambda c: c.submit_resource_bulk(SOURCE, RES_BULK)),
        (b"", lambda c: c.delete_resource(SOURCE, "provider", "p-17")),
    ],
    ids=["html", "truncated", "wrong-shape", "array", "empty"],
)
def test_client_raises_contract_error_for_an_unreadable_2xx_answer(
    content: bytes, call: Callable[[RegistryClient], Any]
) -> None:
    script = Script(httpx.Response(200, content=content))
    with pytest.raises(errors.ContractError) as caught:
        call(make_client(script))
    assert caught.value.status == 200
    assert not caught.value.retryable
    assert len(script.requests) == 1


def test_client_reads_unknown_fields_statuses_and_error_types_without_raising() -> None:
    answer = {
        "status": "SUCCESS",
        "taskId": "bd_1",
        "brandNewField": {"x": 1},
        "receipts": [
            {"status": "QUARANTINED", "id": "p-17", "type": "provider", "futureFlag": True},
            {
                "status": "FAILURE",
                "id": "p-18",
                "type": "provider",
                "error": {"code": 400, "type": "SOMETHING_NEW", "message": "m"},
            },
        ],
    }
    state = make_client(Script(json_response(200, answer))).get_task(
        SOURCE, "bd_1", with_receipts=True
    )
    assert state.model_extra == {"brandNewField": {"x": 1}}
    assert state.receipts is not None
    assert state.receipts[0].status == "QUARANTINED"
    assert state.receipts[1].error is not None
    assert state.receipts[1].error.type == "SOMETHING_NEW"


def test_client_reads_an_unknown_task_status_as_not_terminal() -> None:
    state = make_client(Script(json_response(200, {"status": "PAUSED"}))).get_task(SOURCE, "bd_1")
    assert state.status == "PAUSED"
    assert not state.is_terminal


@pytest.mark.parametrize(
    "failure",
    [
        *[
            httpx.Response(status)
            for status in (400, 401, 403, 404, 409, 413, 429, 500, 501, 502, 503)
        ],
        httpx.Response(200, content=b"not json"),
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
        httpx.LocalProtocolError("bad header"),
    ],
    ids=lambda f: str(f.status_code) if isinstance(f, httpx.Response) else type(f).__name__,
)
@pytest.mark.parametrize("write", [False, True], ids=["read", "write"])
def test_client_errors_never_show_the_key(failure: httpx.Response | Exception, write: bool) -> None:
    script = Script(failure)
    client = make_client(script, policy=RetryPolicy(max_attempts=1))
    send: Callable[[], Any] = (
        (lambda: client.submit_resource_bulk(SOURCE, RES_BULK))
        if write
        else (lambda: client.get_task(SOURCE, "bk_1"))
    )
    with pytest.raises(errors.RegistryError) as caught:
        send()
    assert_no_secret(caught.value)

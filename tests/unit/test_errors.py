"""The error tree and the one boundary that turns httpx exceptions and statuses into it."""

from __future__ import annotations

import pickle

import httpx
import pytest

from api_client import errors
from api_client._http import TRANSPORT_FAILURES, Call, error_for_httpx, error_for_status
from api_client.models import ErrorBody, ErrorType
from api_client.tasks import TaskRef

WRITE = Call("POST", "/sources/hospital-a/v1/bundle", body=b'{"secret-data":"Jane Roe"}')
READ = Call("GET", "/sources/hospital-a/v1/tasks/bd_1")


def _all_subclasses(cls: type) -> list[type]:
    found: list[type] = []
    sub: type
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_all_subclasses(sub))
    return found


def test_transport_failures_map_every_httpx_transport_error_subclass() -> None:
    classes = [httpx.TransportError, *_all_subclasses(httpx.TransportError)]
    httpx_classes = [cls for cls in classes if cls.__module__.startswith("httpx")]
    unmapped = [cls.__name__ for cls in httpx_classes if cls not in TRANSPORT_FAILURES]
    assert len(httpx_classes) >= 16
    assert unmapped == []


@pytest.mark.parametrize(
    "exc_class",
    [
        httpx.ReadTimeout,
        httpx.WriteTimeout,
        httpx.RemoteProtocolError,
        httpx.ReadError,
        httpx.WriteError,
    ],
)
def test_error_for_httpx_marks_failures_after_sending_as_maybe_applied(exc_class: type) -> None:
    error = error_for_httpx(exc_class("boom"), WRITE)
    assert isinstance(error, errors.TransportError)
    assert error.maybe_applied
    assert error.retryable


@pytest.mark.parametrize(
    ("exc_class", "expected"),
    [
        (httpx.ConnectError, errors.TransportError),
        (httpx.ConnectTimeout, errors.RequestTimeoutError),
        (httpx.PoolTimeout, errors.RequestTimeoutError),
    ],
)
def test_error_for_httpx_marks_connect_failures_as_not_processed(
    exc_class: type, expected: type
) -> None:
    error = error_for_httpx(exc_class("boom"), WRITE)
    assert type(error) is expected
    assert not error.maybe_applied
    assert error.retryable
    assert (error.method, error.path) == ("POST", "/sources/hospital-a/v1/bundle")


@pytest.mark.parametrize("exc_class", [httpx.UnsupportedProtocol, httpx.LocalProtocolError])
def test_error_for_httpx_refuses_to_retry_requests_that_cannot_be_sent(exc_class: type) -> None:
    error = error_for_httpx(exc_class("boom"), WRITE)
    assert not error.retryable
    assert not error.maybe_applied


def test_error_for_httpx_never_quotes_the_httpx_message() -> None:
    error = error_for_httpx(httpx.LocalProtocolError("Illegal header value b'k3y-secret'"), WRITE)
    assert "k3y-secret" not in str(error)
    assert "LocalProtocolError" in str(error)


def test_error_for_httpx_reads_an_undecodable_answer_as_a_contract_error() -> None:
    error = error_for_httpx(httpx.DecodingError("bad gzip"), WRITE)
    assert isinstance(error, errors.ContractError)
    assert error.maybe_applied  # the Registry answered a write


def _status_error(
    status: int, body: object = None, headers: dict[str, str] | None = None
) -> errors.APIError:
    response = httpx.Response(status, headers=headers)
    return error_for_status(response, body, WRITE, now_s=1_000_000.0)


@pytest.mark.parametrize(
    ("status", "expected", "retryable", "maybe_applied"),
    [
        (400, errors.InvalidRequestError, False, False),
        (401, errors.UnauthenticatedError, False, False),
        (403, errors.PermissionDeniedError, False, False),
        (404, errors.NotFoundError, False, False),
        (409, errors.AlreadyExistsError, False, False),
        (413, errors.InvalidRequestError, False, False),
        (422, errors.InvalidRequestError, False, False),
        (429, errors.RateLimitedError, True, False),
        (500, errors.ServerError, True, True),
        (501, errors.ServerError, False, False),
        (502, errors.ServerError, True, True),
        (503, errors.ServiceUnavailableError, True, False),
        (504, errors.ServerError, True, True),
        (599, errors.ServerError, True, True),
    ],
)
def test_error_for_status_maps_each_status(
    status: int, expected: type, retryable: bool, maybe_applied: bool
) -> None:
    error = _status_error(status)
    assert type(error) is expected
    assert error.status == status
    assert error.retryable is retryable
    assert error.maybe_applied is maybe_applied


def test_error_for_status_carries_type_message_and_nested_details() -> None:
    body = {
        "code": 400,
        "type": "FAILED_PRECONDITION",
        "message": "invalid schema for office",
        "details": [
            {"code": 400, "type": "INVALID_ARGUMENT", "message": "additionalProperties 'X'"}
        ],
    }
    error = _status_error(400, body)
    assert error.error_type is ErrorType.FAILED_PRECONDITION
    assert error.message == "invalid schema for office"
    assert [d.message for d in error.details] == ["additionalProperties 'X'"]
    assert str(error) == (
        "POST /sources/hospital-a/v1/bundle -> 400 FAILED_PRECONDITION: invalid schema for office"
    )


def test_error_for_status_keeps_an_unknown_error_type_as_text() -> None:
    error = _status_error(409, {"code": 409, "type": "BRAND_NEW_TYPE", "message": "m"})
    assert error.error_type == "BRAND_NEW_TYPE"
    assert isinstance(error, errors.AlreadyExistsError)


def test_error_for_status_falls_back_to_the_reason_phrase_without_an_error_body() -> None:
    error = _status_error(404, ["not", "an", "object"])
    assert error.error is None
    assert error.message == "Not Found"
    assert error.details == []


def test_error_for_status_reads_retry_after_on_429_and_503() -> None:
    waits = []
    for status, header in ((429, {"Retry-After": "3"}), (503, {"Retry-After": "7"}), (429, {})):
        error = _status_error(status, headers=header)
        assert isinstance(error, errors.RateLimitedError)
        waits.append(error.retry_after_s)
    assert waits == [3.0, 7.0, None]


def test_service_unavailable_is_both_a_throttle_and_a_server_error() -> None:
    assert issubclass(errors.ServiceUnavailableError, errors.RateLimitedError)
    assert issubclass(errors.ServiceUnavailableError, errors.ServerError)


def test_invalid_path_segment_error_is_a_value_error_and_an_invalid_request() -> None:
    error = errors.InvalidPathSegmentError("source_key", "../x", "does not match the pattern")
    assert isinstance(error, ValueError)
    assert isinstance(error, errors.InvalidRequestError)
    assert error.status is None
    assert not error.retryable
    assert str(error) == "source_key '../x' refused: does not match the pattern"


def test_invalid_path_segment_error_shortens_a_long_value() -> None:
    error = errors.InvalidPathSegmentError("resource_id", "x" * 500, "too long")
    assert len(str(error)) < 120


def test_task_still_pending_error_is_not_a_registry_error() -> None:
    pending = errors.TaskStillPendingError(
        TaskRef("hospital-a", "bd_1"), last_status="PENDING", elapsed_s=30.0, polls=4
    )
    assert not isinstance(pending, errors.RegistryError)
    assert "bd_1" in str(pending)
    assert "hospital-a" in str(pending)


def test_outcome_unknown_error_keeps_the_body_but_never_prints_it() -> None:
    failure = _status_error(502, {"code": 502, "message": "bad gateway"})
    error = errors.OutcomeUnknownError.after(failure, WRITE.sent())
    assert error.sent.body == b'{"secret-data":"Jane Roe"}'
    assert error.status == 502
    assert error.maybe_applied
    assert not error.retryable
    for text in (str(error), repr(error), repr(error.sent)):
        assert "Jane Roe" not in text
    assert "POST /sources/hospital-a/v1/bundle" in str(error)
    assert "26 bytes" in repr(error.sent)


def test_rate_limited_error_shows_the_wait_in_its_message() -> None:
    error = errors.RateLimitedError("slow down", status=429, retry_after_s=3.0)
    assert str(error) == "-> 429: slow down (retry after 3 s)"


@pytest.mark.parametrize(
    "error",
    [
        errors.RateLimitedError("slow", status=429, retry_after_s=2.5, method="GET", path="/p"),
        errors.OutcomeUnknownError("maybe", sent=WRITE.sent(), status=500),
        errors.InvalidPathSegmentError("task_id", "a/b", "bad"),
        errors.NotFoundError("gone", status=404, error=ErrorBody(code=404, type="NOT_FOUND")),
        errors.TaskStillPendingError(
            TaskRef("hospital-a", "bk_1"), last_status="PENDING", elapsed_s=1.0, polls=2
        ),
    ],
)
def test_errors_survive_pickling_with_their_attributes(error: Exception) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert vars(copy).keys() == vars(error).keys()

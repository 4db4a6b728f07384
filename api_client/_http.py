"""The one boundary where httpx, HTTP statuses and unreadable answers become our errors.

Everything foreign is translated here, with `raise ... from exc`: httpx exceptions (through
`TRANSPORT_FAILURES`, which names every `httpx.TransportError` subclass), non-2xx statuses (through
`error_for_status`), and answers the models cannot read (`ContractError`). Nothing above this module
looks at a status code or catches an httpx or pydantic exception.

The pooled `httpx.Client` is created on the first request, and again in a process forked after
that, so a worker can fork first; it never reads the environment (`trust_env=False`).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from api_client.config import ClientConfig
from api_client.errors import (
    AlreadyExistsError,
    APIError,
    ContractError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    RegistryError,
    RequestTimeoutError,
    SentRequest,
    ServerError,
    ServiceUnavailableError,
    TransportError,
    UnauthenticatedError,
)
from api_client.models import (
    BulkRejected,
    BundleReceipts,
    ErrorBody,
    PurgeOperation,
    TaskState,
    parse_bulk_answer,
    parse_bundle_answer,
)
from api_client.retry import parse_retry_after

__all__ = [
    "TRANSPORT_FAILURES",
    "Call",
    "HttpSession",
    "TransportFailure",
    "bulk_refusal",
    "bundle_refusal",
    "echo_or",
    "error_for_httpx",
    "error_for_status",
    "model_reader",
    "purge_operation",
    "purge_state",
    "read_answer",
]

_T = TypeVar("_T")
_M = TypeVar("_M", bound=BaseModel)

API_KEY_HEADER: Final = "X-Clinia-API-Key"
_READS: Final = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Call:
    """One request as the client means it: method, encoded path, query, and the exact body bytes."""

    method: str
    path: str
    params: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = field(default=None, repr=False)
    model: BaseModel | None = field(default=None, repr=False)

    @property
    def is_write(self) -> bool:
        """Whether the request may change the Registry (anything but GET, HEAD, OPTIONS)."""
        return self.method not in _READS

    def sent(self) -> SentRequest:
        """What an `OutcomeUnknownError` keeps of this request."""
        return SentRequest(self.method, self.path, self.body or b"", self.model)


class TransportFailure(NamedTuple):
    """How one httpx transport exception reads: our class, and what it says about the request."""

    error: type[TransportError]
    maybe_applied: bool
    """True when the request may have reached the Registry (it was sent, or partly)."""
    retryable: bool
    """False when sending again cannot help (a malformed request, an unsupported URL scheme)."""
    message: str


TRANSPORT_FAILURES: Final[Mapping[type[httpx.TransportError], TransportFailure]] = {
    # certainly not processed: no connection carried the request
    httpx.ConnectError: TransportFailure(TransportError, False, True, "could not connect"),
    httpx.ConnectTimeout: TransportFailure(
        RequestTimeoutError, False, True, "timed out while connecting"
    ),
    httpx.PoolTimeout: TransportFailure(
        RequestTimeoutError, False, True, "timed out waiting for a pooled connection"
    ),
    httpx.ProxyError: TransportFailure(TransportError, False, True, "the proxy refused"),
    httpx.UnsupportedProtocol: TransportFailure(
        TransportError, False, False, "the base URL's scheme is not supported"
    ),
    httpx.LocalProtocolError: TransportFailure(
        TransportError, False, False, "the request could not be written as HTTP"
    ),
    # maybe applied: the request was sent, or partly, and the answer was lost
    httpx.ReadTimeout: TransportFailure(
        RequestTimeoutError, True, True, "timed out waiting for the answer"
    ),
    httpx.WriteTimeout: TransportFailure(
        RequestTimeoutError, True, True, "timed out while sending"
    ),
    httpx.ReadError: TransportFailure(TransportError, True, True, "the answer could not be read"),
    httpx.WriteError: TransportFailure(TransportError, True, True, "the request could not be sent"),
    httpx.CloseError: TransportFailure(
        TransportError, True, True, "the connection failed to close"
    ),
    httpx.RemoteProtocolError: TransportFailure(
        TransportError, True, True, "the connection dropped or the answer was not HTTP"
    ),
    # bases, should httpx ever raise one directly: assume the worst
    httpx.TransportError: TransportFailure(TransportError, True, True, "transport failure"),
    httpx.TimeoutException: TransportFailure(RequestTimeoutError, True, True, "timed out"),
    httpx.NetworkError: TransportFailure(TransportError, True, True, "network failure"),
    httpx.ProtocolError: TransportFailure(TransportError, True, True, "HTTP protocol failure"),
}
"""Every `httpx.TransportError` class, named explicitly (a test walks the subclasses)."""


def _transport_failure(exc: httpx.TransportError) -> TransportFailure:
    for cls in type(exc).__mro__:
        failure = TRANSPORT_FAILURES.get(cls)
        if failure is not None:
            return failure
    return TRANSPORT_FAILURES[
        httpx.TransportError
    ]  # pragma: no cover - TransportError is in the MRO


def error_for_httpx(exc: httpx.HTTPError | httpx.InvalidURL, call: Call) -> RegistryError:
    """Our error for an httpx exception raised while sending `call` (the caller chains `exc`).

    The message names the httpx class only: an httpx message may quote a header value.
    """
    cause = type(exc).__name__
    if isinstance(exc, httpx.TransportError):
        failure = _transport_failure(exc)
        return failure.error(
            f"{failure.message} ({cause})",
            retryable=failure.retryable,
            maybe_applied=failure.maybe_applied,
            method=call.method,
            path=call.path,
        )
    if isinstance(exc, httpx.InvalidURL):
        return InvalidRequestError(
            f"the URL could not be built ({cause})", method=call.method, path=call.path
        )
    # DecodingError, TooManyRedirects, ...: the Registry answered, and we cannot use the answer
    return ContractError(
        f"the answer could not be decoded ({cause})",
        maybe_applied=call.is_write,
        method=call.method,
        path=call.path,
    )


def _error_body(body: Any) -> ErrorBody | None:
    if not isinstance(body, dict):
        return None
    try:
        return ErrorBody.model_validate(body)
    except ValidationError:
        return None


def error_for_status(response: httpx.Response, body: Any, call: Call, *, now_s: float) -> APIError:
    """Our error for a non-2xx answer; `body` is its decoded JSON (None when there was none).

    `now_s` (seconds since the epoch) dates a `Retry-After` given as an HTTP date.
    """
    status = response.status_code
    error = _error_body(body)
    message = (error.message if error is not None else None) or response.reason_phrase
    kwargs: dict[str, Any] = {
        "status": status,
        "error": error,
        "method": call.method,
        "path": call.path,
    }
    message = message or f"HTTP {status}"
    if status in (429, 503):
        retry_after_s = parse_retry_after(response.headers.get("Retry-After"), now_s=now_s)
        cls = RateLimitedError if status == 429 else ServiceUnavailableError
        return cls(message, retry_after_s=retry_after_s, **kwargs)
    simple: dict[int, type[APIError]] = {
        401: UnauthenticatedError,
        403: PermissionDeniedError,
        404: NotFoundError,
        409: AlreadyExistsError,
    }
    if status in simple:
        return simple[status](message, **kwargs)
    if status == 501:
        return ServerError(message, retryable=False, maybe_applied=False, **kwargs)
    if 500 <= status <= 599:
        return ServerError(message, **kwargs)
    return InvalidRequestError(message, **kwargs)


def _decode(response: httpx.Response) -> Any:
    """The answer's JSON, or None for an empty body; ValueError when it is not JSON."""
    if not response.content.strip():
        return None
    return json.loads(response.content)


def read_answer(
    response: httpx.Response,
    call: Call,
    reader: Callable[[Any], _T],
    *,
    refusal_reader: Callable[[Any], _T | None] | None = None,
    now_s: float,
) -> _T:
    """The value of an answer, or our error for it.

    Args:
        response: the answer, fully read.
        call: the request it answers.
        reader: turns the decoded 2xx JSON (None when empty) into a value; a ValueError or
            TypeError it raises becomes a `ContractError`.
        refusal_reader: tried on a non-2xx answer's JSON; a value it returns (receipts of a refused
            bundle or bulk) is the result, whatever the status. None, or an exception, means the
            answer is an error.
        now_s: seconds since the epoch, to read a `Retry-After` date.

    Raises:
        APIError: a non-2xx answer without readable receipts.
        ContractError: a 2xx answer that is not JSON or that `reader` refuses, or a status
            outside 2xx, 4xx and 5xx.
    """
    status = response.status_code
    if 200 <= status <= 299:
        try:
            return reader(_decode(response))
        except (ValueError, TypeError) as exc:
            raise ContractError(
                f"the {status} answer does not fit the expected shape ({type(exc).__name__})",
                status=status,
                maybe_applied=call.is_write,
                method=call.method,
                path=call.path,
            ) from exc
    if not 400 <= status <= 599:
        raise ContractError(
            f"unexpected HTTP status {status}", status=status, method=call.method, path=call.path
        )
    try:
        body = _decode(response)
    except ValueError:
        body = None
    if refusal_reader is not None and body is not None:
        try:
            value = refusal_reader(body)
        except (ValueError, TypeError):
            value = None
        if value is not None:
            return value
    raise error_for_status(response, body, call, now_s=now_s)


# -- readers of answers, passed to `read_answer` --------------------------------------------------


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


class HttpSession:
    """Owns the pooled `httpx.Client`: created on first use in each process, closed once."""

    def __init__(self, config: ClientConfig, transport: httpx.BaseTransport | None) -> None:
        self._config = config
        self._transport = transport
        self._client: httpx.Client | None = None
        self._pid: int | None = None
        self._closed = False
        self._lock = threading.Lock()

    def _build(self) -> httpx.Client:
        config = self._config
        return httpx.Client(
            base_url=config.base_url,
            timeout=httpx.Timeout(
                connect=config.connect_timeout_s,
                read=config.read_timeout_s,
                write=config.write_timeout_s,
                pool=config.pool_timeout_s,
            ),
            limits=httpx.Limits(
                max_connections=config.max_connections,
                max_keepalive_connections=config.max_keepalive_connections,
                keepalive_expiry=config.keepalive_expiry_s,
            ),
            transport=self._transport,
            follow_redirects=False,
            trust_env=False,
        )

    def _current(self) -> httpx.Client:
        pid = os.getpid()
        with self._lock:
            if self._closed:
                raise RuntimeError("this RegistryClient is closed")
            if self._client is None or self._pid != pid:
                # A client inherited through fork shares sockets with the parent: leave it alone.
                self._client = self._build()
                self._pid = pid
            return self._client

    @property
    def started(self) -> bool:
        """Whether this process has created its `httpx.Client` yet."""
        return self._client is not None and self._pid == os.getpid()

    def send(self, call: Call) -> httpx.Response:
        """Sends `call` once and returns the answer, read in full.

        Raises:
            TransportError: no answer (`RequestTimeoutError` for a timeout).
            ContractError: an answer that could not be decoded.
        """
        client = self._current()
        headers = {
            API_KEY_HEADER: self._config.api_key.get_secret_value(),
            "User-Agent": self._config.user_agent,
            "Accept": "application/json",
        }
        if call.body is not None:
            headers["Content-Type"] = "application/json"
        try:
            request = client.build_request(
                call.method, call.path, params=call.params, content=call.body, headers=headers
            )
            return client.send(request)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise error_for_httpx(exc, call) from exc

    def close(self) -> None:
        """Closes this process's pooled connections; the session cannot be used afterwards."""
        with self._lock:
            self._closed = True
            client, self._client = self._client, None
            owned = self._pid == os.getpid()
        if client is not None and owned:
            client.close()

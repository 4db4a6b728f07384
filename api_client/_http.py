"""The one boundary where httpx, HTTP statuses and unreadable answers become our errors.

Everything foreign is translated here, with `raise ... from exc`: httpx exceptions (through
`TRANSPORT_FAILURES`, which names every `httpx.TransportError` subclass), non-2xx statuses (through
`error_for_status`), and answers the models cannot read (`ContractError`). Nothing above this module
looks at a status code or catches an httpx or pydantic exception. The pooled client that sends is
`_session.HttpSession`; the readers of answers passed to `read_answer` are in `_readers`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

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
from api_client.models import ErrorBody
from api_client.retry import parse_retry_after

__all__ = [
    "TRANSPORT_FAILURES",
    "Call",
    "TransportFailure",
    "error_for_httpx",
    "error_for_status",
    "read_answer",
]

_T = TypeVar("_T")

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

"""The exceptions of the Registry client: one base, a small tree, and what each failure means.

An exception means the whole request failed. Per-operation failures are values (receipts), never
exceptions. Foreign exceptions (httpx, pydantic) become these at one boundary, `api_client._http`,
with `raise ... from exc`; call sites catch these classes and never look at a status code.

```
RegistryError                  .status .error_type .message .details .retryable .maybe_applied
├─ TransportError              no answer; for a write, certainly not processed (connect refused,
│  │                           connect or pool timeout). Raised for a read whatever the cause.
│  └─ RequestTimeoutError      the same, because a timeout expired
├─ OutcomeUnknownError         a write that may have been applied (timeout or drop after sending,
│                              500, 502, 504); .sent holds what was sent. Resolve, never resend.
├─ APIError                    the Registry answered non-2xx (or we refused before sending)
│  ├─ AuthError                401 / 403: configuration, never data (pause, alert)
│  │  ├─ UnauthenticatedError  401
│  │  └─ PermissionDeniedError 403
│  ├─ InvalidRequestError      400 and any other 4xx: the data is wrong; isolate it
│  │  └─ InvalidPathSegmentError  (also a ValueError) an id unfit for a URL path: never sent
│  ├─ NotFoundError            404
│  ├─ AlreadyExistsError       409
│  ├─ RateLimitedError         429: certainly not processed; .retry_after_s (None when not sent)
│  │  └─ ServiceUnavailableError  503: a throttle and a ServerError at once
│  └─ ServerError              5xx; 500 / 502 / 504 may have been applied, 501 never retried
└─ ContractError               a 2xx answer our models cannot read: a bug to report, never a guess

TaskStillPendingError          NOT a RegistryError: a wait reached its deadline while the task was
                               still PENDING. Nothing failed (a task may wait in manual review for
                               days); the caller keeps the task and polls again later.
```

`str()` and `repr()` carry the method, the path (ids only), the status, the Registry's error type
and message; never a header, the API key, or a request body (an `OutcomeUnknownError` keeps the body
in `.sent`, which prints as its size only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from pydantic import BaseModel

    from api_client.models import ErrorBody, ErrorType
    from api_client.tasks import TaskRef

__all__ = [
    "APIError",
    "AlreadyExistsError",
    "AuthError",
    "ContractError",
    "InvalidPathSegmentError",
    "InvalidRequestError",
    "NotFoundError",
    "OutcomeUnknownError",
    "PermissionDeniedError",
    "RateLimitedError",
    "RegistryError",
    "RequestTimeoutError",
    "SentRequest",
    "ServerError",
    "ServiceUnavailableError",
    "TaskStillPendingError",
    "TransportError",
    "UnauthenticatedError",
]


@dataclass(frozen=True)
class SentRequest:
    """What a write sent, kept so that a caller can resolve an unknown outcome by reading back.

    Its repr shows the method, the path and the body size: never the body (it may hold health data).
    """

    method: str
    path: str
    body: bytes = field(default=b"", repr=False)
    model: BaseModel | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        size = len(self.body)
        return f"SentRequest(method={self.method!r}, path={self.path!r}, body={size} bytes)"


def _restore(cls: type[RegistryError], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    """Rebuilds a pickled error without running `__init__` (its keywords are not in `args`)."""
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class RegistryError(Exception):
    """The base of every failure of a Registry request, so one `except` catches them all."""

    default_retryable: ClassVar[bool] = False
    default_maybe_applied: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error: ErrorBody | None = None,
        method: str | None = None,
        path: str | None = None,
        retryable: bool | None = None,
        maybe_applied: bool | None = None,
    ) -> None:
        self.message = message
        self.status = status
        self.error = error
        self.method = method
        self.path = path
        self.retryable = self.default_retryable if retryable is None else retryable
        self.maybe_applied = self.default_maybe_applied if maybe_applied is None else maybe_applied
        super().__init__(self._summary())

    @property
    def error_type(self) -> ErrorType | str | None:
        """The Registry's error type (ALREADY_EXISTS, ...), or None when it sent no error body."""
        return None if self.error is None else self.error.type

    @property
    def details(self) -> list[ErrorBody]:
        """The nested errors the Registry gave (schema violations, ...); empty when none."""
        return [] if self.error is None else list(self.error.details)

    def _summary(self) -> str:
        parts: list[str] = []
        if self.method is not None and self.path is not None:
            parts.append(f"{self.method} {self.path}")
        if self.status is not None:
            parts.append(f"-> {self.status}")
        if self.error_type is not None:
            parts.append(str(self.error_type))
        return f"{' '.join(parts)}: {self.message}" if parts else self.message

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore, (type(self), self.args, dict(self.__dict__)))


class TransportError(RegistryError):
    """No answer arrived; a write failing this way was certainly not processed, so may be resent."""

    default_retryable = True


class RequestTimeoutError(TransportError):
    """A timeout expired before an answer; kept apart so timeouts can be counted and tuned."""


class OutcomeUnknownError(RegistryError):
    """A write may have been applied; resolve it by reading back, never by sending it again."""

    default_maybe_applied = True

    def __init__(self, message: str, *, sent: SentRequest, **kwargs: Any) -> None:
        self.sent = sent
        kwargs.setdefault("method", sent.method)
        kwargs.setdefault("path", sent.path)
        super().__init__(message, **kwargs)

    @classmethod
    def after(cls, failure: RegistryError, sent: SentRequest) -> OutcomeUnknownError:
        """The unknown outcome of the write `sent`, caused by `failure` (kept as `__cause__`)."""
        return cls(
            f"the write may have been applied ({type(failure).__name__}: {failure.message})",
            sent=sent,
            status=failure.status,
            error=failure.error,
        )


class APIError(RegistryError):
    """The Registry answered with a non-2xx status (and usually an error body)."""


class AuthError(APIError):
    """The credentials are missing, wrong or too weak: fix configuration, never dead-letter data."""


class UnauthenticatedError(AuthError):
    """401: the API key is missing or invalid."""


class PermissionDeniedError(AuthError):
    """403: the API key may not do this."""


class InvalidRequestError(APIError):
    """400 or another 4xx: the request itself is wrong; sending it again gives the same answer."""


class InvalidPathSegmentError(InvalidRequestError, ValueError):
    """An id that cannot stand in a URL path; raised before any request is made.

    It is also a `ValueError`, since it is bad input detected locally (`status` is None).
    """

    def __init__(self, name: str, value: str, reason: str) -> None:
        self.field = name
        self.value = value
        shown = value if len(value) <= 80 else value[:77] + "..."
        super().__init__(f"{name} {shown!r} refused: {reason}")


class NotFoundError(APIError):
    """404: the source, entity or task does not exist (or no longer does)."""


class AlreadyExistsError(APIError):
    """409: a CREATE named an id that already exists."""


class RateLimitedError(APIError):
    """429: certainly not processed; wait `retry_after_s` (the server's hint, if any) and resend."""

    default_retryable = True

    def __init__(self, message: str, *, retry_after_s: float | None = None, **kwargs: Any) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message, **kwargs)

    def _summary(self) -> str:
        summary = super()._summary()
        if self.retry_after_s is None:
            return summary
        return f"{summary} (retry after {self.retry_after_s:g} s)"


class ServerError(APIError):
    """5xx: the Registry failed; 500, 502 and 504 may have applied a write (`maybe_applied`)."""

    default_retryable = True
    default_maybe_applied = True


class ServiceUnavailableError(RateLimitedError, ServerError):
    """503: certainly not processed; a throttle (`retry_after_s`) as much as a server error."""

    default_retryable = True
    default_maybe_applied = False


class ContractError(RegistryError):
    """A 2xx answer our models cannot read: a bug to report, never a guess.

    On a write the Registry answered 2xx, so the write was probably applied (`maybe_applied`).
    """


class TaskStillPendingError(Exception):
    """A wait for a task reached its deadline while the task was not finished.

    Deliberately not a `RegistryError`: nothing failed, and a task may stay PENDING for days in
    manual review. The caller keeps `.ref` (source key and task id) and polls again later.
    """

    def __init__(self, ref: TaskRef, *, last_status: str, elapsed_s: float, polls: int) -> None:
        self.ref = ref
        self.last_status = last_status
        self.elapsed_s = elapsed_s
        self.polls = polls
        super().__init__(
            f"task {ref.task_id} of source {ref.source_key} still {last_status} "
            f"after {elapsed_s:g} s and {polls} polls"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore_pending, (self.args, dict(self.__dict__)))


def _restore_pending(args: tuple[Any, ...], state: dict[str, Any]) -> TaskStillPendingError:
    error = TaskStillPendingError.__new__(TaskStillPendingError)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error

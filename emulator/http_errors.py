"""The errors the HTTP layer makes up itself, in the Registry's shape: injected faults, unknown
routes and methods, and bugs in the emulator.

The registry's own refusals are built in `failures`; these are the answers no `Registry` method
gives, so their gRPC-style type is chosen here from the status.
"""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from emulator import failures
from emulator.faults import StatusEffect

__all__ = ["error_body", "error_type_of", "fault_response", "http_error", "internal_error"]

_ERROR_TYPES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "UNIMPLEMENTED",
    409: "ALREADY_EXISTS",
    413: "CONTENT_TOO_LARGE",
    429: "RESOURCE_EXHAUSTED",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def error_type_of(status: int) -> str:
    """The gRPC-style error type the emulator pairs with an HTTP status it makes up itself."""
    fallback = "INVALID_ARGUMENT" if status < 500 else "INTERNAL"
    return _ERROR_TYPES.get(status, "UNAVAILABLE" if status == 502 else fallback)


def error_body(status: int, type_: str, message: str) -> dict[str, Any]:
    """An error in the Registry's shape, with an empty `details`."""
    return failures.error(status, type_, message, [])


def fault_response(effect: StatusEffect) -> Response:
    """The answer of an injected status fault (a 429 always says when to come back)."""
    headers: dict[str, str] = {}
    retry_after = effect.retry_after or ("1" if effect.status == 429 else None)
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    if effect.text_body is not None:
        return Response(effect.text_body, status_code=effect.status, headers=headers)
    message = effect.message or f"injected fault: HTTP {effect.status}"
    error_type = effect.error_type or error_type_of(effect.status)
    body = error_body(effect.status, error_type, message)
    return JSONResponse(body, status_code=effect.status, headers=headers)


async def http_error(request: Request, exc: Exception) -> Response:
    """A 404 or 405 from routing (or any other `HTTPException`) in the Registry's shape."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"no route for {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"method {request.method} is not allowed on {request.url.path}"
    else:
        message = exc.detail
    body = error_body(exc.status_code, error_type_of(exc.status_code), message)
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def internal_error(request: Request, exc: Exception) -> Response:
    """A bug in the emulator answers 500 INTERNAL in the Registry's shape (and is re-raised)."""
    message = f"emulator error: {type(exc).__name__}"
    return JSONResponse(error_body(500, "INTERNAL", message), status_code=500)

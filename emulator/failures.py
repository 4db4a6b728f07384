"""The Registry's error objects, `{code, message, type, details?}`, and a request-level refusal.

Errors inside receipts omit `details` when there are none, as the seed's ALREADY_EXISTS example
does; a whole request refused (`RequestRefusedError`) always carries `details`, maybe empty.
"""

from __future__ import annotations

from typing import Any, Final

ALREADY_EXISTS: Final = "ALREADY_EXISTS"
CONTENT_TOO_LARGE: Final = "CONTENT_TOO_LARGE"
FAILED_PRECONDITION: Final = "FAILED_PRECONDITION"
INVALID_ARGUMENT: Final = "INVALID_ARGUMENT"
NOT_FOUND: Final = "NOT_FOUND"
UNIMPLEMENTED: Final = "UNIMPLEMENTED"

JSON = dict[str, Any]


def error(code: int, type_: str, message: str, details: list[JSON] | None = None) -> JSON:
    """One error object; `details` appears only when given."""
    body: JSON = {"code": code, "message": message, "type": type_}
    if details is not None:
        body["details"] = details
    return body


def invalid_argument(message: str, details: list[JSON] | None = None) -> JSON:
    """A 400 for input that is wrong whatever the state."""
    return error(400, INVALID_ARGUMENT, message, details)


def failed_precondition(message: str, details: list[JSON] | None = None) -> JSON:
    """A 400 for input that the current state (profiles, other records) does not allow."""
    return error(400, FAILED_PRECONDITION, message, details)


def not_found(message: str) -> JSON:
    """A 404 for an id, task or definition that does not exist."""
    return error(404, NOT_FOUND, message)


def already_exists(record_id: str) -> JSON:
    """The seed's 409 for a CREATE of an id already taken."""
    return error(409, ALREADY_EXISTS, f"record with id '{record_id}' already exists")


def record_not_found(record_id: str) -> JSON:
    """A 404 for an operation on a record that does not exist."""
    return not_found(f"record with id '{record_id}' not found")


def detail(message: str) -> JSON:
    """One entry of `details`: a 400 INVALID_ARGUMENT naming the field and the reason."""
    return invalid_argument(message)


class RequestRefusedError(Exception):
    """A whole request refused before any operation ran; the HTTP status and the error body."""

    def __init__(self, status: int, body: JSON) -> None:
        super().__init__(f"{status} {body.get('type')}: {body.get('message')}")
        self.status = status
        self.body = body


def refuse(type_: str, message: str, *, status: int = 400) -> RequestRefusedError:
    """A refusal in the documented error shape, with an empty `details`."""
    return RequestRefusedError(status, error(status, type_, message, []))

"""What every emulated endpoint answers: an HTTP status and a JSON value, never an exception."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from emulator.failures import JSON

__all__ = ["Reply", "error_reply"]


@dataclass(frozen=True)
class Reply:
    """What an endpoint answers: an HTTP status and a JSON value."""

    status: int
    body: Any


def error_reply(error: JSON) -> Reply:
    """A request-level error answer: the error object, `details` always present."""
    return Reply(int(error["code"]), {**error, "details": error.get("details", [])})

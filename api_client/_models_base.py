"""The base every Registry model shares: open enums, the model configuration and the serializer.

Enums are "open": a value we know parses to its `StrEnum` member, a value the Registry adds later
stays the raw `str`. The union is tried left to right (enum first, then `str`), because pydantic's
default "smart" union would keep a known value as a plain `str` too.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Final

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_camel


class Action(StrEnum):
    """The write an operation or a receipt stands for."""

    CREATE = "CREATE"
    UPSERT = "UPSERT"
    DELETE = "DELETE"


class TargetType(StrEnum):
    """Whether a receipt is about a resource or a relationship."""

    RESOURCE = "RESOURCE"
    RELATIONSHIP = "RELATIONSHIP"


class SubmissionStatus(StrEnum):
    """What the Registry did with a write on receipt: queued, stored, or (legacy) refused it."""

    ACCEPTED = "ACCEPTED"
    PERSISTED = "PERSISTED"
    REJECTED = "REJECTED"


class TaskStatus(StrEnum):
    """The state of an asynchronous task (bulk, bundle, single write, purge)."""

    SUCCESS = "SUCCESS"
    PENDING = "PENDING"
    CANCELLED = "CANCELLED"
    FAILURE = "FAILURE"


class ReceiptStatus(StrEnum):
    """The fate of one operation; CANCELLED means a neighbour failed, not this operation."""

    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    PENDING = "PENDING"
    CANCELLED = "CANCELLED"


class ErrorType(StrEnum):
    """The Registry's error types (gRPC status names), which decide how a failure is handled."""

    ALREADY_EXISTS = "ALREADY_EXISTS"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    INTERNAL = "INTERNAL"
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    NOT_FOUND = "NOT_FOUND"
    OUT_OF_RANGE = "OUT_OF_RANGE"
    UNIMPLEMENTED = "UNIMPLEMENTED"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    CONTENT_TOO_LARGE = "CONTENT_TOO_LARGE"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    UNAVAILABLE = "UNAVAILABLE"


class ProfileType(StrEnum):
    """Whether a profile describes addressable resources or data contained in a parent."""

    ROOT = "ROOT"
    CONTAINED = "CONTAINED"


OpenAction = Annotated[Action | str, Field(union_mode="left_to_right")]
"""An action; a value this client does not know stays a `str`."""
OpenTargetType = Annotated[TargetType | str, Field(union_mode="left_to_right")]
"""A receipt target type; a value this client does not know stays a `str`."""
OpenSubmissionStatus = Annotated[SubmissionStatus | str, Field(union_mode="left_to_right")]
"""A submission status; a value this client does not know stays a `str`."""
OpenTaskStatus = Annotated[TaskStatus | str, Field(union_mode="left_to_right")]
"""A task status; a value this client does not know stays a `str` (and is not terminal)."""
OpenReceiptStatus = Annotated[ReceiptStatus | str, Field(union_mode="left_to_right")]
"""A receipt status; a value this client does not know stays a `str`."""
OpenErrorType = Annotated[ErrorType | str, Field(union_mode="left_to_right")]
"""An error type; a value this client does not know stays a `str`."""
OpenProfileType = Annotated[ProfileType | str, Field(union_mode="left_to_right")]
"""A profile type; a value this client does not know stays a `str`."""


def _none_as_empty_list(value: Any) -> Any:
    return [] if value is None else value


NoneAsEmpty = BeforeValidator(_none_as_empty_list)
"""Reads an explicit `null` list in an answer as an empty list, so callers never test for None."""

_TERMINAL_TASK_STATUSES: Final = (TaskStatus.SUCCESS, TaskStatus.FAILURE, TaskStatus.CANCELLED)


def is_terminal(status: TaskStatus | str) -> bool:
    """Whether polling may stop: SUCCESS, FAILURE and CANCELLED end a task; anything else may not.

    An unknown status is never terminal, so a status added by the Registry keeps us polling (up to
    the poll deadline) instead of reading a half-done task as finished.
    """
    return status in _TERMINAL_TASK_STATUSES


class RegistryModel(BaseModel):
    """The base of every Registry shape: camelCase on the wire, unknown fields kept, immutable.

    Validation errors never echo their input: a payload carries health data.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="allow",
        frozen=True,
        hide_input_in_errors=True,
    )


def dump_json(model: BaseModel) -> bytes:
    """The exact bytes the client sends for `model`: compact JSON, camelCase keys, no nulls.

    The bundle planner measures request sizes with this same function, so what it counts is what
    goes on the wire. Non-ASCII text is written as UTF-8, not as `\\u` escapes.
    """
    return model.__pydantic_serializer__.to_json(model, by_alias=True, exclude_none=True)

"""Task references: which kind of task an id names, and the route that polls it.

The Registry scopes tasks by source, so a reference always holds the source key with the task id.
Ids carry their kind in a prefix (docs/emulator.md section 3):

| task id        | kind    | poll route                                         |
|----------------|---------|----------------------------------------------------|
| `s_<id>`       | SINGLE  | `GET /sources/{sk}/v1/tasks/{id}`                  |
| `bk_<id>`      | BULK    | `GET /sources/{sk}/v1/tasks/{id}`                  |
| `bd_<id>`      | BUNDLE  | `GET /sources/{sk}/v1/tasks/{id}` (the only route) |
| `pg_<id>`      | PURGE   | `GET /sources/{sk}/v1/purge/{id}`                  |
| `purge:<id>`   | PURGE   | `GET /sources/{sk}/v1/purge/<id>` (prefix dropped) |
| bare `<id>`    | issuer's | bulk → the bulk GET of its target; bundle, single write → /tasks; |
|                |          | purge → the purge GET; issuer unknown → /tasks (a guess)         |

Dropping `purge:` on the purge route is our reading of the documentation's `GET …/purge/{id}`.
A bare id is deprecated and ambiguous, hence `TaskRef.from_submission(..., issued_by=...)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from api_client import ids
from api_client.errors import InvalidPathSegmentError

__all__ = ["IssuedBy", "PollRoute", "TaskKind", "TaskRef"]


class TaskKind(StrEnum):
    """What a task runs; it decides how the task is polled and whether it has receipts."""

    SINGLE = "single"
    BULK = "bulk"
    BUNDLE = "bundle"
    PURGE = "purge"


class IssuedBy(StrEnum):
    """The endpoint that handed out a task id: the only way to route a deprecated bare id."""

    BUNDLE = "bundle"
    RESOURCES_BULK = "resources-bulk"
    RELATIONSHIPS_BULK = "relationships-bulk"
    SINGLE_WRITE = "single-write"
    PURGE = "purge"


class PollRoute(StrEnum):
    """The GET that reports a task's status."""

    TASKS = "tasks"
    """`/sources/{sk}/v1/tasks/{id}?withReceipts=`"""
    RESOURCES_BULK = "resources-bulk"
    """`/sources/{sk}/v1/resources/bulk/{id}?withReceipts=`"""
    RELATIONSHIPS_BULK = "relationships-bulk"
    """`/sources/{sk}/v1/relationships/bulk/{id}?withReceipts=`"""
    PURGE = "purge"
    """`/sources/{sk}/v1/purge/{id}` (no receipts)"""


_PREFIXES: Final = {"s_": TaskKind.SINGLE, "bk_": TaskKind.BULK, "bd_": TaskKind.BUNDLE}
_PURGE_PREFIX: Final = "pg_"
_LEGACY_PURGE_PREFIX: Final = "purge:"

_KIND_OF_ISSUER: Final = {
    IssuedBy.BUNDLE: TaskKind.BUNDLE,
    IssuedBy.RESOURCES_BULK: TaskKind.BULK,
    IssuedBy.RELATIONSHIPS_BULK: TaskKind.BULK,
    IssuedBy.SINGLE_WRITE: TaskKind.SINGLE,
    IssuedBy.PURGE: TaskKind.PURGE,
}

_BARE_ROUTE: Final = {
    IssuedBy.BUNDLE: PollRoute.TASKS,
    IssuedBy.RESOURCES_BULK: PollRoute.RESOURCES_BULK,
    IssuedBy.RELATIONSHIPS_BULK: PollRoute.RELATIONSHIPS_BULK,
    IssuedBy.SINGLE_WRITE: PollRoute.TASKS,
    IssuedBy.PURGE: PollRoute.PURGE,
}

_STRING_SEPARATOR: Final = "/"
_ISSUER_SEPARATOR: Final = "@"


def _split_prefix(task_id: str) -> tuple[TaskKind | None, str]:
    """The kind a prefix names and the id after it; (None, task_id) for a bare id."""
    for prefix, kind in _PREFIXES.items():
        if task_id.startswith(prefix):
            return kind, task_id.removeprefix(prefix)
    for prefix in (_PURGE_PREFIX, _LEGACY_PURGE_PREFIX):
        if task_id.startswith(prefix):
            return TaskKind.PURGE, task_id.removeprefix(prefix)
    return None, task_id


def _prefix_kind(task_id: str) -> TaskKind | None:
    return _split_prefix(task_id)[0]


@dataclass(frozen=True, slots=True)
class TaskRef:
    """A task the Registry accepted: `(source_key, task_id)` and, when known, who issued it.

    Construction checks both ids against the shared patterns (an `InvalidPathSegmentError`, a
    `ValueError`, names the field), and refuses an issuer that contradicts the id's prefix.
    """

    source_key: str
    task_id: str
    issued_by: IssuedBy | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.source_key, str) or not ids.is_source_key(self.source_key):
            raise InvalidPathSegmentError(
                "source_key", str(self.source_key), "not a source key (^[a-zA-Z0-9-][\\w-]{0,61}$)"
            )
        if not isinstance(self.task_id, str) or not ids.is_task_id(self.task_id):
            raise InvalidPathSegmentError(
                "task_id", str(self.task_id), "not a task id (^(purge:)?[\\w-]{1,128}$)"
            )
        object.__setattr__(self, "issued_by", _issuer(self.issued_by))
        prefixed, rest = _split_prefix(self.task_id)
        if prefixed is not None and not rest:
            raise InvalidPathSegmentError("task_id", self.task_id, "a prefix without an id")
        if prefixed is not None and self.issued_by is not None:
            issuer_kind = _KIND_OF_ISSUER[self.issued_by]
            if issuer_kind is not prefixed:
                raise ValueError(
                    f"task_id {self.task_id!r} names a {prefixed} task, "
                    f"yet issued_by is {self.issued_by}"
                )

    @classmethod
    def from_submission(cls, source_key: str, task_id: str, *, issued_by: IssuedBy) -> TaskRef:
        """The reference to store right after a submission answered ACCEPTED with `task_id`."""
        return cls(source_key, task_id, issued_by)

    @property
    def kind(self) -> TaskKind | None:
        """The kind, from the prefix or else the issuer; None for a bare id of unknown issuer."""
        prefixed = _prefix_kind(self.task_id)
        if prefixed is not None:
            return prefixed
        return None if self.issued_by is None else _KIND_OF_ISSUER[self.issued_by]

    @property
    def is_legacy(self) -> bool:
        """Whether the id has a deprecated form (bare, or `purge:`)."""
        return _prefix_kind(self.task_id) is None or self.task_id.startswith(_LEGACY_PURGE_PREFIX)

    @property
    def poll_route(self) -> PollRoute:
        """The GET that reports this task's status (see the module table)."""
        if self.kind is TaskKind.PURGE:
            return PollRoute.PURGE
        if _prefix_kind(self.task_id) is not None or self.issued_by is None:
            return PollRoute.TASKS
        return _BARE_ROUTE[self.issued_by]

    @property
    def route_id(self) -> str:
        """The id that goes in the poll route's path (`purge:` dropped on the purge route)."""
        if self.task_id.startswith(_LEGACY_PURGE_PREFIX):
            return self.task_id.removeprefix(_LEGACY_PURGE_PREFIX)
        return self.task_id

    @property
    def has_receipts(self) -> bool:
        """Whether the poll route can answer per-operation receipts (a purge cannot)."""
        return self.poll_route is not PollRoute.PURGE

    def to_string(self) -> str:
        """A compact text form, `source/task_id[@issuer]`, that `from_string` reads back."""
        text = f"{self.source_key}{_STRING_SEPARATOR}{self.task_id}"
        if self.issued_by is None:
            return text
        return f"{text}{_ISSUER_SEPARATOR}{self.issued_by.value}"

    @classmethod
    def from_string(cls, text: str) -> TaskRef:
        """Reads the form written by `to_string`."""
        source_key, separator, rest = text.partition(_STRING_SEPARATOR)
        if not separator:
            raise ValueError(f"task reference {text[:80]!r} has no '/' between source and task id")
        task_id, at, issuer = rest.partition(_ISSUER_SEPARATOR)
        if at and not issuer:
            raise ValueError(f"task reference {text[:80]!r} has an empty issuer after '@'")
        return cls(source_key, task_id, _issuer(issuer) if at else None)

    def to_dict(self) -> dict[str, str]:
        """A JSON-ready mapping (camelCase, like the Registry), read back by `from_dict`."""
        data = {"sourceKey": self.source_key, "taskId": self.task_id}
        if self.issued_by is not None:
            data["issuedBy"] = self.issued_by.value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskRef:
        """Reads the mapping written by `to_dict`."""
        missing = [key for key in ("sourceKey", "taskId") if not isinstance(data.get(key), str)]
        if missing:
            raise ValueError(f"task reference mapping lacks a string {' and '.join(missing)}")
        return cls(data["sourceKey"], data["taskId"], _issuer(data.get("issuedBy")))

    def __str__(self) -> str:
        return self.to_string()


def _issuer(value: object) -> IssuedBy | None:
    """`value` as an `IssuedBy`; a plain string is accepted, as read back from storage."""
    if value is None or isinstance(value, IssuedBy):
        return value
    if isinstance(value, str) and value in IssuedBy.__members__.values():
        return IssuedBy(value)
    known = ", ".join(member.value for member in IssuedBy)
    raise ValueError(f"issued_by {value!r} is not one of: {known}")

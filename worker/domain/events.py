"""Change events: the one public input of the worker, validated once, at publish.

A `ChangeEvent` is what a producer publishes (camelCase on the wire). It is
checked strictly here, so that every later step can trust it: ids and keys against the shared
patterns of `api_client.ids`, the rules that tie fields together (a relationship has `from` and
`to` and no `contained`, a DELETE carries no data...), and caps on the size and nesting depth of
`data`, `contained` and `meta`. `parse_event` turns a raw dict into an event or an `EventError`
listing each bad field and the reason; it never raises for bad input, and no reason ever echoes a
value (payloads carry health data).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Final, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from api_client.ids import (
    RESOURCE_ID_PATTERN,
    SOURCE_KEY_PATTERN,
    is_resource_id,
    is_source_key,
    is_type_key,
    is_virtual_id,
)
from api_client.models import Action
from worker.domain.payloads import DEFAULT_LIMITS, EventLimits, Problem, payload_problems

LABEL_PATTERN: Final = re.compile(r"[A-Za-z0-9][\w.:@-]{0,199}", re.ASCII)
"""Event ids, refs, group names and atomic-batch ids: safe in a Redis key, ASCII, no braces."""

_RULE_ERROR: Final = "event_rule"


__all__ = [
    "DEFAULT_LIMITS",
    "LABEL_PATTERN",
    "ChangeEvent",
    "Endpoint",
    "EventError",
    "EventLimits",
    "Problem",
    "Target",
    "join_stored",
    "parse_event",
    "parse_events",
]


class Target(StrEnum):
    """What an event writes: a resource, or a relationship between two resources."""

    RESOURCE = "resource"
    RELATIONSHIP = "relationship"


@dataclass(frozen=True)
class EventError:
    """A refused event, per event, so that one bad event never sinks its batch."""

    problems: tuple[Problem, ...]
    event_id: str | None = None
    index: int | None = None

    def __str__(self) -> str:
        where = [] if self.index is None else [f"event[{self.index}]"]
        if self.event_id is not None:
            where.append(f"eventId={self.event_id}")
        prefix = f"{' '.join(where)}: " if where else ""
        return prefix + "; ".join(str(p) for p in self.problems)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form, for publish answers and stored outcomes."""
        return {
            "eventId": self.event_id,
            "index": self.index,
            "problems": [{"field": p.field, "reason": p.reason} for p in self.problems],
        }


def _rule_error(problems: Iterable[Problem]) -> PydanticCustomError:
    found = [(p.field, p.reason) for p in problems]
    summary = "; ".join(f"{f}: {r}" for f, r in found)
    return PydanticCustomError(_RULE_ERROR, "{summary}", {"summary": summary, "problems": found})


def _check_label(value: str, what: str) -> str:
    if LABEL_PATTERN.fullmatch(value) is None:
        raise ValueError(
            f"{what} must be 1-200 ASCII letters, digits or _ . : @ -, starting with a letter "
            "or digit"
        )
    return value


def _check_resource_id(value: str) -> str:
    if is_virtual_id(value):
        raise ValueError("virtual ids (@rootId) are not accepted; name a new resource with ref")
    if not is_resource_id(value):
        raise ValueError(f"must match {RESOURCE_ID_PATTERN.pattern} (ASCII)")
    return value


def _check_type_key(value: str) -> str:
    if not is_type_key(value):
        raise ValueError(f"must match {SOURCE_KEY_PATTERN.pattern} (ASCII)")
    return value


TypeKey = Annotated[str, AfterValidator(_check_type_key)]
"""A profile or relationship-definition key."""
ResourceId = Annotated[str, AfterValidator(_check_resource_id)]
"""A resource id the worker may send (never a virtual `@rootId`)."""


class _EventModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="forbid",
        frozen=True,
        hide_input_in_errors=True,
    )


class Endpoint(_EventModel):
    """One end of a relationship event: a resource named by its id or by a ref to a new one."""

    type: TypeKey
    id: ResourceId | None = None
    ref: str | None = None

    @field_validator("ref")
    @classmethod
    def _ref_label(cls, value: str | None) -> str | None:
        return None if value is None else _check_label(value, "a ref")

    @model_validator(mode="after")
    def _id_or_ref(self) -> Self:
        if self.id is not None and self.ref is not None:
            raise _rule_error([Problem("ref", "give either id or ref, not both")])
        if self.id is None and self.ref is None:
            raise _rule_error([Problem("id", "is required (or a ref to a new resource)")])
        return self


class ChangeEvent(_EventModel):
    """One change to one entity, as published; frozen, and valid by construction.

    `id` is absent only on a resource CREATE until publish assigns one (`generated_id` then
    records that the worker chose it); `ref` names such a resource for later events, or, on any
    other resource event, names the resource it writes. `atomic_batch` marks the events of one
    publish call that must be applied all together or not at all.
    """

    event_id: str
    source_key: str
    target: Target
    action: Action
    type: TypeKey
    id: ResourceId | None = None
    ref: str | None = None
    from_: Endpoint | None = Field(default=None, alias="from")
    to: Endpoint | None = None
    data: dict[str, Any] | None = Field(default=None, repr=False)
    contained: dict[str, Any] | None = Field(default=None, repr=False)
    meta: dict[str, Any] | None = Field(default=None, repr=False)
    group: str | None = None
    occurred_at: datetime | None = None
    atomic_batch: str | None = None
    generated_id: bool = False
    _content: str | None = PrivateAttr(default=None)
    """`data` and `contained` as stored (JSON), when the event was read from the store with them
    left undecoded (`data` and `contained` are then None): planning sends them as they are."""

    @field_validator("event_id")
    @classmethod
    def _event_id(cls, value: str) -> str:
        return _check_label(value, "an event id")

    @field_validator("ref", "group", "atomic_batch")
    @classmethod
    def _labels(cls, value: str | None, info: ValidationInfo) -> str | None:
        what = {"ref": "a ref", "group": "a group", "atomic_batch": "an atomic batch id"}
        return None if value is None else _check_label(value, what[str(info.field_name)])

    @field_validator("source_key")
    @classmethod
    def _source_key(cls, value: str) -> str:
        if not is_source_key(value):
            raise ValueError(f"must match {SOURCE_KEY_PATTERN.pattern} (ASCII)")
        return value

    @field_validator("occurred_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.utcoffset() is None:
            raise ValueError("needs a time zone (for example a trailing Z)")
        return value

    @model_validator(mode="after")
    def _fields_agree(self) -> Self:
        problems = list(_rule_problems(self))
        if problems:
            raise _rule_error(problems)
        return self

    @property
    def is_resolved(self) -> bool:
        """Whether every id this event names is known (refs resolved, CREATE id assigned)."""
        if self.target is Target.RESOURCE:
            return self.id is not None
        return (
            self.from_ is not None
            and self.from_.id is not None
            and self.to is not None
            and self.to.id is not None
        )

    @property
    def defines_ref(self) -> bool:
        """Whether this event names a new resource with its ref (a CREATE that had no id)."""
        return (
            self.target is Target.RESOURCE
            and self.action is Action.CREATE
            and self.ref is not None
            and (self.id is None or self.generated_id)
        )

    def to_json(self) -> str:
        """Compact JSON in the public camelCase shape, as handed back."""
        return self.model_dump_json(by_alias=True, exclude_none=True, exclude_defaults=True)

    @property
    def stored_content(self) -> str | None:
        """`data` and `contained` as stored, when read without decoding them (else None)."""
        # read from pydantic's private dict directly: `self._content` goes through the model's
        # `__getattr__`, a few microseconds per operation built or checked
        private = self.__pydantic_private__
        return private.get("_content") if private else None

    def stored_parts(self) -> tuple[str, str]:
        """The event as stored: (its JSON without `data` and `contained`, the JSON object of
        those two), so that planning reads the small part and sends the other as it is.

        `join_stored(*event.stored_parts())` is `to_json()` with the keys in another order.
        """
        head = self.model_dump_json(
            by_alias=True, exclude_none=True, exclude_defaults=True, exclude=_CONTENT
        )
        content = {name: value for name in ("data", "contained")
                   if (value := getattr(self, name)) is not None}  # fmt: skip
        return head, json.dumps(content, separators=(",", ":"), ensure_ascii=False)


_CONTENT: Final[set[str]] = {"data", "contained"}


def join_stored(head: str, content: str) -> str:
    """The event JSON from its stored parts (`ChangeEvent.stored_parts`)."""
    if content == "{}":
        return head
    return f"{head[:-1]},{content[1:]}"


def _rule_problems(event: ChangeEvent) -> Iterable[Problem]:
    """The rules that tie an event's fields together; each names the field at fault."""
    action = event.action
    if event.target is Target.RELATIONSHIP:
        for name, end in (("from", event.from_), ("to", event.to)):
            if end is None:
                yield Problem(name, "is required for a relationship")
        if event.contained is not None:
            yield Problem("contained", "is not allowed on a relationship")
        if event.id is not None:
            yield Problem("id", "is not allowed on a relationship (it is named by type, from, to)")
        if event.ref is not None:
            yield Problem("ref", "is not allowed on a relationship (only endpoints take refs)")
    else:
        for name, end in (("from", event.from_), ("to", event.to)):
            if end is not None:
                yield Problem(name, "is only allowed on a relationship")
        if event.generated_id and (event.id is None or action is not Action.CREATE):
            yield Problem("generatedId", "only a CREATE whose id was assigned at publish has it")
        if event.id is not None and event.ref is not None and not event.generated_id:
            yield Problem("ref", "give either id or ref, not both")
        if event.id is None and event.ref is None and action is not Action.CREATE:
            yield Problem("id", f"is required for {action} (or a ref to a new resource)")
        if action is not Action.DELETE and event.data is None:
            yield Problem("data", f"is required for a resource {action}")
    if event.generated_id and event.target is Target.RELATIONSHIP:
        yield Problem("generatedId", "only a CREATE whose id was assigned at publish has it")
    if action is Action.DELETE:
        if event.data is not None:
            yield Problem("data", "a DELETE carries no data")
        if event.contained is not None:
            yield Problem("contained", "a DELETE carries no data")
        if event.meta is not None:
            yield Problem("meta", "a DELETE carries no meta")


def _field_name(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        else:
            parts.append(part if not parts else f".{part}")
    return "".join(parts) or "event"


def _problems_of(exc: ValidationError, prefix: str = "") -> list[Problem]:
    problems: list[Problem] = []
    for error in exc.errors(include_url=False, include_input=False):
        ctx = error.get("ctx") or {}
        base = _field_name(error["loc"])
        if error["type"] == _RULE_ERROR and "problems" in ctx:
            for name, reason in ctx["problems"]:
                where = name if base == "event" else f"{base}.{name}"
                problems.append(Problem(prefix + where, reason))
            continue
        reason = str(error["msg"])
        if error["type"] == "extra_forbidden":
            reason = "unknown field"
        elif error["type"] == "missing":
            reason = "is required"
        elif reason.startswith("Value error, "):
            reason = reason.removeprefix("Value error, ")
        problems.append(Problem(prefix + base, reason))
    return problems


def parse_event(
    raw: object,
    *,
    new_event_id: Callable[[], str],
    limits: EventLimits = DEFAULT_LIMITS,
    now: datetime | None = None,
    index: int | None = None,
) -> ChangeEvent | EventError:
    """Validate one raw event (a decoded JSON object); never raises for bad input.

    Args:
        raw: the event as decoded from JSON (camelCase keys).
        new_event_id: called once when the event has no `eventId`.
        limits: caps on the size and depth of `data`, `contained` and `meta`.
        now: the current time, to refuse meta times in the future (skipped when None).
        index: the event's position in its batch, echoed in the error.

    Returns:
        The event, or an `EventError` naming every bad field and why.
    """
    if not isinstance(raw, Mapping):
        return EventError((Problem("event", "must be a JSON object"),), index=index)
    event_id = raw.get("eventId")
    given_id = event_id if isinstance(event_id, str) else None
    problems = payload_problems(raw, limits, now)
    if problems:
        # Report the structural problems too, without letting pydantic walk a suspect payload.
        slim = {k: v for k, v in raw.items() if k not in ("data", "contained", "meta")}
        slim.update({k: {} for k in ("data", "contained", "meta") if raw.get(k) is not None})
        problems.extend(_structural_problems(slim))
        return EventError(tuple(_unique(problems)), event_id=given_id, index=index)
    payload = dict(raw)
    if "eventId" not in payload:
        payload["eventId"] = new_event_id()
    try:
        return ChangeEvent.model_validate(payload)
    except ValidationError as exc:
        return EventError(tuple(_unique(_problems_of(exc))), event_id=given_id, index=index)


def _structural_problems(slim: dict[str, Any]) -> list[Problem]:
    slim.setdefault("eventId", "unassigned")
    try:
        ChangeEvent.model_validate(slim)
    except ValidationError as exc:
        return [p for p in _problems_of(exc) if p.field not in ("data", "contained", "meta")]
    return []


def _unique(problems: Iterable[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))


def parse_events(
    raws: Iterable[object],
    *,
    new_event_id: Callable[[], str],
    limits: EventLimits = DEFAULT_LIMITS,
    now: datetime | None = None,
) -> list[ChangeEvent | EventError]:
    """Validate a batch, one result per input in order; bad events never sink good ones."""
    return [
        parse_event(raw, new_event_id=new_event_id, limits=limits, now=now, index=index)
        for index, raw in enumerate(raws)
    ]

"""Events as stored: compact JSON written once at publish, read back without validating again.

An event is validated once, at publish (`events.parse_event`, then `refs.assign_ids`). The store
keeps it in two parts (`ChangeEvent.stored_parts`): its JSON without `data` and `contained`, and
the JSON of those two. A planning round decodes only the first, rebuilt as the model
`model_construct` would make, and keeps the second as text on the event
(`ChangeEvent.stored_content`), which goes into the request as it is: the planner never walks
`data` (docs/pipeline.md section 4b). Only parts this module's callers wrote are read this way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final, TypeVar

from pydantic import BaseModel

from api_client.models import Action
from worker.domain.events import ChangeEvent, Endpoint, Target
from worker.domain.ops import without_none

_Model = TypeVar("_Model", bound=BaseModel)

CONTENT_SEPARATOR: Final = "\x1e"
"""Joins the stored contents that read.lua returns as one string (the ASCII record separator:
JSON text never holds it raw, since control characters are escaped in strings and compact JSON
has no whitespace between tokens)."""

_TARGETS: Final = {target.value: target for target in Target}
_ACTIONS: Final = {action.value: action for action in Action}
"""Enum members by value: a dict lookup, where calling the enum costs a few times more."""


def _construct(
    cls: type[_Model], values: dict[str, Any], private: dict[str, Any] | None = None
) -> _Model:
    """`cls.model_construct(**values)` for a complete set of fields, without its overhead.

    A stored body is rebuilt for every event a planning round reads; pydantic's `model_construct`
    costs most of that time walking fields and defaults that are all given here. The instance is
    the one `model_construct` makes (a unit test compares them).
    """
    model = cls.__new__(cls)
    object.__setattr__(model, "__dict__", values)
    object.__setattr__(model, "__pydantic_fields_set__", set(values))
    object.__setattr__(model, "__pydantic_extra__", None)
    object.__setattr__(model, "__pydantic_private__", private)
    return model


def _endpoint(raw: Mapping[str, Any] | None) -> Endpoint | None:
    if raw is None:
        return None
    return _construct(Endpoint, {"type": raw["type"], "id": raw.get("id"), "ref": raw.get("ref")})


def event_from_json(text: str) -> ChangeEvent:
    """The event a stored body holds, trusted as validated at publish.

    Raises:
        ValueError: the text is not a stored event body (a corrupt record: never guessed).
    """
    try:
        raw = json.loads(text)
    except ValueError:
        raise ValueError("stored event body unreadable (not JSON)") from None
    return event_from_mapping(raw)


def event_from_mapping(raw: Any, content: str | None = None) -> ChangeEvent:
    """`event_from_json` for a body already decoded (a planning round decodes all at once).

    `content` is the stored JSON of `data` and `contained`, kept undecoded on the event (see
    `ChangeEvent.stored_content`) when `raw` is the stored head without them.

    Raises:
        ValueError: not a stored event body.
    """
    try:
        occurred = raw.get("occurredAt")
        values = {
            "event_id": raw["eventId"],
            "source_key": raw["sourceKey"],
            "target": _TARGETS[raw["target"]],
            "action": _ACTIONS[raw["action"]],
            "type": raw["type"],
            "id": raw.get("id"),
            "ref": raw.get("ref"),
            "from_": _endpoint(raw.get("from")),
            "to": _endpoint(raw.get("to")),
            "data": raw.get("data"),
            "contained": raw.get("contained"),
            "meta": raw.get("meta"),
            "group": raw.get("group"),
            "occurred_at": None if occurred is None else datetime.fromisoformat(occurred),
            "atomic_batch": raw.get("atomicBatch"),
            "generated_id": bool(raw.get("generatedId", False)),
        }
        if raw["eventId"] is None or raw["sourceKey"] is None:
            raise TypeError("eventId and sourceKey are required")
        return _construct(ChangeEvent, values, {"_content": content})
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"stored event body unreadable ({type(exc).__name__})") from None


def event_to_json(event: ChangeEvent) -> str:
    """The compact JSON kept in the event's hash (camelCase, no nulls, no defaults)."""
    return event.to_json()


def compact(value: Any) -> str:
    """Compact JSON for script arguments; None values in mappings are dropped (Lua has no null)."""
    return json.dumps(without_none(value), separators=(",", ":"), ensure_ascii=False)


def text(value: Any) -> str:
    """A reply value as text (the client may or may not decode responses)."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return "" if value is None else str(value)


def json_list(value: Any) -> list[Any]:
    """A JSON list written by a script; cjson writes an empty one as `{}`."""
    if value in (None, "", b""):
        return []
    decoded = json.loads(text(value))
    return decoded if isinstance(decoded, list) else []

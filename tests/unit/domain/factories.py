"""Builders of resolved change events for the domain tests; every id is explicit and valid."""

from __future__ import annotations

import itertools
from typing import Any

from api_client.models import Action
from worker.domain.events import ChangeEvent

_counter = itertools.count(1)

SOURCE = "src"


def next_event_id() -> str:
    return f"e-{next(_counter)}"


def res(
    action: str | Action,
    type_: str = "provider",
    id_: str | None = "p1",
    *,
    eid: str | None = None,
    data: dict[str, Any] | None = None,
    source: str = SOURCE,
    **extra: Any,
) -> ChangeEvent:
    """A resource event; CREATE/UPSERT get `data` ({"v": event id} unless given)."""
    event_id = eid or next_event_id()
    act = Action(action)
    raw: dict[str, Any] = {
        "eventId": event_id,
        "sourceKey": source,
        "target": "resource",
        "action": act,
        "type": type_,
        **extra,
    }
    if id_ is not None:
        raw["id"] = id_
    if act is not Action.DELETE:
        raw["data"] = data if data is not None else {"v": event_id}
    return ChangeEvent.model_validate(raw)


def rel(
    action: str | Action,
    type_: str = "works-at",
    frm: tuple[str, str] = ("office", "o1"),
    to: tuple[str, str] = ("provider", "p1"),
    *,
    eid: str | None = None,
    data: dict[str, Any] | None = None,
    source: str = SOURCE,
    **extra: Any,
) -> ChangeEvent:
    """A relationship event between two resources named by (type, id)."""
    event_id = eid or next_event_id()
    act = Action(action)
    raw: dict[str, Any] = {
        "eventId": event_id,
        "sourceKey": source,
        "target": "relationship",
        "action": act,
        "type": type_,
        "from": {"type": frm[0], "id": frm[1]},
        "to": {"type": to[0], "id": to[1]},
        **extra,
    }
    if act is not Action.DELETE:
        raw["data"] = data if data is not None else {"v": event_id}
    return ChangeEvent.model_validate(raw)


def ids_from(prefix: str = "gen") -> Any:
    """An injected id generator: gen00001, gen00002, ... (valid resource ids)."""
    counter = itertools.count(1)
    return lambda: f"{prefix}{next(counter):05d}"

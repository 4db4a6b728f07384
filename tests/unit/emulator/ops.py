"""Builders of raw operations, so each test shows only what matters to it."""

from __future__ import annotations

from typing import Any


def res(action: str, type_: str, id_: str | None = None, **payload: Any) -> dict[str, Any]:
    """A raw resource operation."""
    body: dict[str, Any] = {"type": type_, **payload}
    if id_ is not None:
        body["id"] = id_
    return {"action": action, action.lower(): body}


def rel(
    action: str, from_id: str, to_id: str, type_: str = "provider-office", **payload: Any
) -> dict[str, Any]:
    """A raw provider-office relationship operation (office -> provider by default)."""
    body = {
        "type": type_,
        "from": {"id": from_id, "type": "office"},
        "to": {"id": to_id, "type": "provider"},
        **payload,
    }
    return {"action": action, action.lower(): body}


def bundle(resources: list[Any] | None = None, relationships: list[Any] | None = None) -> Any:
    """A raw bundle body."""
    return {"resourceOperations": resources or [], "relationshipOperations": relationships or []}


def office(id_: str, name: str = "Clinic", action: str = "UPSERT") -> dict[str, Any]:
    """An office write."""
    return res(action, "office", id_, data={"name": name})


def provider(id_: str, name: str = "John Doe", action: str = "UPSERT") -> dict[str, Any]:
    """A provider write."""
    return res(action, "provider", id_, data={"name": name})

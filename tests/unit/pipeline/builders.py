"""Resolved events for the pipeline's pure tests."""

from __future__ import annotations

import itertools
from typing import Any

from worker.domain.events import ChangeEvent

SOURCE = "src"
_seq = itertools.count(1)


def resource(action: str = "UPSERT", type_: str = "provider", id_: str = "p1", **extra: Any):
    raw: dict[str, Any] = {"eventId": f"e{next(_seq)}", "sourceKey": SOURCE,
                           "target": "resource", "action": action, "type": type_, "id": id_,
                           **extra}  # fmt: skip
    if action != "DELETE":
        raw.setdefault("data", {"name": raw["eventId"]})
    return ChangeEvent.model_validate(raw)


def link(action: str = "UPSERT", office: str = "o1", provider: str = "p1", **extra: Any):
    raw: dict[str, Any] = {"eventId": f"e{next(_seq)}", "sourceKey": SOURCE,
                           "target": "relationship", "action": action, "type": "provider-office",
                           "from": {"type": "office", "id": office},
                           "to": {"type": "provider", "id": provider}, **extra}  # fmt: skip
    if action != "DELETE":
        raw["data"] = {"description": raw["eventId"]}
    return ChangeEvent.model_validate(raw)

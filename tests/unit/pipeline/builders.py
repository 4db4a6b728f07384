"""Resolved events and candidates for the pipeline's pure tests."""

from __future__ import annotations

import itertools
from typing import Any

from worker.domain.events import ChangeEvent
from worker.domain.keys import key_of, resources_touched
from worker.flow.holding import Candidate

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


def candidate(event: ChangeEvent, seq: int, group: str = "g", no_merge: bool = False):
    key = key_of(event)
    return Candidate(
        event, seq, group, str(key), tuple(str(r) for r in resources_touched(key)), no_merge
    )


def candidates(*events: ChangeEvent, group: str = "g") -> list[Candidate]:
    return [candidate(e, i + 1, group) for i, e in enumerate(events)]

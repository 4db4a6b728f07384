"""The one-by-one oracle every benchmark run is checked against, and what it needs.

`one_by_one` applies events (ids given: `with_ids`) one at a time to the emulator's own model of
a source, as a Registry that received each event alone would, and tells which events fail on
their own, with their errors; `oracle` refuses a stream in which any event would; `normalized`
drops the times a Registry stamps, so the emulator's records compare equal to the oracle's. The
streams themselves are in `bench.shapes`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from emulator.state import SUCCESS, SourceState

Event = dict[str, Any]
State = dict[str, list[dict[str, Any]]]


_STAMPED_META: Final = frozenset({"createdAt", "updatedAt"})


def with_ids(events: Iterable[Event], assigned: Mapping[str, str]) -> list[Event]:
    """The events, each CREATE without an id given the id assigned to it (event id -> id).

    Raises KeyError naming the event when one has no assigned id.
    """
    out = []
    for event in events:
        if event["target"] == "resource" and "id" not in event:
            try:
                event = {**event, "id": assigned[event["eventId"]]}
            except KeyError:
                raise KeyError(f"no id was assigned to event {event['eventId']}") from None
        out.append(event)
    return out


def operation_of(event: Event) -> dict[str, Any]:
    """The raw Registry operation that applying the event alone sends."""
    action = event["action"]
    if event["target"] == "resource":
        payload: dict[str, Any] = {"type": event["type"], "id": event["id"]}
    else:
        payload = {"type": event["type"], "from": event["from"], "to": event["to"]}
    if action != "DELETE":
        payload["data"] = copy.deepcopy(event.get("data") or {})
    return {"action": action, action.lower(): payload}


@dataclass(frozen=True)
class OneByOne:
    """What applying the events one by one gives: each source's records, and the events that
    fail on their own (event id -> the Registry's error)."""

    states: dict[str, State]
    failed: dict[str, dict[str, Any]]


def one_by_one(events: Iterable[Event]) -> OneByOne:
    """Per source, the Registry's records after applying the events (ids given) one by one, and
    the events that failed on their own."""
    states: dict[str, SourceState] = {}
    failed: dict[str, dict[str, Any]] = {}
    for event in events:
        source = event["sourceKey"]
        state = states.get(source)
        if state is None:
            state = states[source] = SourceState(source, clock=_fixed_clock, new_id=_no_new_id)
        op = operation_of(event)
        if event["target"] == "resource":
            receipt = state.apply_resource_operation(op)
        else:
            receipt = state.apply_relationship_operation(op)
        if receipt["status"] != SUCCESS:
            failed[event["eventId"]] = receipt.get("error") or {}
    return OneByOne({source: normalized(state.snapshot()) for source, state in states.items()},
                    failed)  # fmt: skip


def oracle(events: Iterable[Event]) -> dict[str, State]:
    """Per source, the Registry's records after applying the events (ids given) one by one.

    Raises ValueError when an event would fail on its own: the stream itself is wrong.
    """
    run = one_by_one(events)
    for event_id, error in run.failed.items():
        raise ValueError(f"event {event_id} fails on its own: {error}")
    return run.states


def _fixed_clock() -> datetime:
    return datetime(2026, 1, 1, tzinfo=UTC)


def _no_new_id() -> str:
    raise ValueError("the oracle takes events whose ids are all given (see with_ids)")


def normalized(snapshot: Mapping[str, Any]) -> State:
    """Records without the times the Registry stamps, sorted: two Registries compare equal."""
    out: State = {}
    for kind in ("resources", "relationships"):
        records = []
        for record in snapshot.get(kind) or []:
            kept = {k: v for k, v in record.items() if k != "meta"}
            kept["meta"] = {
                k: v for k, v in (record.get("meta") or {}).items() if k not in _STAMPED_META
            }
            records.append(kept)
        out[kind] = sorted(records, key=lambda r: (r["type"], r["id"]))
    return out

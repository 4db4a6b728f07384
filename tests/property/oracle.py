"""The oracle: change events applied one by one to the emulator's pure state model.

Each event becomes exactly one Registry operation, written here from the event's own fields (never
with the core's `ops.build_operation`), and is applied alone with `apply_resource_operation` or
`apply_relationship_operation`; its receipt gives its outcome. An atomic batch is all or nothing:
its events run in publish order on a copy of the state, kept only if every one applied. Nothing
here calls the coalescer or the planner.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from api_client.models import BundleRequest, dump_json
from emulator.state import SUCCESS, SourceState
from worker.domain.events import ChangeEvent, Target

SOURCE: Final = "src"
NOW: Final = datetime(2025, 1, 1, tzinfo=UTC)
"""One fixed instant for both sides, so that stored meta compares equal when the writes do."""
JSON = dict[str, Any]

INJECTED_ERROR_TYPE: Final = "FAILED_PRECONDITION"
INJECTED_ERROR: Final[JSON] = {"code": 400, "type": INJECTED_ERROR_TYPE, "message": "injected"}
"""The data error an injected failure carries (a profile refusal, as the emulator gives)."""


def fixed_clock() -> datetime:
    """The clock of every state in these tests: writes on either side stamp the same time."""
    return NOW


def new_registry() -> SourceState:
    """An empty source with the default profiles (office, provider, provider-office)."""
    counter = itertools.count(1)
    return SourceState(SOURCE, clock=fixed_clock, new_id=lambda: f"emu{next(counter):05d}")


def registry_with(start: Sequence[JSON]) -> SourceState:
    """A source holding the initial records; each start operation must apply."""
    registry = new_registry()
    for op in start:
        body = op[op["action"].lower()]
        apply = (
            registry.apply_relationship_operation
            if "from" in body
            else registry.apply_resource_operation
        )
        receipt = apply(op)
        assert receipt["status"] == SUCCESS, receipt
    return registry


def operation_of(event: ChangeEvent) -> JSON:
    """The one raw Registry operation an event stands for, in the documented shape."""
    action = event.action.value
    body: JSON = {"type": event.type}
    if event.target is Target.RESOURCE:
        body["id"] = event.id
    else:
        assert event.from_ is not None
        assert event.to is not None
        body["from"] = {"id": event.from_.id, "type": event.from_.type}
        body["to"] = {"id": event.to.id, "type": event.to.type}
    if action != "DELETE":
        for name in ("data", "contained", "meta"):
            value = getattr(event, name)
            if value is not None:
                body[name] = copy.deepcopy(value)
    return {"action": action, action.lower(): body}


def operation_bytes(event: ChangeEvent) -> int:
    """The compact JSON size of the event's own operation, as the Registry receives it."""
    text = json.dumps(operation_of(event), separators=(",", ":"), ensure_ascii=False)
    return len(text.encode("utf-8"))


EMPTY_BUNDLE: Final = len(dump_json(BundleRequest()))
"""Bytes of a bundle with no operation, measured with the client's serializer."""


def batch_bytes(events: Sequence[ChangeEvent]) -> int:
    """Bytes of one bundle holding exactly these events' operations (one comma between each)."""
    resources = [operation_bytes(e) for e in events if e.target is Target.RESOURCE]
    relationships = [operation_bytes(e) for e in events if e.target is Target.RELATIONSHIP]
    commas = max(len(resources) - 1, 0) + max(len(relationships) - 1, 0)
    return EMPTY_BUNDLE + sum(resources) + sum(relationships) + commas


@dataclass(frozen=True)
class Expected:
    """One event's outcome when applied alone: applied, or failed with an error type."""

    applied: bool
    error_type: str | None = None
    batch_failed: bool = False
    """Refused with its atomic batch (its own error is not compared: the batch's decides)."""


def apply_one(registry: SourceState, event: ChangeEvent) -> JSON:
    """Apply one event's operation alone; its receipt."""
    op = operation_of(event)
    if event.target is Target.RESOURCE:
        return registry.apply_resource_operation(op)
    return registry.apply_relationship_operation(op)


def units(events: Sequence[ChangeEvent]) -> Iterator[list[ChangeEvent]]:
    """Events in publish order, the contiguous members of one atomic batch together."""
    index = 0
    while index < len(events):
        members = [events[index]]
        batch = events[index].atomic_batch
        while (
            batch is not None
            and index + len(members) < len(events)
            and events[index + len(members)].atomic_batch == batch
        ):
            members.append(events[index + len(members)])
        yield members
        index += len(members)


def one_by_one(
    registry: SourceState,
    events: Sequence[ChangeEvent],
    forced_failures: Collection[str] = frozenset(),
) -> tuple[SourceState, dict[str, Expected]]:
    """Apply `events` one at a time; `forced_failures` fail without being applied.

    Returns the final state (a new object when an atomic batch ran) and each event's outcome.
    """
    expected: dict[str, Expected] = {}
    for members in units(events):
        trial = copy.deepcopy(registry) if members[0].atomic_batch is not None else registry
        results: list[Expected] = []
        for event in members:
            if event.event_id in forced_failures:
                results.append(Expected(False, INJECTED_ERROR_TYPE))
                continue
            receipt = apply_one(trial, event)
            if receipt["status"] == SUCCESS:
                results.append(Expected(True))
            else:
                results.append(Expected(False, receipt["error"]["type"]))
        if members[0].atomic_batch is not None:
            if all(r.applied for r in results):
                registry = trial
            else:
                results = [Expected(False, None, batch_failed=True) for _ in members]
        for event, result in zip(members, results, strict=True):
            expected[event.event_id] = result
    return registry, expected

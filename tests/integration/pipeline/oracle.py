"""The oracle: resolved events applied one by one to the emulator's pure state model.

Each event becomes one Registry operation written here from its own fields (never with the core's
`build_operation`) and is applied alone; an atomic batch is all or nothing. Both sides stamp meta
with one fixed clock, so stored records compare equal when the writes do.
"""

from __future__ import annotations

import copy
import itertools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from emulator.state import SUCCESS, SourceState
from tests.property.oracle import operation_of
from worker.domain.events import ChangeEvent, Target

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def fixed_clock() -> datetime:
    """The one instant both the emulator and the oracle stamp their writes with."""
    return NOW


@dataclass
class OracleRun:
    """The final state, each event's outcome alone (None: applied; else the error type), and
    the writes applied, one by one."""

    state: SourceState
    outcomes: dict[str, str | None] = field(default_factory=dict)
    writes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def cascades(self) -> int:
        """Relationship deletes that no relationship DELETE event asked for (an end went)."""
        rel_deletes = sum(
            1 for w in self.writes if w["target"] == "relationship" and w["action"] == "DELETE"
        )
        return rel_deletes - self.applied_relationship_deletes

    applied_relationship_deletes: int = 0


def new_state(source: str) -> SourceState:
    """An empty source with the default profiles (office, provider, provider-office)."""
    counter = itertools.count(1)
    return SourceState(source, clock=fixed_clock, new_id=lambda: f"oracle{next(counter):05d}")


def one_by_one(source: str, events: Sequence[ChangeEvent]) -> OracleRun:
    """Apply `events` (publish order) one at a time; atomic batches all or nothing."""
    run = OracleRun(new_state(source))
    index = 0
    while index < len(events):
        members = [events[index]]
        batch = events[index].atomic_batch
        while batch and index + len(members) < len(events):
            if events[index + len(members)].atomic_batch != batch:
                break
            members.append(events[index + len(members)])
        trial = copy.deepcopy(run.state) if batch else run.state
        errors: list[str | None] = []
        for event in members:
            apply = (
                trial.apply_resource_operation
                if event.target is Target.RESOURCE
                else trial.apply_relationship_operation
            )
            receipt = apply(operation_of(event))
            errors.append(None if receipt["status"] == SUCCESS else receipt["error"]["type"])
        if batch and any(errors):
            errors = ["BATCH_FAILED"] * len(members)
            trial.drain_writes()
        else:
            run.state = trial
        run.writes.extend(run.state.drain_writes())
        for event, error in zip(members, errors, strict=True):
            run.outcomes[event.event_id] = error
            if (
                error is None
                and event.target is Target.RELATIONSHIP
                and event.action.value == "DELETE"
            ):
                run.applied_relationship_deletes += 1
        index += len(members)
    return run


def writes_by_entity(writes: Sequence[dict[str, Any]]) -> Counter[tuple[str, str, str]]:
    """How many writes each entity (target, type, id) got."""
    return Counter((w["target"], w["type"], w["id"]) for w in writes)

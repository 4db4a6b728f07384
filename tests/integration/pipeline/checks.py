"""Comparisons between the pipeline's results and the one-by-one oracle."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from emulator.registry import Registry
from worker.domain.events import ChangeEvent, Target
from worker.pipeline import Deps, run_due
from worker.results import EventStatus, backlog, event_status

from .conftest import Harness
from .oracle import OracleRun, one_by_one, writes_by_entity

FINAL = ("applied", "coalesced", "dead_lettered")


def matches(event: ChangeEvent, expected: str | None, got: EventStatus) -> bool:
    """Whether the pipeline's outcome is the one-by-one outcome (or a documented exception)."""
    if expected is None:
        return got.status in ("applied", "coalesced")
    if expected == "BATCH_FAILED":
        return got.status == "dead_lettered"
    if got.status == "dead_lettered":
        if got.bound_to is not None:  # bound to a failed worker-id CREATE of one of its ends
            return event.target is Target.RELATIONSHIP
        return isinstance(got.error, dict) and got.error.get("type") == expected
    if got.status == "coalesced":  # SUPERSEDE: a superseded payload the Registry never judged
        return "unknownProperty" in (event.data or {})
    return False


def check_against_oracle(
    deps: Deps, registry: Registry, source: str, events: Sequence[ChangeEvent]
) -> tuple[OracleRun, dict[str, EventStatus]]:
    """Same final records, an outcome for every event that agrees, no operation applied twice."""
    oracle = one_by_one(source, events)
    assert registry.snapshot(source) == oracle.state.snapshot()
    statuses = {e.event_id: event_status(deps, e.event_id, source=source) for e in events}
    not_final = [s.to_dict() for s in statuses.values() if s.status not in FINAL]
    assert not_final == []
    wrong = [
        (e.event_id, oracle.outcomes[e.event_id], statuses[e.event_id].to_dict())
        for e in events
        if not matches(e, oracle.outcomes[e.event_id], statuses[e.event_id])
    ]
    assert wrong == []
    writes = [w for w in registry.write_log() if w["source"] == source]
    ours, theirs = writes_by_entity(writes), writes_by_entity(oracle.writes)
    assert [k for k in ours if ours[k] > theirs[k]] == []
    applied = sum(1 for s in statuses.values() if s.status == "applied")
    assert len(writes) == applied + oracle.cascades
    return oracle, statuses


def run_until(harness: Harness, condition: Callable[[], bool], deadline_s: float = 10.0) -> None:
    """Run `run_due` until `condition` holds; fails past the deadline with the backlog."""
    deadline = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < deadline, backlog(harness.deps).to_dict()
        if run_due(harness.deps).idle:
            time.sleep(0.005)  # nothing due yet; the deadline bounds the loop

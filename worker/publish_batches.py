"""Atomic batches at publish: all of a batch's events go in as one bundle, or none does.

A batch is refused as a whole, with the reason on every event, when one of its events is
invalid, when its events are not contiguous in the call, or when it could not travel as one
bundle (`domain.plan.check_atomic_batch`). Batch ids are scoped to one call.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

from worker.domain.events import Problem
from worker.domain.plan import PlanCaps, check_atomic_batch
from worker.publish_entry import Entry

__all__ = ["check_batches", "make_one_batch", "refuse_batches_in_bulk"]


def refuse_batches_in_bulk(entries: Sequence[Entry], *, whole_call: bool) -> None:
    """Bulk mode: an atomic batch (the whole call, or an event naming one) is refused."""
    problem = Problem(
        "atomicBatch", "bulk requests are not atomic; publish atomic batches in mode='bundle'"
    )
    for entry in entries:
        if whole_call or (entry.event is not None and entry.event.atomic_batch is not None):
            entry.refuse(problem)


def make_one_batch(entries: Sequence[Entry], batch_id: str) -> None:
    """atomic=True: every event joins one batch, refused whole when anything is wrong."""
    sources = {e.source for e in entries}
    reason: Problem | None = None
    bad = next((e for e in entries if e.problems), None)
    if bad is not None:
        reason = Problem("atomicBatch", f"refused as a whole: event[{bad.index}] is invalid")
    elif len(sources) > 1:
        reason = Problem("atomicBatch", "an atomic batch must stay within one source")
    elif any(e.duplicate_of is not None for e in entries):
        reason = Problem("atomicBatch", "an event id appears twice in the batch")
    if reason is not None:
        for entry in entries:
            entry.refuse(reason)
        return
    for entry in entries:
        assert entry.event is not None
        entry.event = entry.event.model_copy(update={"atomic_batch": batch_id})


def check_batches(members: Sequence[Entry], caps: PlanCaps, new_id: Callable[[], str]) -> None:
    """Each atomic batch: contiguous, whole, able to travel as one bundle; else refused whole."""
    batches: dict[str, list[Entry]] = defaultdict(list)
    for entry in members:
        if entry.event is not None and entry.event.atomic_batch is not None:
            batches[entry.event.atomic_batch].append(entry)
    position = {id(e): i for i, e in enumerate(members)}
    for batch in batches.values():
        positions = [position[id(e)] for e in batch]
        problems: list[Problem] = []
        bad = next((e for e in batch if e.problems), None)
        if bad is not None:
            problems = [Problem("atomicBatch", f"refused as a whole: event[{bad.index}] failed")]
        elif positions != list(range(positions[0], positions[0] + len(batch))):
            problems = [Problem("atomicBatch", "its events must be contiguous in the call")]
        else:
            problems = check_atomic_batch([e.event for e in batch if e.event is not None], caps)
        if problems:
            for entry in batch:
                entry.refuse(*problems)
            continue
        scoped = new_id()  # batch ids are scoped to one call, so two calls never mix
        for entry in batch:
            assert entry.event is not None
            entry.event = entry.event.model_copy(update={"atomic_batch": scoped})

"""Asynchronous tasks: what was accepted, how long it stays PENDING, and what it ends as.

A task is accepted with its operations already parsed and their ids assigned, so that its
PENDING receipts can show them. It answers PENDING to `pending_polls` status polls and for at
least `pending_s` seconds after acceptance (both must pass); then the next access processes it
(its operations applied, in order, on the source's state) and it is terminal for good:
- bundle: atomic; SUCCESS, or FAILURE with a FAILURE receipt for the first failing operation
  (or for each, under `bundle_failures: all`) and the others CANCELLED;
- bulk and single writes: each operation on its own; FAILURE when any failed (SUCCESS with the
  legacy bulk status), CANCELLED when every operation was cancelled;
- an injected failure: every receipt FAILURE with that error, nothing applied;
- purge: the collection deleted, `deletedCount` set.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from emulator.bundles import BundlePlan
from emulator.failures import JSON
from emulator.operations import Operation
from emulator.state import CANCELLED, FAILURE, SUCCESS, SourceState
from emulator.times import format_time

PENDING: Final = "PENDING"
IN_REVIEW: Final = "IN_REVIEW"
SUCCESSFUL: Final = "SUCCESSFUL"


@dataclass(frozen=True)
class TaskOverride:
    """Set by fault injection for one submission, to shape the life of its task."""

    pending_polls: int | None = None
    """Stay PENDING for this many polls, receipts showing a pipeline execution IN_REVIEW."""
    failure: dict[str, Any] | None = None
    """End FAILURE: every receipt FAILURE with this error, nothing applied."""
    force_async: bool = False
    """Answer ACCEPTED whatever the source's mode."""


class TaskKind(StrEnum):
    """What submitted a task; it fixes the id prefix and how the task is processed."""

    SINGLE = "s_"
    BUNDLE = "bd_"
    BULK = "bk_"
    PURGE = "pg_"


@dataclass
class PurgeJob:
    """What a purge task deletes, and how many records it deleted."""

    collection_type: str
    collection_key: str
    deleted_count: int = 0


@dataclass
class Task:
    """One accepted submission and its progress; mutated only under the Registry's lock."""

    task_id: str
    source: str
    kind: TaskKind
    accepted_at: datetime
    operations: tuple[Operation, ...] = ()
    bundle: BundlePlan | None = None
    bulk_target: str | None = None
    purge: PurgeJob | None = None
    pending_polls: int = 0
    pending_s: float = 0.0
    failure: JSON | None = None
    pipeline_id: str | None = None
    """Set when the task waits in review: its receipts carry a pipeline execution."""
    polls_seen: int = 0
    status: str = PENDING
    completed_at: datetime | None = None
    receipts: list[JSON] = field(default_factory=list)

    @property
    def terminal(self) -> bool:
        """Whether the task is done for good (SUCCESS, FAILURE or CANCELLED)."""
        return self.status != PENDING

    @property
    def ops(self) -> tuple[Operation, ...]:
        """Every operation in submission order (a bundle's resource operations first)."""
        if self.bundle is not None:
            return self.bundle.resources + self.bundle.relationships
        return self.operations

    def is_due(self, now: datetime) -> bool:
        """Whether the task has served its PENDING polls and time, so it may be processed."""
        waited_s = (now - self.accepted_at).total_seconds()
        return (
            not self.terminal
            and self.polls_seen >= self.pending_polls
            and waited_s >= self.pending_s
        )

    def body(self, *, with_receipts: bool, with_task_id: bool) -> JSON:
        """The status answer: `{status, taskId?, receipts?}`."""
        answer: JSON = {"status": self.status}
        if with_task_id:
            answer["taskId"] = self.task_id
        if with_receipts:
            answer["receipts"] = (
                [dict(r) for r in self.receipts]
                if self.terminal
                else [self._receipt(op, PENDING, None) for op in self.ops]
            )
        return answer

    def purge_operation(self) -> JSON:
        """The purge's `purgeOperation` object (its `purgeId` is the deprecated `purge:<id>`)."""
        if self.purge is None:
            raise ValueError(f"task {self.task_id} is not a purge")
        created = format_time(self.accepted_at)
        return {
            "taskId": self.task_id,
            "purgeId": "purge:" + self.task_id.removeprefix(TaskKind.PURGE.value),
            "collectionType": self.purge.collection_type,
            "collectionKey": self.purge.collection_key,
            "status": self.status,
            "deletedCount": self.purge.deleted_count,
            "createdAt": created,
            "updatedAt": format_time(self.completed_at) if self.completed_at else created,
        }

    def finish(
        self,
        outcomes: list[tuple[Operation, str, JSON | None]],
        now: datetime,
        status: str,
        rng: random.Random | None,
    ) -> None:
        """Make the task terminal with one receipt per (operation, status, error)."""
        self.completed_at = now
        self.status = status
        self.receipts = [self._receipt(op, op_status, error) for op, op_status, error in outcomes]
        if rng is not None:
            rng.shuffle(self.receipts)

    def _receipt(self, op: Operation, status: str, error: JSON | None) -> JSON:
        body: JSON = {
            "receivedAt": format_time(self.accepted_at),
            "taskId": self.task_id,
            "action": op.action,
            "status": status,
            "targetType": op.target_type,
            "id": op.receipt_id,
            "type": op.type,
        }
        if self.completed_at is not None:
            body["completedAt"] = format_time(self.completed_at)
        if error is not None:
            body["error"] = dict(error)
        if self.pipeline_id is not None:
            body["pipelineExecution"] = {
                "id": self.pipeline_id,
                "pipelineDefinitionId": f"{op.type}.1",
                "status": IN_REVIEW if status == PENDING else SUCCESSFUL,
            }
        return body


def process(
    task: Task,
    state: SourceState,
    now: datetime,
    *,
    legacy_bulk_status: bool,
    rng: random.Random | None,
) -> None:
    """Apply a due task's operations on `state` and make it terminal."""
    if task.purge is not None:
        task.purge.deleted_count = state.purge(
            task.purge.collection_type, task.purge.collection_key
        )
        task.finish([], now, SUCCESS, None)
        return
    outcomes: list[tuple[Operation, str, JSON | None]] = []
    if task.failure is not None:
        outcomes = [(op, FAILURE, task.failure) for op in task.ops]
    elif task.bundle is not None:
        resource_receipts, relationship_receipts = state.execute_bundle(task.bundle)
        for op, done in zip(task.ops, resource_receipts + relationship_receipts, strict=True):
            outcomes.append((op, done["status"], done.get("error")))
    else:
        for op in task.ops:
            error = state.execute(op)
            outcomes.append((op, SUCCESS if error is None else FAILURE, error))
    statuses = [op_status for _, op_status, _ in outcomes]
    status = overall_status(task.kind, statuses, legacy_bulk_status)
    task.finish(outcomes, now, FAILURE if task.failure is not None else status, rng)


def overall_status(kind: TaskKind, statuses: list[str], legacy_bulk_status: bool) -> str:
    """A terminal task's status from its receipts' statuses (TASK reference, or legacy bulk)."""
    if statuses and all(status == CANCELLED for status in statuses):
        return CANCELLED
    if FAILURE in statuses or CANCELLED in statuses:
        return SUCCESS if kind == TaskKind.BULK and legacy_bulk_status else FAILURE
    return SUCCESS

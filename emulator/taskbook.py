"""The Registry's book of tasks: accepting, finding, polling and processing them, and the write log.

Tasks advance lazily. A status poll of a task that has not served its PENDING polls and time
counts one poll; once both are served, the next access of any kind (`advance`) processes it.
Every write a source applies is logged in order with the task that applied it.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from datetime import datetime
from typing import Any

from emulator.config import EmulatorConfig
from emulator.failures import JSON
from emulator.state import SourceState
from emulator.tasks import Task, TaskKind, TaskOverride, process

DEPRECATED_PURGE_PREFIX = "purge:"


class TaskBook:
    """Every task of one Registry, the ones still open, and the log of applied writes."""

    def __init__(
        self,
        config_of: Callable[[], EmulatorConfig],
        clock: Callable[[], datetime],
        new_id: Callable[[], str],
    ) -> None:
        self._config_of = config_of
        self._clock = clock
        self._new_id = new_id
        self._shuffle = random.Random(config_of().seed + 1)  # noqa: S311 - test data, not secrets
        self._tasks: dict[str, Task] = {}
        self._open: dict[str, Task] = {}
        self._log: list[JSON] = []

    def accept(
        self,
        state: SourceState,
        kind: TaskKind,
        override: TaskOverride | None,
        **work: Any,
    ) -> Task:
        """Open a task for `work`, PENDING as the config (or the override) says."""
        config = self._config_of()
        review_polls = override.pending_polls if override is not None else None
        task = Task(
            task_id=kind.value + self._new_id(),
            source=state.key,
            kind=kind,
            accepted_at=self._clock(),
            pending_polls=config.task_pending_polls if review_polls is None else review_polls,
            pending_s=config.task_pending_s,
            failure=override.failure if override is not None else None,
            pipeline_id=None if review_polls is None else self._new_id(),
            **work,
        )
        self._tasks[task.task_id] = task
        self._open[task.task_id] = task
        return task

    def close(self, task: Task) -> None:
        """Forget that a task is open (it was finished outside `process`)."""
        self._open.pop(task.task_id, None)

    def find(self, source: str, task_id: str, kinds: tuple[TaskKind, ...]) -> Task | None:
        """The task of `source` with that id (prefixed, bare or `purge:`) among `kinds`."""
        if task_id.startswith(DEPRECATED_PURGE_PREFIX):
            candidates = [TaskKind.PURGE.value + task_id.removeprefix(DEPRECATED_PURGE_PREFIX)]
        elif any(task_id.startswith(kind.value) for kind in TaskKind):
            candidates = [task_id]
        else:
            candidates = [kind.value + task_id for kind in kinds]
        for candidate in candidates:
            task = self._tasks.get(candidate)
            if task is not None and task.source == source and task.kind in kinds:
                return task
        return None

    def poll(self, task: Task, state: SourceState) -> None:
        """One status poll: process the task if it is due, else count the poll."""
        if task.terminal:
            return
        if task.is_due(self._clock()):
            self.process(task, state)
        else:
            task.polls_seen += 1

    def advance(self, state_of: Callable[[str], SourceState]) -> None:
        """Process every open task that is due, in acceptance order."""
        now = self._clock()
        for task in [task for task in self._open.values() if task.is_due(now)]:
            self.process(task, state_of(task.source))

    def process(self, task: Task, state: SourceState) -> None:
        """Apply a task now and make it terminal."""
        config = self._config_of()
        state.delete_policy = config.delete_policy
        state.bundle_failures = config.bundle_failures
        rng = self._shuffle if config.shuffle_receipts else None
        legacy = config.legacy_bulk_status
        process(task, state, self._clock(), legacy_bulk_status=legacy, rng=rng)
        self.record_writes(state, task.task_id)
        self.close(task)

    def record_writes(self, state: SourceState, task_id: str | None) -> None:
        """Log the writes `state` applied since the last call, under `task_id`."""
        for write in state.drain_writes():
            entry = {"seq": len(self._log) + 1, "source": state.key, **write, "taskId": task_id}
            self._log.append(entry)

    def ids_of(self, source: str) -> list[str]:
        """The ids of a source's tasks, in acceptance order."""
        return [task.task_id for task in self._tasks.values() if task.source == source]

    def log(self) -> list[JSON]:
        """A copy of the write log."""
        return copy.deepcopy(self._log)

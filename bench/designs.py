"""The two designs the benchmark compares, behind one shape so both go through the same steps.

- `Naive`: one Celery task per event (`bench.baseline`), K workers each consuming its own queue;
  done when its counter in Redis reaches the stream's length.
- `Ours`: K of our workers (`celery -A worker worker`, with the ticker); the stream published
  through `worker.publish` in batches; done when our backlog is 0 (`worker.results.backlog`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from bench import baseline
from bench.consuming import Consumers
from bench.stack import BaselineWorkers, BenchError, Stack
from bench.stream import Event
from worker.celery_app import QUEUE
from worker.demo_stack import Workers

NAIVE: Final = "naive"
OURS: Final = "ours"


class Design(Protocol):
    """What the runs need of a design: its workers, their queues, how work goes in, when done."""

    name: str
    label: str
    prefix: str
    """How its workers' names start (`<prefix>1@host`)."""

    def start(self, stack: Stack) -> Workers: ...
    def queues(self, names: Sequence[str]) -> dict[str, str]: ...
    def submit(self, stack: Stack, events: Sequence[Event]) -> dict[str, str]: ...
    def reset_count(self, stack: Stack) -> None: ...
    def done(self, stack: Stack, events: int) -> bool: ...
    def where(self) -> str: ...
    def check_failures(self, stack: Stack) -> None: ...


@dataclass
class Crew:
    """A design's running workers and the remote control that pauses and resumes them."""

    design: Design
    workers: Workers
    consumers: Consumers


class Naive:
    """One Celery task per event, each sent as one single write (bench/baseline.py)."""

    name = NAIVE
    label = "one task per event"
    prefix = "baseline"

    def __init__(self) -> None:
        self._stack: Stack | None = None
        self._expected = 0

    def start(self, stack: Stack) -> Workers:
        self._stack = stack
        return BaselineWorkers(stack.settings, stack.logs("naive"), count=stack.options.workers)

    def queues(self, names: Sequence[str]) -> dict[str, str]:
        # baseline<N>@host consumes queue N - 1 (bench.stack.BaselineWorkers)
        return {name: baseline.queue_name(int(name.split("@")[0][len(self.prefix) :]) - 1)
                for name in names}  # fmt: skip

    def submit(self, stack: Stack, events: Sequence[Event]) -> dict[str, str]:
        app = baseline.create_app(stack.settings)
        try:
            return baseline.enqueue(app, events, stack.options.workers)
        finally:
            app.close()

    def reset_count(self, stack: Stack) -> None:
        stack.client.delete(baseline.DONE_KEY, baseline.FAILED_KEY)

    def counted(self, stack: Stack) -> int:
        """Tasks finished so far, done or failed."""
        done = stack.client.get(baseline.DONE_KEY)
        return int(done or 0) + int(stack.client.llen(baseline.FAILED_KEY))

    def done(self, stack: Stack, events: int) -> bool:
        self._expected = events
        return self.counted(stack) >= events

    def where(self) -> str:
        counted = self.counted(self._stack) if self._stack else 0
        return f"one task per event finished {counted} of {self._expected} tasks"

    def check_failures(self, stack: Stack) -> None:
        failed = [str(line) for line in stack.client.lrange(baseline.FAILED_KEY, 0, 4)]
        if failed:
            count = stack.client.llen(baseline.FAILED_KEY)
            raise BenchError(f"one task per event failed {count} writes, e.g. {'; '.join(failed)}")


class Ours:
    """Our workers: events published in batches, bundles sent by the pipeline."""

    name = OURS
    label = "ours"
    prefix = "demo"

    def __init__(self) -> None:
        self._stack: Stack | None = None

    def start(self, stack: Stack) -> Workers:
        self._stack = stack
        count = stack.options.workers
        return Workers(stack.settings, stack.logs(f"ours-{id(self)}"), count=count, concurrency=1)

    def queues(self, names: Sequence[str]) -> dict[str, str]:
        return dict.fromkeys(names, QUEUE)

    def submit(self, stack: Stack, events: Sequence[Event]) -> dict[str, str]:
        return publish_in_batches(stack, events)

    def reset_count(self, stack: Stack) -> None:
        """Nothing to reset: the backlog counts what is left, not what was done."""

    def done(self, stack: Stack, events: int) -> bool:
        from worker.results import backlog

        return backlog(stack.store).total == 0

    def where(self) -> str:
        from worker.results import backlog

        if self._stack is None:
            return "not started"
        return f"the backlog is still {backlog(self._stack.store).to_dict()}"

    def check_failures(self, stack: Stack) -> None:
        """Our failures are dead letters; the oracle check finds what they would change."""


def publish_in_batches(stack: Stack, events: Sequence[Event]) -> dict[str, str]:
    """Publish through `worker.publish` in batches; the ids assigned to id-less CREATEs."""
    import worker

    assigned: dict[str, str] = {}
    size = stack.options.publish_batch
    for start in range(0, len(events), size):
        report = worker.publish(events[start : start + size], store=stack.store)
        if report.errors:
            first = report.errors[0]
            raise BenchError(
                f"{len(report.errors)} events refused at publish, e.g. event {first.event_id}: "
                f"{first.field}: {first.reason}"
            )
        if report.duplicates:
            raise BenchError(f"{len(report.duplicates)} events were already published")
        assigned.update(report.assigned_ids)
    return assigned

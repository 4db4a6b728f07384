"""The two designs the benchmark compares, behind one shape so both go through the same steps.

- `Naive`: one Celery task per event (`bench.baseline`), K workers each consuming its own queue;
  done when its counter in Redis reaches the stream's length.
- `Ours`: K of our workers (`celery -A worker worker`, with the ticker); the stream published
  through `worker.publish` in batches; done when our backlog is 0 (`worker.results.backlog`).

After a run, each design's failures must be exactly the events the stream fails one by one
(`check_failures`): the writes the naive design counted failed, our dead letters (at publish or
at record). So no event that applies alone is lost as a failure, and none that fails is hidden.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol

from bench import baseline
from bench.consuming import Consumers
from bench.shapes import Stream
from bench.stack import BaselineWorkers, BenchError, Stack
from bench.stream import Event
from worker.celery_app import QUEUE
from worker.demo_stack import Workers

if TYPE_CHECKING:
    from worker.deadletters import DeadLetter

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
    def check_failures(self, stack: Stack, stream: Stream) -> None: ...


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

    def check_failures(self, stack: Stack, stream: Stream) -> None:
        """The writes that failed (`<event id>: <error type>`) are the stream's failing events."""
        lines = [str(line) for line in stack.client.lrange(baseline.FAILED_KEY, 0, -1)]
        failed = {line.split(":", 1)[0]: line for line in lines}
        check_failed(self.label, "failed writes", failed, stream.failing)


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

    def check_failures(self, stack: Stack, stream: Stream) -> None:
        """The dead letters of the stream's sources are its failing events, each once."""
        from worker.deadletters import DlqFilter, pages

        where = DlqFilter(sources=tuple(stream.sources))
        letters = [letter for page in pages(stack.store, where) for letter in page]
        failed = {str(letter.event_id): _letter_line(letter) for letter in letters}
        if len(failed) != len(letters):
            raise BenchError(f"{self.label}: {len(letters)} dead letters for {len(failed)} events")
        check_failed(self.label, "dead letters", failed, stream.failing)


def _letter_line(letter: DeadLetter) -> str:
    return f"{letter.event_id}: {letter.stage} {letter.error_type} {letter.message[:120]}"


def check_failed(label: str, what: str, failed: dict[str, str], expected: Iterable[str]) -> None:
    """Raise BenchError unless the events `failed` (event id -> a line about it) are exactly
    `expected`: none that applies one by one, and every one that fails."""
    wanted = frozenset(expected)
    unexpected = sorted(set(failed) - wanted)
    missing = sorted(wanted - set(failed))
    problems = []
    if unexpected:
        examples = "; ".join(failed[e] for e in unexpected[:3])
        problems.append(f"{len(unexpected)} events that apply one by one, e.g. {examples}")
    if missing:
        problems.append(f"not {len(missing)} events that fail one by one, e.g. {missing[:3]}")
    if problems:
        raise BenchError(f"{label}: the {what} hold " + ", and ".join(problems))


def publish_in_batches(stack: Stack, events: Sequence[Event]) -> dict[str, str]:
    """Publish through `worker.publish` in batches; the ids assigned to id-less CREATEs.

    Events refused at publish are dead-lettered there; `Ours.check_failures` finds them."""
    import worker

    assigned: dict[str, str] = {}
    size = stack.options.publish_batch
    for start in range(0, len(events), size):
        report = worker.publish(events[start : start + size], store=stack.store)
        if report.duplicates:
            raise BenchError(f"{len(report.duplicates)} events were already published")
        assigned.update(report.assigned_ids)
    return assigned

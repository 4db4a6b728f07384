"""The cyclic garbage collector of a worker process, tuned for planning rounds.

Why: a planning round allocates tens of thousands of containers (events, operations, keys, the
dicts between them) that live until the round ends. Under CPython's default thresholds a young
collection ran every 700 net allocations, and every hundredth one became a full collection that
walked every object of the process, Celery's and pydantic's included, which are never garbage.
Measured on the benchmark's wide stream in one process: 48 CPU-us per event in collections, over
a third of a worker's CPU. With what exists at start-up frozen (out of every collection for
good) and a young collection every `YOUNG_THRESHOLD` net allocations: 7 to 10.

Cycles are still collected; they are only collected less often, so a round's garbage can wait
a few more milliseconds. Memory freed by reference counting (nearly all of it) is not affected.
"""

from __future__ import annotations

import gc
from typing import Any, Final

YOUNG_THRESHOLD: Final = 10_000
"""Net container allocations between young collections (CPython's default: 700)."""
OLDER_EVERY: Final = 10
"""Young collections per collection of the next generation (CPython's default)."""


def tune_collector() -> None:
    """Freeze what the process holds now and collect the young generation less often."""
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, OLDER_EVERY, OLDER_EVERY)


def connect_collector_tuning() -> None:
    """Tune the collector of a Celery worker's main process once it starts, and of each pool
    process once forked; connected once per process, however many apps are built."""
    from celery import signals

    signals.worker_init.connect(_on_start, weak=False, dispatch_uid=_RECEIVER)
    signals.worker_process_init.connect(_on_start, weak=False, dispatch_uid=_RECEIVER)


_RECEIVER: Final = "clinia-ingest-collector-tuning"


def _on_start(**_: Any) -> None:
    tune_collector()

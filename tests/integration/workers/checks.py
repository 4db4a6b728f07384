"""What the worker-process tests share: publishing a stream, waiting for the drain, and comparing
the emulator's records with the one-by-one oracle."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from bench.stream import normalized
from tests.integration.workers.conftest import Emulator, Workers
from tests.integration.workers.stream import oracle
from tests.waiting import wait_for
from worker.pipeline import Deps
from worker.publisher import publish
from worker.results import backlog

PUBLISH_BATCH = 1000


def publish_all(deps: Deps, events: Sequence[dict[str, Any]], batch: int = PUBLISH_BATCH) -> None:
    """Publish in calls of `batch`; every event must be accepted."""
    for start in range(0, len(events), batch):
        report = publish(deps, list(events[start : start + batch]))
        assert report.errors == [], report.errors[:3]


def wait_drained(
    deps: Deps,
    workers: Workers,
    timeout_s: float,
    detail: Callable[[], object] | None = None,
) -> None:
    """Wait until the backlog is 0; on timeout, fail with it, `detail()` and the worker logs."""
    try:
        wait_for(lambda: backlog(deps).total == 0, timeout_s=timeout_s)
    except AssertionError:
        left = backlog(deps).to_dict()
        more = "" if detail is None else f"\n{detail()}"
        raise AssertionError(f"backlog not drained: {left}{more}\n{workers.logs()}") from None


def check_registry_matches_oracle(
    emulator: Emulator, events: Sequence[dict[str, Any]], sources: Sequence[str]
) -> None:
    """The emulator's records of each source equal what one-by-one application leaves."""
    expected = oracle(events)
    for source in sources:
        actual = normalized(
            {
                "resources": emulator.admin("GET", f"/sources/{source}/resources"),
                "relationships": emulator.admin("GET", f"/sources/{source}/relationships"),
            }
        )
        assert actual == expected[source], source

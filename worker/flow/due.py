"""The ticker's step and the inline driver: hand out what is due, and (for tests) run it."""

from __future__ import annotations

import structlog

from worker.flow.counts import DueWork, RunCounts
from worker.flow.deps import Deps
from worker.flow.flush import flush
from worker.flow.pausing import active_pauses
from worker.flow.poll import poll
from worker.flow.recover import recover
from worker.pauses import PauseKind
from worker.results import Backlog, backlog
from worker.store.records import DueTaken

__all__ = ["claim_due", "refresh_backlog", "run_due"]

_log = structlog.get_logger("worker.pipeline")


def claim_due(deps: Deps, *, limit: int) -> DueWork:
    """Due planning, due polls and expired claims of every source, each taken for a lease.

    Safe in any number of copies: take_due.lua re-scores what it hands out to now + lease, so two
    tickers never hand out one entry, and a lost message only delays it by the lease (doubled
    for each hand-out in a row nobody handled, up to `due_lease_cap_ms`). A paused
    source's groups and claims wait for the end of the pause; its polls go on unless the pause is
    an auth pause (`flow/pausing.py`).

    Args:
        deps: the process's dependencies.
        limit: the most ids of each kind per source.
    """
    sources = deps.store.sources()
    if not sources:
        return DueWork()
    now = deps.now_ms()
    paused = active_pauses(deps, sources, now)
    free = [s for s in sources if s not in paused]
    polling = [s for s, p in paused.items() if p.kind != PauseKind.AUTH.value]
    taken: dict[str, DueTaken] = {}
    if free:
        taken = deps.store.take_due(free, now, groups=limit, polls=limit, claims=limit)
    if polling:
        taken.update(deps.store.take_due(polling, now, groups=0, polls=limit, claims=0))
    return DueWork(
        flush={s: list(t.groups) for s, t in taken.items() if t.groups},
        poll={s: list(t.polls) for s, t in taken.items() if t.polls},
        recover={s: list(t.claims) for s, t in taken.items() if t.claims},
    )


def run_due(deps: Deps, *, limit: int = 1000) -> RunCounts:
    """Do everything that is due now, inline, once; for tests, the demo and one-shot runs.

    Never sleeps: call it again (with a deadline) until `results.backlog` is 0.
    """
    work = claim_due(deps, limit=limit)
    counts = RunCounts()
    for source, groups in work.flush.items():
        result = flush(deps, source, groups)
        counts.groups += len(groups)
        counts.bundles_reserved += result.bundles_reserved
        _add_submissions(counts, result.recorded, result.accepted, result.released, result.parked)
    for source, bundle_ids in work.poll.items():
        polled = poll(deps, source, bundle_ids)
        counts.polls += polled.polled
        counts.stale += polled.stale
        _add_submissions(counts, polled.recorded, 0, 0, polled.parked)
    for source, bundle_ids in work.recover.items():
        recovered = recover(deps, source, bundle_ids)
        counts.recoveries += recovered.claimed
        _add_submissions(
            counts, recovered.recorded, recovered.accepted, recovered.released, recovered.parked
        )
    return counts


def _add_submissions(
    counts: RunCounts, recorded: int, accepted: int, released: int, parked: int
) -> None:
    counts.recorded += recorded
    counts.accepted += accepted
    counts.released += released
    counts.parked += parked


def refresh_backlog(deps: Deps) -> Backlog:
    """Compute the backlog and publish its total as `ingest:backlog`, with a TTL of the due
    lease, so a value nobody refreshes fades (KEDA reads the same figure from
    `clinia-ingest metrics`: its Redis scaler cannot read a string)."""
    current = backlog(deps)
    deps.store.set_backlog(current.total, deps.settings.due_lease_ms)
    return current

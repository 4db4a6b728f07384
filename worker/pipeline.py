"""The pipeline, as plain functions: flush, submit, poll, record, recover; no Celery, no sleeping.

Correctness lives in Redis records (ready logs, bundle records with a state machine, holds, claims
with fencing tokens, the poll schedule), never in a message being delivered once (invariant 11):
each function here can run twice, late, or in several processes at once, and it only changes
timing. docs/pipeline.md describes the keys, the states and the steps.

The steps live in `worker.flow`; this module is their face:

- `build_deps(settings)` builds the per-process dependencies (nothing connects until used).
- `flush(deps, source, groups)` plans, reserves and submits what due groups hold.
- `poll(deps, source, bundle_ids)` polls accepted tasks and records the finished ones.
- `recover(deps, source, bundle_ids)` takes over records whose claim expired.
- `claim_due(deps, limit=)` is the ticker's step; `run_due(deps)` does everything due, inline.
- `refresh_backlog(deps)` publishes the autoscaling signal.
"""

from __future__ import annotations

from worker.flow.counts import DueWork, FlushResult, PollResult, RecoverResult, RunCounts
from worker.flow.deps import Deps, build_deps
from worker.flow.due import claim_due, refresh_backlog, run_due
from worker.flow.flush import flush
from worker.flow.poll import poll
from worker.flow.recover import recover
from worker.results import Backlog

__all__ = [
    "Backlog",
    "Deps",
    "DueWork",
    "FlushResult",
    "PollResult",
    "RecoverResult",
    "RunCounts",
    "build_deps",
    "claim_due",
    "flush",
    "poll",
    "recover",
    "refresh_backlog",
    "run_due",
]

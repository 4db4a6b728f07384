"""Poll accepted tasks: one poller at a time per task, backoff with jitter, STALE past a deadline.

A round polls its records one after another, each claimed just before its GET (claim.lua,
fenced, re-scores its schedule entry, never pops it; a record whose next poll is not due, asked
for again by a repeated message, is left alone) and released right after it: a slow Registry
lengthens the round, never one claim past its TTL (`flow/claims.py`). Each poll asks for the task
without receipts, and then either writes the next poll at once (backoff with jitter up to
`poll_cap_ms`; past `poll_deadline_ms` since acceptance the task is STALE and polled every
`poll_slow_cap_ms`, keeping its locks), which releases the claim, or, on a terminal status,
fetches the receipts once (renewing the claim first when it has run long) and records the
outcome. An error that pauses the source (`flow/pausing.py`) is recorded as a pause too; an auth
pause stops polls, the rest of the round included (left unclaimed), and once it ends a single
poll tries the key again (its probe).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog

from api_client import IssuedBy, RegistryError, TaskRef
from api_client.models import TaskState
from worker.flow.claims import Renewal, claim_one
from worker.flow.counts import PollResult
from worker.flow.deps import Deps
from worker.flow.pausing import pause_source, poll_gate, resume_source
from worker.flow.readback import ReadAgain, give_up_all, poison_reason, resolve_unknown
from worker.flow.recover import keep_claim, load_or_park
from worker.flow.submit import Step, nudge_ready, record_answer, record_resolution
from worker.pauses import PauseKind
from worker.store.records import ClaimedRecord

__all__ = ["next_poll_delay_ms", "poll"]

_log = structlog.get_logger("worker.pipeline")


_BULK_ISSUERS = frozenset({IssuedBy.RESOURCES_BULK.value, IssuedBy.RELATIONSHIPS_BULK.value})


def next_poll_delay_ms(deps: Deps, polls: int, *, stale: bool, bulk: bool = False) -> int:
    """The wait before the next poll: exponential from `poll_first_ms` (`bulk_poll_first_ms`
    for a bulk task), capped, jittered into its upper half; the slow cap once stale."""
    settings = deps.settings
    if stale:
        return settings.poll_slow_cap_ms
    ceiling = settings.first_poll_ms(bulk=bulk) * settings.poll_multiplier ** min(polls, 64)
    ceiling = min(float(settings.poll_cap_ms), ceiling)
    return max(1, int(deps.rng.uniform(ceiling / 2, ceiling)))


def _repoll(deps: Deps, record: ClaimedRecord, status: str, error: str = "") -> dict[str, Any]:
    now = deps.now_ms()
    stale = record.stale or now - record.sent_at > deps.settings.poll_deadline_ms
    bulk = record.issued_by in _BULK_ISSUERS
    delay = next_poll_delay_ms(deps, record.polls, stale=stale, bulk=bulk)
    return {
        "op": "repoll",
        "id": record.bundle_id,
        "fence": record.fence,
        "at": now + delay,
        "stale": stale,
        "status": status,
        "err": error[:500],
    }


def _give_up(
    deps: Deps, source: str, record: ClaimedRecord, reason: str, result: PollResult
) -> None:
    """Poison: keep what the Registry shows applied, dead-letter the rest (never left stuck)."""
    _log.error("poll.poison", source=source, bundle=record.bundle_id, task=record.task_id)
    claimed = load_or_park(deps, source, record, result)
    if claimed is None:
        return
    decided = resolve_unknown(
        deps,
        source,
        claimed.plan,
        sending_at_ms=0,
        give_up=reason,
        keep_claim=lambda: keep_claim(deps, source, claimed),
    )
    if isinstance(decided, ReadAgain):
        decided = give_up_all(claimed.plan, reason)
    record_resolution(deps, source, claimed, decided, result)


def poll(deps: Deps, source: str, bundle_ids: Sequence[str]) -> PollResult:
    """Poll the tasks of these bundles of one source (the ticker's due polls), one at a time."""
    result = PollResult()
    gate = poll_gate(deps, source)
    if gate == "paused":
        return result  # an auth pause: the entries come due again after the ticker's lease
    for bundle_id in bundle_ids:
        record = claim_one(deps, source, bundle_id, "poll", result)
        if record is None:
            continue
        give_up = poison_reason(deps, record.recoveries, "polling")
        if give_up is not None:
            _give_up(deps, source, record, give_up, result)
            continue
        result.polled += 1
        try:
            state = _task_state(deps, source, record)
        except (RegistryError, ValueError) as exc:
            result.errors += 1
            pause = pause_source(deps, source, exc) if isinstance(exc, RegistryError) else None
            _write_repoll(deps, source, _repoll(deps, record, "", f"{type(exc).__name__}: {exc}"))
            if pause is not None and PauseKind(pause.kind).stops_polls:
                break  # the rest of the round wait, unasked and unclaimed, for the pause's end
            continue
        if gate == "probe":
            gate = "open"
            resume_source(deps, source)
        if not state.is_terminal:
            item = _repoll(deps, record, str(state.status))
            result.pending += 1
            result.stale += 1 if item["stale"] and not record.stale else 0
            if not _write_repoll(deps, source, item):
                result.lost_claim += 1
            continue
        claimed_bundle = load_or_park(deps, source, record, result)
        if claimed_bundle is None:
            continue
        step = record_answer(deps, source, claimed_bundle, state, result, polled=True)
        if step is Step.UNKNOWN:  # receipts that did not match, and the read-back failed
            item = _repoll(deps, record, str(state.status), "read-back failed")
            if not _write_repoll(deps, source, item):
                result.lost_claim += 1
    nudge_ready(deps, source, result.ready)
    return result


def _task_state(deps: Deps, source: str, record: ClaimedRecord) -> TaskState:
    """The task's state; with its receipts when it is terminal (the claim renewed before that
    second request when it has run long). A bulk task polled before is asked for its receipts
    at once: it is most likely done, and that saves a request per task."""
    claim = [(record.bundle_id, record.fence or 0)]
    renewal = Renewal(deps, lambda: deps.store.renew(source, claim, deps.now_ms()))
    issuer = IssuedBy(record.issued_by) if record.issued_by else None
    ref = TaskRef(source, record.task_id, issuer)
    if record.polls and record.issued_by in _BULK_ISSUERS:
        return deps.client.get_task_state(ref, with_receipts=True)
    state = deps.client.get_task_state(ref)
    if state.is_terminal:
        renewal()
        state = deps.client.get_task_state(ref, with_receipts=True)
    return state


def _write_repoll(deps: Deps, source: str, item: dict[str, Any]) -> bool:
    """Write the next poll at once: the claim is released with it (False: it was lost)."""
    return deps.store.mark(source, [item], deps.now_ms())[0]

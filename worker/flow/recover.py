"""Recover bundle records whose claim expired, or whose retry or read-back time came.

Per state (docs/pipeline.md section 6, docs/reliability.md):
- `planned`: nothing was sent (or it was certainly not processed), or it has just become ready
  (the bundles it followed are recorded): claim it and submit it.
- `waiting`: a stray entry (it is sent once the bundles it follows are recorded): dropped.
- `sending`: the request may have been applied and the answer is lost (the worker died, or the
  client reported the outcome unknown): read the entities back (`flow/readback.py`), then record
  what applied and send the rest again, or read again later.
- `sent`: the poll schedule owns it (its claims entry is dropped, its poll kept).
- `recorded`, or no record: its schedule entries are dropped.

A record whose claimants were found gone (their claims expired, never renewed) more than
`max_bundle_recoveries` times in a row is poison: a `planned` one is dead-lettered whole; a
`sending` one keeps what the read-back finds applied and dead-letters the rest. Each record of a
round is claimed just before it is worked on (`flow/claims.py`), and one whose entry is not due
(a repeated message, or a retry time not come) is left alone.
"""

from __future__ import annotations

import contextvars
from collections import deque
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait

import structlog

from worker.flow.claims import Renewal, claim_one
from worker.flow.counts import RecoverResult, SubmitCounts
from worker.flow.deps import Deps
from worker.flow.layout import LayoutError, Sendable, rebuild_bundle, sendable_event_ids
from worker.flow.readback import ReadAgain, give_up_all, poison_reason, resolve_unknown
from worker.flow.submit import (
    Claimed,
    Step,
    mark_unknown,
    nudge_ready,
    record_resolution,
    submit_claimed,
)
from worker.store.codec import event_from_mapping
from worker.store.records import ClaimedRecord

__all__ = ["keep_claim", "load_claimed", "load_or_park", "recover", "send_in_order"]

_log = structlog.get_logger("worker.pipeline")


def load_claimed(deps: Deps, source: str, record: ClaimedRecord) -> Claimed:
    """The claimed bundle rebuilt from its stored layout and its events as stored (their data
    never decoded). A layout written by a checked plan is not checked again; one a trim
    rewrote is, before sending.

    Raises:
        LayoutError: an event body is missing or the layout cannot be read.
    """
    if record.fence is None:
        raise LayoutError("the record is not claimed")
    stored = deps.store.read_events(source, record.event_ids)
    try:
        events = {e.event_id: event_from_mapping(e.body, e.content) for e in stored}
    except ValueError as exc:
        raise LayoutError(str(exc)) from None
    plan = rebuild_bundle(record.layout, events)
    checked = not record.trimmed
    return Claimed(record.bundle_id, record.fence, plan, record.attempts, validated=checked)


def keep_claim(deps: Deps, source: str, claimed: Claimed) -> None:
    """Extend this worker's claim on the record (a long read-back)."""
    deps.store.renew(source, [(claimed.bundle_id, claimed.fence)], deps.now_ms())


def load_or_park(
    deps: Deps, source: str, record: ClaimedRecord, counts: SubmitCounts
) -> Claimed | None:
    """The claimed bundle; None once a record whose layout cannot be read is parked."""
    try:
        return load_claimed(deps, source, record)
    except LayoutError as exc:
        _log.error("bundle.layout_unreadable", source=source, bundle=record.bundle_id)
        if record.fence is not None:
            deps.store.park(
                source, record.bundle_id, record.fence, error=str(exc), now_ms=deps.now_ms()
            )
            counts.parked += 1
        return None


def _read_back(
    deps: Deps, source: str, record: ClaimedRecord, claimed: Claimed, result: RecoverResult
) -> None:
    give_up = poison_reason(deps, record.recoveries, "sending")
    decided = resolve_unknown(
        deps,
        source,
        claimed.plan,
        sending_at_ms=record.sending_at,
        give_up=give_up,
        keep_claim=lambda: keep_claim(deps, source, claimed),
    )
    if isinstance(decided, ReadAgain):
        mark_unknown(deps, source, claimed, decided.delay_ms, decided.why, result)
        return
    result.read_back += 1
    record_resolution(deps, source, claimed, decided, result)


def recover(deps: Deps, source: str, bundle_ids: Sequence[str]) -> RecoverResult:
    """Recover these bundles of one source (expired claims, retries and read-backs come due),
    each claimed just before it is worked on (`flow/claims.py`); one whose entry is not due
    (a repeated message, or a retry time not come) is left alone. The `planned` ones claimed
    together are sent together (`send_in_order`), before any read-back that follows them."""
    result = RecoverResult()
    ready: deque[Claimed] = deque()
    for bundle_id in bundle_ids:
        record = claim_one(deps, source, bundle_id, "recover", result)
        if record is None:
            continue
        result.claimed += 1
        if record.state not in ("planned", "sending"):
            continue
        claimed = load_or_park(deps, source, record, result)
        if claimed is None:
            continue
        if record.state == "sending":
            send_in_order(deps, source, ready, {}, result)  # a read-back may take long
            _read_back(deps, source, record, claimed, result)
            continue
        give_up = poison_reason(deps, record.recoveries, "submitting")
        if give_up is not None:
            _log.error("bundle.poison", source=source, bundle=record.bundle_id)
            record_resolution(deps, source, claimed, give_up_all(claimed.plan, give_up), result)
            continue
        result.resubmitted += 1
        ready.append(claimed)
    send_in_order(deps, source, ready, {}, result)
    nudge_ready(deps, source, result.ready)
    return result


def send_in_order(
    deps: Deps,
    source: str,
    own: deque[Claimed],
    waiting: dict[str, Sendable],
    counts: SubmitCounts,
) -> None:
    """Send these claimed bundles, up to `send_concurrency` at once, then those of `waiting`
    (bundles planned here, kept in memory) that become ready meanwhile, and the bundles that take
    the place of a recorded one (its events sent again, planned again here); renew the claims of
    those still waiting their turn (`claims.Renewal`). Other bundles that become ready are nudged
    to any worker (and left out of `counts.ready`).

    Bundles that are ready at the same time share no entity: commit.lua and record.lua make a
    bundle ready only once everything it follows is recorded, so none of them waits for another
    in flight. Each is sent in its own thread with its own counts, added here as it ends; an
    error in one stops new sends, lets those in flight end, hands the rest back (`_hand_back`),
    and is raised.
    """
    limit = deps.settings.send_concurrency
    flying: dict[Future[Step], tuple[Claimed, SubmitCounts]] = {}

    def held() -> list[tuple[str, int]]:
        claims = [*own, *(claimed for claimed, _ in flying.values())]
        return [(b.bundle_id, b.fence) for b in claims]

    renewal = Renewal(deps, lambda: deps.store.renew(source, held(), deps.now_ms()))
    failure: BaseException | None = None
    made_ready: list[str] = []
    """After an error: the bundles that the sends still in flight made ready."""
    while own or flying:
        while own and failure is None and len(flying) < limit:
            renewal()
            claimed = own.popleft()
            mine = SubmitCounts()
            context = contextvars.copy_context()
            future = deps.senders().submit(context.run, submit_claimed, deps, source, claimed, mine)
            flying[future] = (claimed, mine)
        if not flying:
            break
        done, _ = wait(flying, return_when=FIRST_COMPLETED)
        for future in done:
            _, mine = flying.pop(future)
            error = future.exception()
            if error is not None:
                failure = failure or error
                continue
            if failure is None:
                _take_over(deps, source, mine, own, waiting, counts)
            else:
                counts.add(mine)
                made_ready.extend(mine.ready)
    if failure is not None:
        _hand_back(deps, source, own, made_ready)
        raise failure


def _hand_back(deps: Deps, source: str, own: Sequence[Claimed], ready: Sequence[str]) -> None:
    """After an error, the claimed bundles not sent are released, due now, and they and the
    bundles that the sends in flight made ready are nudged to any worker.

    Why: kept claimed, they waited out the claim TTL (`claim_ttl_ms`, two minutes by default)
    before recovery took them. Best effort: when Redis or the broker is what failed, this fails
    too, and the claims expire as before; the error raised is the first one either way.
    """
    try:
        if own:
            deps.store.release_claims(source, [(c.bundle_id, c.fence) for c in own], deps.now_ms())
        nudge_ready(deps, source, [*(c.bundle_id for c in own), *ready])
    except Exception:
        _log.warning("bundle.hand_back_failed", source=source, bundles=len(own) + len(ready))


def _take_over(
    deps: Deps,
    source: str,
    mine: SubmitCounts,
    own: deque[Claimed],
    waiting: dict[str, Sendable],
    counts: SubmitCounts,
) -> None:
    """Add one submission's counts, and queue the bundles of `waiting` it made ready (claimed
    here); nudge the others it made ready to any worker."""
    counts.add(mine)
    waiting.update(mine.replanned)
    mine_ready = [b for b in mine.ready if b in waiting]
    others = [b for b in mine.ready if b not in waiting]
    if others:
        nudge_ready(deps, source, others)
    if not mine_ready:
        return
    for record in deps.store.claim(source, mine_ready, deps.now_ms(), "recover"):
        if record.code != "ok" or record.fence is None:
            continue
        plan = waiting.pop(record.bundle_id)
        if record.event_ids == sendable_event_ids(plan):
            own.append(Claimed(record.bundle_id, record.fence, plan, validated=True))
            continue
        # trimmed while it waited (what it followed sent events back): rebuilt from its record
        rebuilt = load_or_park(deps, source, record, counts)
        if rebuilt is not None:
            own.append(rebuilt)

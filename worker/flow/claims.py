"""Claiming one record at a time, and keeping the claim while its worker works on it.

A round (a poll or a recovery message: up to `tick_batch` records) claims each record just before
working on it, never the whole round at once: a claim then covers one record's work (one or two
Registry requests, or a read-back that renews it), not a round whose length grows with the number
of records and the Registry's latency. So a claim that expires means its claimant stopped working
(it died, or hung past the claim TTL), which is what claim.lua counts towards the poison cap; a
worker killed mid-round leaves at most the one record it was working on; and the records of a
round it had not reached yet are not claimed, so another worker takes them when the ticker hands
them out again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, Protocol

import structlog

from worker.flow.deps import Deps
from worker.store.records import ClaimedRecord

__all__ = ["ClaimCounts", "Renewal", "claim_one"]

_log = structlog.get_logger("worker.pipeline")


class ClaimCounts(Protocol):
    """The counts a round keeps of the claims it could not take."""

    busy: int
    early: int


def claim_one(
    deps: Deps,
    source: str,
    bundle_id: str,
    mode: Literal["recover", "poll"],
    counts: ClaimCounts,
) -> ClaimedRecord | None:
    """Claim one record for this worker; None when it is not to be worked on now.

    `busy`: another worker holds it. `early`: its schedule entry is not due (a repeated or late
    message: the work it asked for was done, or waits for its retry time); nothing is done.
    """
    (record,) = deps.store.claim(source, [bundle_id], deps.now_ms(), mode)
    if record.code == "busy":
        counts.busy += 1
    elif record.code == "early":
        counts.early += 1
        _log.debug("claim.not_due", source=source, bundle=bundle_id, mode=mode)
    if record.code != "ok" or record.fence is None:
        return None
    return record


class Renewal:
    """Renews a claim, when called, once it has run long enough since it was taken or renewed.

    Call it before each request made under the claim. It renews every third of the claim TTL,
    sooner when the HTTP deadline leaves less: the claim always outlives the request that
    follows the call (the settings keep the deadline below the claim TTL).

    Args:
        deps: the process's dependencies (settings and clock).
        renew: extends the claim (a fenced `renew`).
    """

    def __init__(self, deps: Deps, renew: Callable[[], object]) -> None:
        settings = deps.settings
        ttl = settings.claim_ttl_ms
        self._every = max(1, min(ttl // 3, ttl - int(settings.http_deadline_s * 1000)))
        self._deps = deps
        self._renew = renew
        self._renewed = deps.now_ms()

    def __call__(self) -> None:
        now = self._deps.now_ms()
        if now - self._renewed >= self._every:
            self._renew()
            self._renewed = now

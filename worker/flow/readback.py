"""Resolve a bundle whose outcome is unknown by reading its entities back (docs/reliability.md).

A record stays `sending`, its entity locks held, from the moment a request may have been applied
until the read-back decides (`domain.readback`): the first read-back comes `readback_interval_ms`
after the client reported the outcome unknown, or once the claim of a worker that died mid-request
expires (the ticker finds it). Until `readback_settle_ms` has passed since the request left, a
read-back that does not find everything applied is repeated; after it, what applied is recorded and
the rest goes back to the ready log, flagged, to be sent again. A read that fails (throttled,
unreachable) is repeated too, and may pause the source like any answer.

Work whose claimant keeps dying (`max_bundle_recoveries`) is poison: what the read-back finds
applied is recorded, the rest is dead-lettered with the type POISON instead of sent again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog

from api_client import NotFoundError, RegistryError
from api_client.models import Action
from worker.domain.keys import EntityKey, ResourceKey
from worker.domain.ops import PlannedOp
from worker.domain.outcomes import Outcomes
from worker.domain.readback import (
    Resolution,
    Seen,
    answered_as_applied,
    given_up,
    op_applied,
    resolve,
    submission_ops,
)
from worker.domain.receipts import Answer, Submission
from worker.flow.claims import Renewal
from worker.flow.deps import Deps
from worker.flow.pausing import pause_source

__all__ = [
    "ReadAgain",
    "give_up_all",
    "poison_reason",
    "read_back",
    "resolve_unknown",
    "told_apart",
]

_log = structlog.get_logger("worker.pipeline")


def read_entity(deps: Deps, source: str, key: EntityKey) -> Seen:
    """One entity as the Registry holds it now, None when absent.

    Raises:
        RegistryError: the read itself failed (throttled, unreachable, refused).
    """
    try:
        if isinstance(key, ResourceKey):
            found = deps.client.get_resource(source, key.type, key.id)
            return found.model_dump(mode="json", by_alias=True, exclude_none=True)
        relationship = deps.client.get_relationship(source, key.type, f"{key.from_id}.{key.to_id}")
        return relationship.model_dump(mode="json", by_alias=True, exclude_none=True)
    except NotFoundError:
        return None


def read_back(
    deps: Deps,
    source: str,
    ops: Sequence[PlannedOp],
    *,
    stop_at_missing: bool = False,
    keep_claim: Callable[[], object] | None = None,
) -> dict[EntityKey, Seen] | None:
    """Every operation's entity as the Registry holds it now, one GET each, in request order.

    With `stop_at_missing`, None as soon as one operation is not applied: while the settle time
    runs, one missing operation is enough to read again later, and a bundle of hundreds of
    operations costs one GET per read-back instead of hundreds. `keep_claim` is called every
    third of the claim TTL (`flow.claims.Renewal`), so a long read-back (a large bulk request)
    keeps its record.
    """
    seen: dict[EntityKey, Seen] = {}
    renewal = Renewal(deps, keep_claim) if keep_claim is not None else None
    for op in ops:
        if renewal is not None:
            renewal()
        seen[op.key] = read_entity(deps, source, op.key)
        if stop_at_missing and not op_applied(op, seen[op.key]):
            return None
    return seen


def poison_reason(deps: Deps, recoveries: int, what: str) -> str | None:
    """Why this work is given up, once its claimant was found gone more than the cap allows."""
    cap = deps.settings.max_bundle_recoveries
    if recoveries <= cap:
        return None
    return f"poison: the worker {what} it stopped {recoveries} times (max_bundle_recoveries {cap})"


@dataclass(frozen=True)
class ReadAgain:
    """Not decided yet: read back again after `delay_ms`, for this reason."""

    delay_ms: int
    why: str


def resolve_unknown(
    deps: Deps,
    source: str,
    submission: Submission,
    *,
    sending_at_ms: int,
    give_up: str | None,
    keep_claim: Callable[[], object] | None = None,
) -> Resolution | ReadAgain:
    """Read the entities of a submission whose outcome is unknown back, and decide."""
    ops = submission_ops(submission)
    settled = deps.now_ms() - sending_at_ms >= deps.settings.readback_settle_ms
    waiting = not settled and give_up is None
    try:
        seen = read_back(deps, source, ops, stop_at_missing=waiting, keep_claim=keep_claim)
    except RegistryError as exc:
        pause_source(deps, source, exc)
        return ReadAgain(deps.settings.readback_interval_ms, f"read-back failed: {exc}")
    resolution = None if seen is None else resolve(ops, seen, settled=settled, give_up=give_up)
    if resolution is None:
        return ReadAgain(
            deps.settings.readback_interval_ms,
            "outcome unknown: not everything sent is in the Registry yet; reading back again",
        )
    _log.info(
        "bundle.read_back",
        source=source,
        events=len(resolution.outcomes.outcomes),
        resent=len(resolution.resent),
        given_up=give_up is not None,
    )
    return resolution


def give_up_all(submission: Submission, reason: str) -> Resolution:
    """Every event of a submission that was never sent, FAILED as poison."""
    return Resolution(Outcomes(tuple(given_up(submission_ops(submission), reason))), frozenset())


def told_apart(
    deps: Deps, source: str, submission: Submission, answer: Answer
) -> tuple[frozenset[EntityKey], frozenset[EntityKey]]:
    """Refusals that mean "already applied" for events sent again after a read-back.

    Returns:
        (operations to read as applied, operations to retry because the entity could not be
        read to tell); both empty unless the answer holds such a refusal.
    """
    candidates = answered_as_applied(submission, answer)
    if not candidates:
        return frozenset(), frozenset()
    flagged = deps.store.resent_events(source, [op.carrier.event_id for op in candidates])
    applied: set[EntityKey] = set()
    untold: set[EntityKey] = set()
    for op in candidates:
        if op.carrier.event_id not in flagged:
            continue
        if op.action is Action.DELETE:
            applied.add(op.key)
            continue
        try:
            seen = read_entity(deps, source, op.key)
        except RegistryError:
            untold.add(op.key)
            continue
        if op_applied(op, seen):
            applied.add(op.key)
    return frozenset(applied), frozenset(untold)

"""Bisecting a bundle refused as a whole without receipts, before anything is dead-lettered.

A 400 or 413 that names no operation says only "something in here is wrong". The bundle's units
(operations, or whole atomic batches) are split in two halves, sent one after the other; the half
that fails is split again, down to `max_depth` (invariant 5). The split keeps order: a relationship
operation goes in the second half whenever one of its ends is written there (inside one bundle the
resource went first, so the relationship must not run before it). At the bottom, a single event
is FAILED with the request's error, a merged operation is UNMERGED (its events are re-planned
alone), and anything left when the depth runs out is FAILED.
"""

from __future__ import annotations

from dataclasses import dataclass

from api_client.models import ErrorBody
from worker.domain.coalesce import Fate
from worker.domain.keys import RelationshipKey, ResourceKey
from worker.domain.ops import PlannedOp
from worker.domain.outcomes import EventOutcome, OpRef, Outcomes
from worker.domain.plan import BundlePlan


@dataclass(frozen=True)
class Bisection:
    """Either halves to send in order (each as its own bundle), or outcomes decided now."""

    halves: tuple[tuple[PlannedOp, ...], ...]
    outcomes: Outcomes

    @property
    def split(self) -> bool:
        """Whether the bundle was split (send `halves`, each at depth + 1)."""
        return bool(self.halves)


def _units(bundle: BundlePlan) -> list[tuple[PlannedOp, ...]]:
    units: list[list[PlannedOp]] = []
    batch_unit: dict[str, int] = {}
    for op in bundle.ops:
        batch = op.atomic_batch
        if batch is not None and batch in batch_unit:
            units[batch_unit[batch]].append(op)
            continue
        if batch is not None:
            batch_unit[batch] = len(units)
        units.append([op])
    return [tuple(unit) for unit in units]


def _written(units: list[tuple[PlannedOp, ...]]) -> set[ResourceKey]:
    return {op.key for unit in units for op in unit if isinstance(op.key, ResourceKey)}


def _reads(unit: tuple[PlannedOp, ...]) -> set[ResourceKey]:
    return {end for op in unit if isinstance(op.key, RelationshipKey) for end in op.key.endpoints}


def _halves(
    units: list[tuple[PlannedOp, ...]],
) -> tuple[list[tuple[PlannedOp, ...]], list[tuple[PlannedOp, ...]]]:
    first, second = units[: len(units) // 2], units[len(units) // 2 :]
    moved = True
    while moved:
        moved = False
        written_later = _written(second)
        for unit in list(first):
            if _reads(unit) & written_later:
                first.remove(unit)
                second.insert(0, unit)
                moved = True
    if not first:  # everything read a later write: send resource-only units first
        first = [u for u in units if not _reads(u)]
        second = [u for u in units if _reads(u)]
    return first, second


def _decided(bundle: BundlePlan, error: ErrorBody, reason: str) -> Outcomes:
    outcomes: list[EventOutcome] = []
    ops = list(bundle.ops)
    merged_alone = len(ops) == 1 and len(ops[0].events) > 1 and ops[0].atomic_batch is None
    for position, op in enumerate(ops):
        target = op.target
        index = (
            position if position < len(bundle.resource_ops) else position - len(bundle.resource_ops)
        )
        ref = OpRef(bundle.index, target, index)
        for planned in op.events:
            fate = Fate.UNMERGED if merged_alone else Fate.FAILED
            outcomes.append(EventOutcome(planned.event_id, fate, ref, error, reason=reason))
    return Outcomes(tuple(outcomes))


def bisect_refused(
    bundle: BundlePlan, error: ErrorBody, *, depth: int, max_depth: int
) -> Bisection:
    """What to do with a bundle the Registry refused as a whole, naming no operation.

    Args:
        bundle: the refused bundle.
        error: the request's error (kept on every event dead-lettered for it).
        depth: how many times this bundle's events have been bisected already.
        max_depth: the bound; at it, every event left is FAILED.
    """
    units = _units(bundle)
    if depth >= max_depth and len(units) > 1:
        reason = f"refused as a whole; bisection stopped at depth {max_depth}"
        return Bisection((), _decided(bundle, error, reason))
    if len(units) > 1:
        first, second = _halves(units)
        if first and second:
            halves = tuple(tuple(op for unit in half for op in unit) for half in (first, second))
            return Bisection(halves, Outcomes(()))
    reason = "refused as a whole, alone"
    return Bisection((), _decided(bundle, error, reason))

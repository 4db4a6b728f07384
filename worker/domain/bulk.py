"""Bulk planning: backfills split into resource and relationship bulk requests, in order.

A bulk request holds resources or relationships, never both; its operations are processed in
order, each atomic on its own (a failure cancels nothing else). Events published in bulk mode are
coalesced by the same table as bundles (`ordering.build_units`), and each operation goes in the
earliest request of its kind that comes strictly after every request it depends on: successive
operations on one entity, a relationship after the writes of its ends published before it, and a
write of an end after the relationships published before it. One operation per entity per
request, so nothing relies on how the Registry orders repeated ids. Requests are submitted one
after another, each once the previous task is terminal and recorded.

Atomic batches have no meaning in bulk (nothing is all-or-nothing there); such events are refused.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Final

from api_client.models import RelationshipBulkRequest, ResourceBulkRequest, dump_json
from worker.domain.coalesce import CoalesceMode
from worker.domain.events import ChangeEvent, Target
from worker.domain.keys import EntityKey, ResourceKey
from worker.domain.ops import PlannedOp
from worker.domain.ordering import PlanInputError, earliest_slot, unmerge_unfit
from worker.domain.plan import PlanError, Rejection
from worker.domain.plan_check import op_problems, order_problems

EMPTY_BULK_BYTES: Final = len(dump_json(ResourceBulkRequest(operations=[])))
"""The bytes of `{"operations":[]}`; each operation adds its own bytes and a comma."""


@dataclass(frozen=True)
class BulkCaps:
    """Limits of one bulk request (the documented cap is 5 GB; memory wants far less)."""

    max_operations: int = 10_000
    max_bytes: int = 50_000_000

    def __post_init__(self) -> None:
        if self.max_operations < 1:
            raise ValueError("BulkCaps.max_operations: must be at least 1")
        if self.max_bytes <= EMPTY_BULK_BYTES:
            raise ValueError(f"BulkCaps.max_bytes: must be more than {EMPTY_BULK_BYTES}")


@dataclass(frozen=True)
class BulkRequestPlan:
    """One bulk request: its kind, its operations in order, and the body to send."""

    index: int
    target: Target
    ops: tuple[PlannedOp, ...]
    body: bytes
    """The request exactly as sent."""

    @property
    def size_bytes(self) -> int:
        """The bytes of the request sent."""
        return len(self.body)

    @cached_property
    def request(self) -> ResourceBulkRequest | RelationshipBulkRequest:
        """The request as the client's model (parsed from its body; off the hot path)."""
        if self.target is Target.RESOURCE:
            return ResourceBulkRequest.model_validate_json(self.body)
        return RelationshipBulkRequest.model_validate_json(self.body)

    @property
    def resource_ops(self) -> tuple[PlannedOp, ...]:
        """The operations, when this is a resource request."""
        return self.ops if self.target is Target.RESOURCE else ()

    @property
    def relationship_ops(self) -> tuple[PlannedOp, ...]:
        """The operations, when this is a relationship request."""
        return self.ops if self.target is Target.RELATIONSHIP else ()


@dataclass(frozen=True)
class BulkPlan:
    """Bulk requests for one source, in submission order, and the events none can carry."""

    source: str
    mode: CoalesceMode
    requests: tuple[BulkRequestPlan, ...]
    rejected: tuple[Rejection, ...] = ()


@dataclass
class _Request:
    target: Target
    ops: list[PlannedOp] = field(default_factory=list)
    size: int = EMPTY_BULK_BYTES

    def fits(self, op: PlannedOp, caps: BulkCaps) -> bool:
        added = op.size_bytes + (1 if self.ops else 0)
        return len(self.ops) < caps.max_operations and self.size + added <= caps.max_bytes


def bulk_body(target: Target, ops: Sequence[PlannedOp]) -> bytes:
    """The body sending `ops`, all of one kind, in order: their bytes joined.

    Raises:
        TypeError: an operation of the other kind.
    """
    resource = target is Target.RESOURCE
    if any(isinstance(op.key, ResourceKey) is not resource for op in ops):
        other = "relationship" if resource else "resource"
        raise TypeError(f"a {other} operation in a {target.value} bulk request")
    return b'{"operations":[' + b",".join(op.wire for op in ops) + b"]}"


def plan_bulk(
    events: Sequence[ChangeEvent],
    *,
    caps: BulkCaps = BulkCaps(),
    mode: CoalesceMode = CoalesceMode.SUPERSEDE,
    no_merge: Collection[str] = frozenset(),
) -> BulkPlan:
    """Plan bulk requests for `events` (one source, publish order).

    Raises:
        PlanInputError: no events, mixed sources, repeated event ids, or an atomic batch.
    """
    if not events:
        raise PlanInputError("events: nothing to plan")
    if any(event.atomic_batch is not None for event in events):
        raise PlanInputError("atomicBatch: bulk requests are not atomic; send batches in bundles")
    ids = [event.event_id for event in events]
    if len(set(ids)) != len(ids):
        raise PlanInputError("events: an event id appears twice (deduplicate at publish)")
    requests: list[_Request] = []
    request_of: dict[int, int] = {}
    floor_of: dict[int, int] = {}
    rejected: list[Rejection] = []
    units = unmerge_unfit(
        events, mode=mode, no_merge=no_merge, fits=lambda op: _Request(op.target).fits(op, caps)
    )
    for index, unit in enumerate(units):
        (op,) = unit.ops
        floor = earliest_slot([(p, True) for p, _ in unit.preds], request_of, floor_of)
        if not _Request(op.target).fits(op, caps):
            needed = EMPTY_BULK_BYTES + op.size_bytes
            reason = f"the operation needs {needed} bytes; the limit is {caps.max_bytes}"
            rejected.append(Rejection(op.events, reason))
            floor_of[index] = floor
            continue
        chosen = next(
            (
                r
                for r in range(floor, len(requests))
                if requests[r].target is op.target and requests[r].fits(op, caps)
            ),
            None,
        )
        if chosen is None:
            chosen = len(requests)
            requests.append(_Request(op.target))
        request = requests[chosen]
        request.size += op.size_bytes + (1 if request.ops else 0)
        request.ops.append(op)
        request_of[index] = chosen
    plans = []
    for index, request in enumerate(requests):
        body = bulk_body(request.target, request.ops)
        if len(body) != request.size:
            raise PlanError(
                [f"bulk request {index}: counted {request.size} bytes, sent {len(body)}"]
            )
        plans.append(BulkRequestPlan(index, request.target, tuple(request.ops), body))
    return BulkPlan(events[0].source_key, mode, tuple(plans), tuple(rejected))


def _request_problems(request: BulkRequestPlan, position: int, caps: BulkCaps) -> list[str]:
    where = f"bulk request {position}"
    problems: list[str] = []
    if request.index != position:
        problems.append(f"{where}: says it is request {request.index}")
    if not request.ops:
        problems.append(f"{where}: holds no operation")
    if len(request.ops) > caps.max_operations:
        count = len(request.ops)
        problems.append(f"{where}: {count} operations; the cap is {caps.max_operations}")
    size = len(request.body)
    if size > caps.max_bytes:
        problems.append(f"{where}: {size} bytes as sent; the cap is {caps.max_bytes}")
    try:
        if bulk_body(request.target, request.ops) != request.body:
            problems.append(f"{where}: the body does not hold exactly its planned operations")
    except TypeError as exc:
        problems.append(f"{where}: {exc}")
    keys: set[EntityKey] = set()
    for op in request.ops:
        if op.target is not request.target:
            problems.append(f"{where}: {op.key} is not a {request.target}")
        if op.key in keys:
            problems.append(f"{where}: two operations on {op.key}")
        keys.add(op.key)
        if op.atomic_batch is not None:
            problems.append(f"{where}: {op.key} carries an atomic batch event")
    return problems


def validate_bulk_plan(plan: BulkPlan, caps: BulkCaps) -> None:
    """Refuse a bulk plan that breaks a rule; call it before every submission.

    Raises:
        PlanError: naming every broken rule.
    """
    problems: list[str] = []
    seen: set[str] = set()
    for position, request in enumerate(plan.requests):
        problems.extend(_request_problems(request, position, caps))
        for index, op in enumerate(request.ops):
            where = f"bulk request {position} op {index} ({op.key})"
            problems.extend(op_problems(plan.source, plan.mode, op, where))
            for event_id in op.event_ids:
                if event_id in seen:
                    problems.append(f"event {event_id}: planned twice")
                seen.add(event_id)
    problems.extend(order_problems((r.index, op) for r in plan.requests for op in r.ops))
    if problems:
        raise PlanError(problems)

"""The plan validator: refuses any plan that breaks a rule, run before every submission.

It re-derives what it checks from the plan's own events, not from the planner's bookkeeping, so a
planner bug (or a hand-made plan) cannot pass by agreeing with itself:

- every bundle: at most one operation per resource and per relationship, the caps on operation
  count and on the bytes `dump_json` gives for the whole request, and a request that holds exactly
  the planned operations, resources first;
- every operation: built from its carrier event under the action the coalescing table gives for
  its events (one event each in STRICT mode), roles in order, every event on the operation's key,
  and a CREATE or UPSERT carrier naming every meta field its superseded events name;
- every event: in one operation at most, once;
- order: operations on one entity in successive bundles, in publish order; relationship and
  endpoint operations as rules A to D of docs/coalescing.md require; an atomic batch whole, in one
  bundle, never merged.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable, Iterator
from itertools import accumulate, pairwise

from api_client.models import Action
from worker.domain.coalesce import CoalesceMode, Role, coalesce_actions, meta_carried
from worker.domain.keys import EntityKey, RelationshipKey, key_of
from worker.domain.ops import PlannedOp, bundle_body, operation_json
from worker.domain.plan import Plan, PlanCaps, PlanError


def _bundle_problems(plan: Plan, caps: PlanCaps) -> Iterator[str]:
    for position, bundle in enumerate(plan.bundles):
        where = f"bundle {position}"
        if bundle.index != position:
            yield f"{where}: says it is bundle {bundle.index}"
        if not bundle.ops:
            yield f"{where}: holds no operation"
        if len(bundle.ops) > caps.max_operations:
            yield f"{where}: {len(bundle.ops)} operations; the cap is {caps.max_operations}"
        if len(bundle.body) > caps.max_bytes:
            yield f"{where}: {len(bundle.body)} bytes as sent; the cap is {caps.max_bytes}"
        if bundle.isolated and len(bundle.ops) != 1:
            yield f"{where}: isolated, yet holds {len(bundle.ops)} operations"
        try:
            expected = bundle_body(bundle.resource_ops, bundle.relationship_ops)
        except TypeError as exc:
            yield f"{where}: {exc}"
        else:
            if expected != bundle.body:
                yield f"{where}: the request does not hold exactly its planned operations"
        for name, ops, relationship in (
            ("resource", bundle.resource_ops, False),
            ("relationship", bundle.relationship_ops, True),
        ):
            seen: set[EntityKey] = set()
            for op in ops:
                if isinstance(op.key, RelationshipKey) != relationship:
                    yield f"{where}: {op.key} is in the {name} operations"
                if op.key in seen:
                    yield f"{where}: two operations on {op.key} (one per id per bundle)"
                seen.add(op.key)


def op_problems(source: str, mode: CoalesceMode, op: PlannedOp, where: str) -> Iterator[str]:
    """What is wrong with one planned operation (shared by bundle and bulk plans)."""
    if not op.events:
        yield f"{where}: carries no event"
        return
    if op.key.source != source:
        yield f"{where}: source {op.key.source} in a plan for {source}"
    if len(op.events) == 1:  # most operations: the same rules, without building lists
        yield from _single_problems(op, where)
        return
    roles = [e.role for e in op.events]
    if roles != [Role.SUPERSEDED] * (len(roles) - 1) + [Role.CARRIER]:
        yield f"{where}: roles must be superseded events then one carrier, last"
    positions = [e.position for e in op.events]
    if positions != sorted(set(positions)):
        yield f"{where}: events are not in publish order"
    for planned in op.events:
        if key_of(planned.event) != op.key:
            yield f"{where}: event {planned.event_id} writes another entity"
    segments = coalesce_actions([e.action for e in op.events], mode=mode)
    if len(segments) != 1 or segments[0].action is not op.action:
        yield f"{where}: the coalescing table does not merge these events into {op.action}"
    superseded = [e.event.meta for e in op.events[:-1]]
    if op.action is not Action.DELETE and not meta_carried(superseded, op.carrier.event.meta):
        yield f"{where}: a superseded event names meta its carrier does not (it would be lost)"
    if len(op.events) > 1 and any(e.event.atomic_batch for e in op.events):
        yield f"{where}: an atomic batch event is merged with another event"
    if operation_json(op.carrier.event, op.action, op.key) != op.wire:
        yield f"{where}: the operation is not its carrier's payload under {op.action}"


def _single_problems(op: PlannedOp, where: str) -> Iterator[str]:
    """`op_problems` for an operation of one event: its carrier, on its key, under its action."""
    (planned,) = op.events
    if planned.role is not Role.CARRIER:
        yield f"{where}: roles must be superseded events then one carrier, last"
    if key_of(planned.event) != op.key:
        yield f"{where}: event {planned.event_id} writes another entity"
    if planned.action is not op.action:
        yield f"{where}: the coalescing table does not merge these events into {op.action}"
    if operation_json(planned.event, op.action, op.key) != op.wire:
        yield f"{where}: the operation is not its carrier's payload under {op.action}"


def order_problems(placed: Iterable[tuple[int, PlannedOp]]) -> Iterator[str]:
    """Order rules between operations placed in numbered submissions (bundles or requests)."""
    located: dict[EntityKey, list[tuple[int, PlannedOp]]] = defaultdict(list)
    batches: dict[str, set[int]] = defaultdict(set)
    for index, op in placed:
        located[op.key].append((index, op))
        if op.atomic_batch is not None:
            batches[op.atomic_batch].add(index)
    for batch, bundles in batches.items():
        if len(bundles) > 1:
            yield f"atomic batch {batch}: split over bundles {sorted(bundles)}"
    for key, entries in located.items():
        if len(entries) < 2:
            continue  # most entities: one operation, nothing to compare
        entries.sort(key=lambda entry: entry[1].first_position)
        for (b1, op1), (b2, op2) in pairwise(entries):
            if op1.last_position > op2.first_position:
                yield f"{key}: two operations interleave their events"
            if b2 <= b1:
                yield f"{key}: the later operation is in bundle {b2}, not after bundle {b1}"
    ends: dict[EntityKey, _End] = {}
    for key, entries in located.items():
        if not isinstance(key, RelationshipKey):
            continue
        for rb, rel in entries:
            for end in key.endpoints:
                if end not in located:
                    continue
                if end not in ends:
                    ends[end] = _End(located[end])
                yield from ends[end].problems(rb, rel)


class _End:
    """The operations on one relationship end, indexed so that rules A-D cost a few bisections
    per relationship operation, however many operations the end has (a hot office).

    Each rule is about the end's operations on one side of a position: those that start before
    it (prefix, by first position), those that end after it (suffix, by last position), or the
    end's events strictly between two positions.
    """

    def __init__(self, entries: list[tuple[int, PlannedOp]]) -> None:
        by_first = sorted(entries, key=lambda entry: entry[1].first_position)
        self.firsts = [op.first_position for _, op in by_first]
        # up to each operation, by first position: the latest last position, the latest bundle
        self.last_before = list(accumulate((op.last_position for _, op in by_first), max))
        self.bundle_before = list(accumulate((bundle for bundle, _ in by_first), max))
        by_last = sorted(entries, key=lambda entry: entry[1].last_position)
        self.lasts = [op.last_position for _, op in by_last]
        # from each operation on, by last position: the earliest bundle
        self.bundle_after = list(accumulate((bundle for bundle, _ in reversed(by_last)), min))
        self.bundle_after.reverse()
        self.positions = sorted(e.position for _, op in entries for e in op.events)
        self.key = by_first[0][1].key

    def problems(self, rb: int, rel: PlannedOp) -> Iterator[str]:
        """Rules A-D between a relationship operation (in submission `rb`) and this end.

        Each operation on the end must hold only events published before the relationship's
        (then it goes in the same submission or an earlier one) or only events published after
        (then strictly later).
        """
        r_min, r_max = rel.first_position, rel.last_position
        where = f"{rel.key} and {self.key}"
        between = bisect_right(self.positions, r_min)
        if between < len(self.positions) and self.positions[between] < r_max:
            yield f"{where}: an end was written between two merged relationship events (rule B)"
        before_min = bisect_left(self.firsts, r_min) - 1
        if before_min >= 0 and self.last_before[before_min] > r_min:
            yield f"{where}: an end's operation merges events across the relationship (rule A)"
        before_max = bisect_left(self.firsts, r_max) - 1
        if before_max >= 0 and self.bundle_before[before_max] > rb:
            yield f"{where}: the end's operation holds an earlier event yet goes later (rule D)"
        after_min = bisect_right(self.lasts, r_min)
        if after_min < len(self.lasts) and self.bundle_after[after_min] <= rb:
            yield f"{where}: the end's later operation goes no later than the relationship (rule C)"


def validate_plan(plan: Plan, caps: PlanCaps) -> None:
    """Refuse a plan that breaks any rule; call it before every submission.

    Raises:
        PlanError: naming every broken rule (bundle, entity and reason; never payload data).
    """
    problems = list(_bundle_problems(plan, caps))
    seen: dict[str, str] = {}
    for bundle in plan.bundles:
        for index, op in enumerate(bundle.ops):
            where = f"bundle {bundle.index} op {index} ({op.key})"
            problems.extend(op_problems(plan.source, plan.mode, op, where))
            for event_id in op.event_ids:
                if event_id in seen:
                    problems.append(f"event {event_id}: in {seen[event_id]} and in {where}")
                seen[event_id] = where
    for rejection in plan.rejected:
        for planned in rejection.events:
            if planned.event_id in seen:
                problems.append(f"event {planned.event_id}: both rejected and planned")
            seen[planned.event_id] = "rejected"
    if plan.mode is CoalesceMode.STRICT and any(len(op.events) > 1 for op in plan.ops):
        problems.append("a STRICT plan merges events")
    problems.extend(order_problems((b.index, op) for b in plan.bundles for op in b.ops))
    if problems:
        raise PlanError(problems)

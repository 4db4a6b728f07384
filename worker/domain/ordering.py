"""From events in publish order to operations and the order they must keep.

One pass over the events applies the coalescing table per entity and records, between operations,
the order each placement must respect (docs/coalescing.md, "Rules between entities"):

- successive operations on one entity: strictly later bundle;
- a relationship operation, then an operation on one of its ends published after it: strictly
  later bundle (rule C);
- a resource operation, then a relationship on it: same bundle or later (rule D; resource
  operations run first inside a bundle);
- a relationship event closes the open operations of both its ends (rule A), and a resource event
  closes every open relationship operation on it (rule B): nothing merges across an event that
  reads or writes what the open operation depends on;
- an atomic batch is one unit, placed in one bundle, and its events never merge (rule E);
- a CREATE or UPSERT never supersedes an event that names meta it does not name itself
  (`coalesce.meta_carried`): a Registry that keeps a stored `createdAt` would keep it one by one.

The result is a list of units (one operation, or the operations of one atomic batch), each with its
predecessors, in an order where every predecessor comes first. The placement is in `plan.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

from api_client.models import Action, ErrorType
from worker.domain.coalesce import CoalesceMode, Role, merged_action, meta_carried, pair_rule
from worker.domain.events import ChangeEvent
from worker.domain.foresight import Foresight, KeyState, Prior
from worker.domain.keys import EntityKey, RelationshipKey, ResourceKey, key_of
from worker.domain.ops import PlannedEvent, PlannedOp, plan_op


class PlanInputError(ValueError):
    """Events the planner cannot take (mixed sources, a split or unorderable atomic batch)."""


@dataclass(frozen=True)
class Unit:
    """What placement moves as one piece: one operation, or the operations of an atomic batch.

    `preds` maps an earlier unit's index to whether this unit must go in a strictly later bundle
    (True) or may share its bundle (False).
    """

    ops: tuple[PlannedOp, ...]
    preds: tuple[tuple[int, bool], ...]
    atomic_batch: str | None = None

    @property
    def expected_error(self) -> ErrorType | None:
        """The error the table expects this single operation to meet (isolate it), if any."""
        return self.ops[0].expected_error if len(self.ops) == 1 else None


@dataclass
class _Node:
    key: EntityKey
    action: Action
    events: list[tuple[ChangeEvent, int]]
    batch: str | None
    closed: bool
    expected_error: ErrorType | None = None
    preds: dict[int, bool] = field(default_factory=dict)
    after_delete: bool = False
    """The entity's operation before this one is a DELETE: it starts from an absent entity."""
    prior: Prior | None = None
    """Why foresight expects it to fail (isolated only when that kind is trusted)."""
    first: bool = False
    """No earlier operation of the round on its entity: it starts from the stored state."""
    ends_reset: bool = False
    """A relationship whose end was created or deleted earlier in the round."""

    def add_pred(self, node: int, *, strict: bool) -> None:
        self.preds[node] = self.preds.get(node, False) or strict


class _Builder:
    def __init__(
        self,
        mode: CoalesceMode,
        no_merge: Collection[str],
        absent: Collection[str] = (),
        foresight: Foresight | None = None,
    ) -> None:
        self.mode = mode
        self.no_merge = no_merge
        self.absent = absent
        self.foresight = foresight
        self.reset: set[ResourceKey] = set()
        """Resources created or deleted earlier in the round: their old relationships are gone."""
        self.nodes: list[_Node] = []
        self.last_node: dict[EntityKey, int] = {}
        self.open_relationships: dict[ResourceKey, set[int]] = {}
        self.relationships_since: dict[ResourceKey, list[int]] = {}

    def add(self, event: ChangeEvent, position: int) -> None:
        key = key_of(event)
        previous = self.last_node.get(key)
        merged: Action | None = None
        mergeable = event.atomic_batch is None and event.event_id not in self.no_merge
        if previous is not None and mergeable:
            node = self.nodes[previous]
            if not node.closed:
                merged = merged_action(node.action, event.action, mode=self.mode)
            if merged is Action.DELETE and (node.after_delete or self._starts_absent(node)):
                # UPSERT+ DELETE of an entity deleted just before (or that foresight says is
                # absent): the merge is refused NOT_FOUND; sent apart, each event meets its fate
                # at once
                merged = None
            if event.action is not Action.DELETE and not meta_carried(
                (earlier.meta for earlier, _ in node.events), event.meta
            ):
                merged = None  # a superseded event's meta would be lost (docs/coalescing.md)
        if merged is not None and previous is not None:
            current = previous
            node = self.nodes[current]
            node.events.append((event, position))
            node.action = merged
        else:
            current = self._new_node(event, position, key, previous)
        if (
            self.foresight is not None
            and event.action is not Action.UPSERT
            and isinstance(key, ResourceKey)
            and not self._apart_to_fail(current)
        ):
            self.reset.add(key)
        self._cross_entity(key, current)

    def _new_node(
        self, event: ChangeEvent, position: int, key: EntityKey, previous: int | None
    ) -> int:
        current = len(self.nodes)
        node = _Node(
            key=key,
            action=event.action,
            events=[(event, position)],
            batch=event.atomic_batch,
            closed=event.atomic_batch is not None or event.event_id in self.no_merge,
        )
        if previous is not None:
            node.add_pred(previous, strict=True)
            self.nodes[previous].closed = True
            rule = pair_rule(self.nodes[previous].action, event.action)
            node.expected_error = rule.expected_error
            node.after_delete = self.nodes[previous].action is Action.DELETE
        elif self.absent:
            node.after_delete = str(key) in self.absent
        if self.foresight is not None:
            node.first = previous is None
            if isinstance(key, RelationshipKey):
                node.ends_reset = any(end in self.reset for end in key.endpoints)
            self._foresee(node, previous)
        if isinstance(key, ResourceKey):
            for relationship in self.relationships_since.pop(key, []):
                node.add_pred(relationship, strict=True)
        else:
            for end in key.endpoints:
                writer = self.last_node.get(end)
                if writer is not None:
                    node.add_pred(writer, strict=False)
                self.relationships_since.setdefault(end, []).append(current)
        self.nodes.append(node)
        self.last_node[key] = current
        return current

    def _apart_to_fail(self, current: int) -> bool:
        """Whether the node goes apart as an expected failure (the table's, as a CREATE after
        an UPSERT, or a trusted foresight's): refused, it resets nothing (a CREATE of a provider
        that exists leaves its relationships in place)."""
        return self.nodes[current].expected_error is not None

    def _starts_absent(self, node: _Node) -> bool:
        """Whether foresight says the node's entity is absent before it (known, or never seen
        while guesses are trusted): an UPSERT+ DELETE merged on it would be refused NOT_FOUND.
        Not merging is always the one-by-one outcome; it costs an operation, never a request."""
        foresight = self.foresight
        if foresight is None or not node.first:
            return False
        state = KeyState.ABSENT if node.ends_reset else foresight.state(node.key)
        return state is KeyState.ABSENT or (
            state is KeyState.UNSEEN and foresight.isolates(Prior.GUESS)
        )

    def _end_state(self, end: ResourceKey, foresight: Foresight) -> KeyState:
        writer = self.last_node.get(end)
        if writer is None:
            return foresight.state(end)
        return KeyState.ABSENT if self.nodes[writer].action is Action.DELETE else KeyState.EXISTS

    def _foresee(self, node: _Node, previous: int | None) -> None:
        """The refusal foresight expects for a new node: isolated, and closed to later events
        (merged into it they would be refused with it), when that kind is trusted."""
        foresight = self.foresight
        assert foresight is not None
        key = node.key
        ends: tuple[KeyState, ...] = ()
        if isinstance(key, ResourceKey):
            if previous is not None or node.action is Action.UPSERT:
                return  # the table decides in a round; an UPSERT never depends on the state
            state = foresight.state(key)
        else:
            ends = tuple(self._end_state(end, foresight) for end in key.endpoints)
            if previous is not None or node.action is Action.UPSERT:
                state = KeyState.UNSEEN  # only the ends are foreseen
            elif node.ends_reset:
                state = KeyState.ABSENT
            else:
                state = foresight.state(key)
        expected = foresight.expect(key, node.action, state, ends)
        if expected is None:
            return
        if previous is not None and expected.prior is Prior.GUESS:
            return
        node.prior = expected.prior
        if not foresight.isolates(expected.prior) or node.expected_error is not None:
            return
        node.expected_error = expected.error
        node.closed = True

    def _cross_entity(self, key: EntityKey, current: int) -> None:
        if isinstance(key, ResourceKey):
            for relationship in self.open_relationships.pop(key, set()):
                self.nodes[relationship].closed = True
            return
        for end in key.endpoints:
            if not self.nodes[current].closed:
                self.open_relationships.setdefault(end, set()).add(current)
            writer = self.last_node.get(end)
            if writer is not None:
                self.nodes[writer].closed = True


def _op_of(node: _Node) -> PlannedOp:
    last = len(node.events) - 1
    events = tuple(
        PlannedEvent(event, position, Role.CARRIER if i == last else Role.SUPERSEDED)
        for i, (event, position) in enumerate(node.events)
    )
    return plan_op(events, node.action, node.expected_error, node.key, node.prior)


def _units(nodes: list[_Node]) -> tuple[Unit, ...]:
    if all(node.batch is None for node in nodes):  # most reads: one unit per node, same index
        return tuple(Unit(ops=(_op_of(node),), preds=tuple(sorted(node.preds.items())))
                     for node in nodes)  # fmt: skip
    unit_of: list[int] = []
    members: list[list[int]] = []
    batch_unit: dict[str, int] = {}
    for index, node in enumerate(nodes):
        if node.batch is not None and node.batch in batch_unit:
            unit = batch_unit[node.batch]
            if members[unit][-1] != index - 1:
                raise PlanInputError(
                    f"atomicBatch {node.batch}: its events are not contiguous in publish order"
                )
            members[unit].append(index)
        else:
            unit = len(members)
            members.append([index])
            if node.batch is not None:
                batch_unit[node.batch] = unit
        unit_of.append(unit)
    units: list[Unit] = []
    for unit, indices in enumerate(members):
        preds: dict[int, bool] = {}
        for index in indices:
            for pred, strict in nodes[index].preds.items():
                pred_unit = unit_of[pred]
                if pred_unit == unit:
                    if strict:
                        raise PlanInputError(
                            f"atomicBatch {nodes[index].batch}: two of its events must go in "
                            "successive bundles (see check_atomic_batch)"
                        )
                    continue
                preds[pred_unit] = preds.get(pred_unit, False) or strict
        units.append(
            Unit(
                ops=tuple(_op_of(nodes[i]) for i in indices),
                preds=tuple(sorted(preds.items())),
                atomic_batch=nodes[indices[0]].batch,
            )
        )
    return tuple(units)


def build_units(
    events: Sequence[ChangeEvent],
    *,
    mode: CoalesceMode = CoalesceMode.SUPERSEDE,
    no_merge: Collection[str] = frozenset(),
    after_delete: Collection[str] = frozenset(),
    foresight: Foresight | None = None,
) -> tuple[Unit, ...]:
    """Coalesce `events` (one source, publish order) into units with their ordering constraints.

    Args:
        events: resolved events of one source, in publish order (several groups may be merged).
        mode: the coalescing mode.
        no_merge: event ids that must travel alone (events unmerged after a refusal).
        after_delete: entity keys whose last operation planned before these events is a DELETE
            (still unsent): an UPSERT+ DELETE merge on them would be refused, so it is not made.
        foresight: what the source's answers said exists (`domain.foresight`): an operation it
            expects to fail, of a trusted kind, becomes a unit of its own that nothing merges into.

    Raises:
        PlanInputError: mixed sources, or an atomic batch that is split or cannot keep its order.
    """
    if len({event.source_key for event in events}) > 1:
        raise PlanInputError("events: a plan covers one source (the bundle path names it)")
    builder = _Builder(mode, no_merge, after_delete, foresight)
    for position, event in enumerate(events):
        builder.add(event, position)
    return _units(builder.nodes)


def unmerge_unfit(
    events: Sequence[ChangeEvent],
    *,
    mode: CoalesceMode,
    no_merge: Collection[str],
    fits: Callable[[PlannedOp], bool],
    after_delete: Collection[str] = frozenset(),
    foresight: Foresight | None = None,
) -> tuple[Unit, ...]:
    """`build_units`, with every merged operation that `fits` refuses unmerged into its events.

    An operation no bundle can carry is refused by the planner, which is a refusal like any other:
    a merged one would refuse events that alone might fit (a small CREATE merged with a large
    UPSERT), so its events are planned alone instead, as UNMERGED events are after a refusal
    (docs/coalescing.md). Only the events that are too large themselves are then refused.
    """
    unmerged = set(no_merge)
    while True:
        units = build_units(
            events, mode=mode, no_merge=unmerged, after_delete=after_delete, foresight=foresight
        )
        unfit = {
            event_id
            for unit in units
            if unit.atomic_batch is None
            for op in unit.ops
            if len(op.events) > 1 and not fits(op)
            for event_id in op.event_ids
        }
        if not unfit:
            return units
        unmerged |= unfit


def earliest_slot(
    preds: Sequence[tuple[int, bool]], placed: Mapping[int, int], floor_of: Mapping[int, int]
) -> int:
    """The first bundle (or bulk request) a unit may go in, given where its predecessors went.

    A placed predecessor holds the unit to its own slot (or the next one, when strict). A rejected
    predecessor is in no slot and changes nothing in the Registry, yet it stands between the unit
    and its own predecessors: the unit inherits the earliest slot the rejected one would have
    needed (`floor_of`), so an operation after a rejected one still goes after everything the
    rejected one had to follow.

    Args:
        preds: the unit's predecessors (unit index, strictly later), as `Unit.preds` gives them.
        placed: unit index -> slot, for the units placed so far.
        floor_of: unit index -> the slot it would have needed, for the units rejected so far.
    """
    floor = 0
    for pred, strict in preds:
        if pred in placed:
            floor = max(floor, placed[pred] + (1 if strict else 0))
        else:
            floor = max(floor, floor_of[pred])
    return floor

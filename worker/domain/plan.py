"""Bundle planning: from buffered events to an ordered list of bundles the Registry will accept.

`plan_bundles` takes the events of one or more groups of one source, in publish order, coalesces
them (`ordering.build_units`), and places each unit in the earliest bundle that its predecessors
allow and that has room: at most one operation per resource `(type, id)` and per relationship
`(type, from, to)` in a bundle, resource operations before relationship operations, at most
`max_operations` operations and `max_bytes` bytes of the exact body `dump_json` sends (a bundle
closes earlier at `target_operations`, a shrunk source's cap, but no unit is rejected for it). An
atomic batch is never split. A unit no bundle can carry is rejected (a merged operation over the
caps is first unmerged, `ordering.unmerge_unfit`, so that only the events too large themselves are
refused); what follows it on the same entities still goes after everything before it
(`ordering.earliest_slot`). Bundles are submitted in index order, each once the previous outcome is
recorded (docs/coalescing.md, rule F). `validate_plan` (in `plan_check`) checks all of it before
every submission.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Final

from api_client.models import BundleRequest, ErrorType
from worker.domain.coalesce import CoalesceMode
from worker.domain.events import ChangeEvent, Problem, Target
from worker.domain.foresight import Foresight, Prior
from worker.domain.keys import EntityKey, key_of
from worker.domain.ops import (
    EMPTY_BUNDLE_BYTES,
    PlannedEvent,
    PlannedOp,
    bundle_body,
    is_merged_delete,
    relationship_ends,
)
from worker.domain.ordering import PlanInputError, Unit, build_units, earliest_slot, unmerge_unfit

DEFAULT_MAX_BUNDLE_BYTES: Final = 500_000
"""The documented 500 KB bundle limit, read as 500,000 bytes of the exact body."""


class PlanError(ValueError):
    """A plan that breaks a rule; it must never be submitted."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        shown = "; ".join(self.problems[:20])
        more = f" (and {len(self.problems) - 20} more)" if len(self.problems) > 20 else ""
        super().__init__(f"plan refused: {shown}{more}")


@dataclass(frozen=True)
class PlanCaps:
    """Limits of one bundle; no operation count is documented, so it is a setting."""

    max_operations: int = 500
    max_bytes: int = DEFAULT_MAX_BUNDLE_BYTES
    isolate_expected_failures: bool = True
    """Give an operation the table expects to fail a bundle of its own, and operations foresight
    expects to fail bundles of their kind (`foreseen`), so that they cancel nobody."""
    separate_merged_deletes: bool = True
    """Send merged `UPSERT+ DELETE` operations in bundles of their own kind (`may_fail`)."""
    target_operations: int | None = None
    """Where a bundle closes when below `max_operations` (a shrunk source, `domain.sizing`). Soft:
    a unit larger than it still travels, in a bundle of its own; only `max_operations` rejects."""

    def __post_init__(self) -> None:
        if self.max_operations < 1:
            raise ValueError("PlanCaps.max_operations: must be at least 1")
        if self.target_operations is not None and self.target_operations < 1:
            raise ValueError("PlanCaps.target_operations: must be at least 1")
        if self.max_bytes <= EMPTY_BUNDLE_BYTES:
            raise ValueError(f"PlanCaps.max_bytes: must be more than {EMPTY_BUNDLE_BYTES}")


@dataclass(frozen=True)
class BundlePlan:
    """One bundle: the request to send and, per operation, the events bound to it."""

    index: int
    resource_ops: tuple[PlannedOp, ...]
    relationship_ops: tuple[PlannedOp, ...]
    body: bytes
    """The request exactly as sent."""
    isolated: bool = False

    @property
    def size_bytes(self) -> int:
        """The bytes of the request sent."""
        return len(self.body)

    @cached_property
    def request(self) -> BundleRequest:
        """The request as the client's model (parsed from its body; off the hot path)."""
        return BundleRequest.model_validate_json(self.body)

    @property
    def ops(self) -> tuple[PlannedOp, ...]:
        """Every operation, resources first, as the Registry runs them."""
        return self.resource_ops + self.relationship_ops

    @property
    def event_ids(self) -> tuple[str, ...]:
        """Every event whose fate this bundle carries."""
        return tuple(event_id for op in self.ops for event_id in op.event_ids)


@dataclass(frozen=True)
class Rejection:
    """Events that no bundle can carry (an operation or atomic batch over the caps)."""

    events: tuple[PlannedEvent, ...]
    reason: str
    error_type: ErrorType = ErrorType.CONTENT_TOO_LARGE


@dataclass(frozen=True)
class Plan:
    """An ordered list of bundles for one source, and the events no bundle can carry."""

    source: str
    mode: CoalesceMode
    bundles: tuple[BundlePlan, ...]
    rejected: tuple[Rejection, ...] = ()

    @property
    def ops(self) -> tuple[PlannedOp, ...]:
        """Every operation of every bundle, in submission order."""
        return tuple(op for bundle in self.bundles for op in bundle.ops)


def foreseen(unit: Unit) -> bool:
    """Whether foresight expects the unit to fail (`domain.foresight`, a trusted kind).

    Such units never share a bundle with what is expected to apply: a refusal then cancels
    nothing that would have applied. Where the source's Registry names every failure of a
    refused bundle, they share bundles of their own kind (one refusal reports them all); else
    each goes alone (shared, they would be refused once per failure in a row), except new
    guesses past `Foresight.guesses_alone`, which share: a refused one's rest goes each alone
    (`flow.refusals.expected_apart`).
    """
    return len(unit.ops) == 1 and unit.ops[0].set_apart


def may_fail(unit: Unit) -> bool:
    """Whether a unit holds a merged `UPSERT+ DELETE`: refused NOT_FOUND (then unmerged) when the
    entity did not exist before the first UPSERT, which only the Registry knows.

    Such units share bundles only with their own kind, so that a refusal cancels no operation that
    could not have failed that way: in a stream that creates and deletes entities within one
    linger, one refused merge used to send a whole 500-operation bundle back to its buffers. The
    units that follow one (later changes of its entity, relationships on it) go with that kind
    too: when the merge is refused they go back to planning with it, and a bundle of unrelated
    operations packed with them would go back as well.
    """
    return any(is_merged_delete(op) for op in unit.ops)


@dataclass
class _Bin:
    resource_ops: list[PlannedOp] = field(default_factory=list)
    relationship_ops: list[PlannedOp] = field(default_factory=list)
    size: int = EMPTY_BUNDLE_BYTES
    isolated: bool = False
    risky: bool = False
    foreseen: bool = False

    @property
    def count(self) -> int:
        return len(self.resource_ops) + len(self.relationship_ops)

    def added_bytes(self, ops: Sequence[PlannedOp]) -> int:
        """Bytes `ops` would add: their own, plus one comma per operation after a list's first."""
        resources, relationships = len(self.resource_ops), len(self.relationship_ops)
        total = 0
        for op in ops:
            if op.target is Target.RESOURCE:
                total += len(op.wire) + (1 if resources else 0)
                resources += 1
            else:
                total += len(op.wire) + (1 if relationships else 0)
                relationships += 1
        return total

    def fits(self, ops: Sequence[PlannedOp], caps: PlanCaps) -> bool:
        if self.isolated:
            return False
        held = len(self.resource_ops) + len(self.relationship_ops)
        count = held + len(ops)
        if count > caps.max_operations:
            return False
        if held and count > (caps.target_operations or caps.max_operations):
            return False  # the target closes a bundle, but never turns away a first unit
        return self.size + self.added_bytes(ops) <= caps.max_bytes

    def add(self, ops: Sequence[PlannedOp]) -> None:
        self.size += self.added_bytes(ops)
        for op in ops:
            kind = self.resource_ops if op.target is Target.RESOURCE else self.relationship_ops
            kind.append(op)


def _unit_reason(unit: Unit, caps: PlanCaps) -> str:
    what = f"atomic batch {unit.atomic_batch}" if unit.atomic_batch else "the operation"
    if len(unit.ops) > caps.max_operations:
        count = len(unit.ops)
        return f"{what} has {count} operations; a bundle holds at most {caps.max_operations}"
    size = _Bin().size + _Bin().added_bytes(unit.ops)
    return f"{what} needs a {size}-byte bundle; the limit is {caps.max_bytes} bytes"


def _place(
    units: Sequence[Unit],
    caps: PlanCaps,
    *,
    share_foreseen: bool = False,
    guesses_alone: int | None = None,
) -> tuple[list[_Bin], list[Rejection]]:
    """Each unit in the earliest bin its predecessors allow that has room; the bins in the
    order they must be sent.

    An isolated unit takes no place in the sequence of shared bins: it stands just after the
    bin its predecessors need (`floor`), and what follows it goes in the next one. Appended
    after every bin instead, it pushed its followers past the whole plan, into bins of their
    own.
    """
    bins: list[_Bin] = []
    alone: list[tuple[int, _Bin]] = []
    """Isolated units: (the shared bin they stand just after, their bin)."""
    bin_of: dict[int, int] = {}
    floor_of: dict[int, int] = {}
    risky_of: dict[int, bool] = {}
    isolated_units: set[int] = set()
    guessed = 0
    rejected: list[Rejection] = []
    for index, unit in enumerate(units):
        preds = unit.preds
        if isolated_units:  # nothing shares an isolated unit's bin: it is a strict predecessor
            preds = tuple((p, strict or p in isolated_units) for p, strict in preds)
        floor = earliest_slot(preds, bin_of, floor_of)
        # a unit that follows a risky one shares its fate: sent back with it when it is refused
        risky = caps.separate_merged_deletes and (
            may_fail(unit) or any(risky_of[p] for p, _ in unit.preds)
        )
        risky_of[index] = risky
        if not _Bin().fits(unit.ops, caps):
            events = tuple(e for op in unit.ops for e in op.events)
            rejected.append(Rejection(events, _unit_reason(unit, caps)))
            floor_of[index] = floor
            continue
        apart = caps.isolate_expected_failures and foreseen(unit)
        if apart and not share_foreseen:
            guess = unit.ops[0].prior is Prior.GUESS
            apart = guess and guesses_alone is not None and guessed >= guesses_alone
            guessed += guess
        isolate = caps.isolate_expected_failures and unit.expected_error is not None and not apart
        if isolate:
            single = _Bin(risky=risky, isolated=True)
            single.add(unit.ops)
            alone.append((floor, single))
            bin_of[index] = floor
            isolated_units.add(index)
            continue
        candidates = (
            b
            for b in range(floor, len(bins))
            if bins[b].risky == risky and bins[b].foreseen == apart
        )
        chosen = next((b for b in candidates if bins[b].fits(unit.ops, caps)), None)
        if chosen is None:
            chosen = max(len(bins), floor)
            while len(bins) <= chosen:
                bins.append(_Bin(risky=risky, foreseen=apart))
        bins[chosen].add(unit.ops)
        bin_of[index] = chosen
    if not alone:
        return bins, rejected
    order = [((b, 0, b), bin_) for b, bin_ in enumerate(bins)]
    order += [((floor, 1, n), bin_) for n, (floor, bin_) in enumerate(alone)]
    order.sort(key=lambda item: item[0])
    return [bin_ for _, bin_ in order if bin_.count], rejected


def bundle_of_ops(index: int, ops: Sequence[PlannedOp], *, isolated: bool = False) -> BundlePlan:
    """A bundle sending `ops` (resource operations first).

    Used for the halves of a bisected bundle; check the result with `validate_plan`.
    """
    resource_ops = tuple(op for op in ops if op.target is Target.RESOURCE)
    relationship_ops = tuple(op for op in ops if op.target is Target.RELATIONSHIP)
    body = bundle_body(resource_ops, relationship_ops)
    return BundlePlan(index, resource_ops, relationship_ops, body, isolated)


def _bundle(index: int, bin_: _Bin, caps: PlanCaps) -> BundlePlan:
    bundle = bundle_of_ops(index, bin_.resource_ops + bin_.relationship_ops, isolated=bin_.isolated)
    if bundle.size_bytes != bin_.size or bundle.size_bytes > caps.max_bytes:
        raise PlanError(
            [f"bundle {index}: counted {bin_.size} bytes but the body is {bundle.size_bytes}"]
        )
    return bundle


def plan_bundles(
    events: Sequence[ChangeEvent],
    *,
    caps: PlanCaps = PlanCaps(),
    mode: CoalesceMode = CoalesceMode.SUPERSEDE,
    no_merge: Collection[str] = frozenset(),
    after_delete: Collection[str] = frozenset(),
    foresight: Foresight | None = None,
) -> Plan:
    """Plan the bundles that carry `events` (one source; one or more groups, in publish order).

    Args:
        events: resolved events in publish order; several groups' buffers may be merged here, so
            that one bundle carries several groups where the caps allow.
        caps: the bundle limits.
        mode: the coalescing mode (docs/coalescing.md).
        no_merge: event ids that must travel alone (unmerged after a refusal).
        after_delete: entity keys whose last operation planned before these events is a DELETE
            (see `ordering.build_units`).
        foresight: what the source's answers said exists: an operation expected to fail goes
            in a bundle of its own (`domain.foresight`).

    Returns:
        The plan: bundles in submission order, and the events no bundle can carry.

    Raises:
        PlanInputError: mixed sources, repeated event ids, or a split atomic batch.
    """
    if not events:
        raise PlanInputError("events: nothing to plan")
    ids = [event.event_id for event in events]
    if len(set(ids)) != len(ids):
        raise PlanInputError("events: an event id appears twice (deduplicate at publish)")
    units = unmerge_unfit(
        events,
        mode=mode,
        no_merge=no_merge,
        fits=lambda op: _Bin().fits((op,), caps),
        after_delete=after_delete,
        foresight=foresight,
    )
    bins, rejected = _place(
        units,
        caps,
        share_foreseen=foresight is not None and foresight.share,
        guesses_alone=foresight.guesses_alone if foresight is not None else None,
    )
    bundles = tuple(_bundle(index, bin_, caps) for index, bin_ in enumerate(bins))
    return Plan(events[0].source_key, mode, bundles, tuple(rejected))


def check_atomic_batch(events: Sequence[ChangeEvent], caps: PlanCaps = PlanCaps()) -> list[Problem]:
    """Why an atomic publish batch cannot travel as one bundle; empty when it can.

    Checked at publish, so a batch that could never be sent is refused there with its reason:
    two events on one entity (the unique-ID rule), a relationship event before an event on one of
    its ends (in one bundle the resource would go first, against publish order), mixed sources,
    or more operations or bytes than one bundle holds.
    """
    problems: list[Problem] = []
    if len({event.source_key for event in events}) > 1:
        return [Problem("sourceKey", "an atomic batch must stay within one source")]
    seen: dict[EntityKey, int] = {}
    ends_read: dict[EntityKey, int] = {}
    for index, event in enumerate(events):
        key = key_of(event)
        if key in seen:
            problems.append(
                Problem(
                    f"events[{index}]",
                    f"writes the same entity as events[{seen[key]}]; one bundle takes one "
                    "operation per entity",
                )
            )
        seen.setdefault(key, index)
        if key in ends_read:
            problems.append(
                Problem(
                    f"events[{index}]",
                    f"writes an end of the relationship at events[{ends_read[key]}]; put "
                    "resource events before the relationships on them",
                )
            )
        for end in relationship_ends(key):
            ends_read.setdefault(end, index)
    if problems:
        return problems
    batch_id = events[0].atomic_batch if events else None
    solo = [e.model_copy(update={"atomic_batch": batch_id or "check"}) for e in events]
    try:
        units = build_units(solo, mode=CoalesceMode.STRICT)
    except PlanInputError as exc:
        return [Problem("atomicBatch", str(exc))]
    for unit in units:
        if not _Bin().fits(unit.ops, caps):
            problems.append(Problem("atomicBatch", _unit_reason(unit, caps)))
    return problems

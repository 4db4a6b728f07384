"""Planning: events into bundles in publish order, each following the earlier ones it touches.

A planning round (docs/pipeline.md, "Planning") plans every event it read from the ready log
(`plan_bundles`, or `plan_bulk` for events published in bulk mode), checks the plan
(`validate_plan`), and says for each bundle which earlier bundles of the same plan it follows (it
conflicts with them). Events behind a slow bundle (STALE, parked) are set aside first
(`blocked_events`). A record that sends events back plans them with `plan_events` too, into
bundles that take the place of the one they came from (record.lua).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from api_client.models import ErrorBody
from worker.domain.bulk import plan_bulk, validate_bulk_plan
from worker.domain.foresight import EXPECTED_TO_FAIL, Foresight, Prior
from worker.domain.keys import RelationshipKey
from worker.domain.ops import PlannedOp
from worker.domain.outcomes import outcomes_for_rejections
from worker.domain.plan import BundlePlan, Plan, PlanCaps, Rejection, bundle_of_ops, plan_bundles
from worker.domain.plan_check import validate_plan
from worker.flow.deps import Deps
from worker.flow.layout import Sendable, encode_layout, sendable_event_ids
from worker.flow.sizing import plan_caps_for
from worker.store.codec import event_from_mapping
from worker.store.records import BlockedEvent, BundleToCommit, ReadEvent, ReadRound, RejectedEvent

__all__ = [
    "PlannedBundle",
    "Round",
    "blocked_events",
    "bundle_locks",
    "plan_events",
    "plan_rest",
    "plan_round",
]


@dataclass(frozen=True)
class PlannedBundle:
    """One bundle (or bulk request) of a round: its plan and what commit.lua takes."""

    plan: Sendable
    commit: BundleToCommit


def bundle_locks(bundle: Sendable) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(keys it writes, keys it only references: a relationship's ends)."""
    writes = tuple(sorted({str(op.key) for op in bundle.ops}))
    reads = {
        str(end)
        for op in bundle.relationship_ops
        if isinstance(op.key, RelationshipKey)
        for end in op.key.endpoints
    }
    return writes, tuple(sorted(reads - set(writes)))


def _rejection_errors(rejections: Iterable[Rejection]) -> list[tuple[str, str]]:
    return [
        (
            planned.event_id,
            ErrorBody(
                code=413, type=rejection.error_type, message=rejection.reason
            ).model_dump_json(exclude_none=True),
        )
        for rejection in rejections
        for planned in rejection.events
    ]


def _units(events: Sequence[ReadEvent]) -> list[list[ReadEvent]]:
    """Events in seq order, the contiguous members of one atomic batch together."""
    units: list[list[ReadEvent]] = []
    batch_of_last: str | None = None
    for event in events:
        batch = event.body.get("atomicBatch")
        if batch is not None and units and batch == batch_of_last:
            units[-1].append(event)
        else:
            units.append([event])
        batch_of_last = batch
    return units


def _virtual_holder(round_: ReadRound, key: str, seq: int) -> str | None:
    """The slow bundle an event at `seq` on `key` must wait behind because an earlier event on
    it does; None when every event blocked there comes after it (a sent-back event)."""
    for bundle, first in round_.virtual.get(key, ()):
        if first < seq:
            return bundle
    return None


def blocked_events(round_: ReadRound) -> dict[str, str]:
    """The events read that must wait behind a slow bundle (STALE or parked): event -> bundle.

    An event waits when it writes what a slow bundle holds, references what one writes, or
    touches what an earlier event already waiting touches (virtually held: read in
    `round_.virtual` with the lowest seq blocked there, or blocked earlier in this round); an
    atomic batch waits whole. Everything else is planned: a slow bundle delays only what must
    follow it.
    """
    if not round_.slow and not round_.virtual:
        return {}
    local: dict[str, str] = {}
    blocked: dict[str, str] = {}
    for unit in _units(round_.events):
        behind: str | None = None
        for event in unit:
            writes = event.entity
            for key in (writes, *event.resources):
                holder = local.get(key) or _virtual_holder(round_, key, event.seq)
                held = round_.slow.get(key)
                if holder is None and held is not None:
                    mode, _, bundle = held.partition(":")
                    if key == writes or mode == "x":
                        holder = bundle
                if holder is not None:
                    behind = holder
                    break
            if behind is not None:
                break
        if behind is None:
            continue
        for event in unit:
            blocked[event.event_id] = behind
            for key in (event.entity, *event.resources):
                local[key] = behind
    return blocked


@dataclass(frozen=True)
class Round:
    """What one planning round commits: bundles in plan order, rejections, blocked events."""

    bundles: list[PlannedBundle]
    rejected: list[RejectedEvent]
    blocked: list[BlockedEvent]


def plan_round(deps: Deps, source: str, round_: ReadRound) -> Round:
    """The bundles of one round, in plan order, each with the earlier ones it must follow; the
    events no bundle can carry; the events that wait behind a slow bundle."""
    behind = blocked_events(round_)
    read = [e for e in round_.events if e.event_id not in behind]
    blocked = [BlockedEvent(event_id, bundle) for event_id, bundle in behind.items()]
    if not read:
        return Round([], [], blocked)
    caps = plan_caps_for(deps, source, round_)
    planned, rejected = plan_events(
        deps,
        read,
        bulk=round_.bulk,
        caps=caps,
        after_delete=round_.after_delete,
        claim=True,
        foresight=foresight_of(deps, round_),
    )
    return Round(planned, rejected, blocked)


def foresight_of(deps: Deps, round_: ReadRound) -> Foresight | None:
    """What this round knows of its keys, and which kinds of expectation the source's answers
    bear out (`domain.foresight`); None when foresight is off."""
    policy = deps.settings.foresight_policy()
    if not policy.enabled:
        return None
    counts = round_.foresight_counts
    return Foresight(
        known=round_.known,
        held=round_.held,
        isolate_known=counts.isolates(Prior.KNOWN, policy),
        isolate_guess=counts.isolates(Prior.GUESS, policy),
        guesses_alone=counts.guesses_alone(policy),
        share=round_.names_every_failure,
    )


def plan_events(
    deps: Deps,
    read: Sequence[ReadEvent],
    *,
    bulk: bool,
    caps: PlanCaps,
    after_delete: Collection[str] = frozenset(),
    claim: bool = False,
    foresight: Foresight | None = None,
    expected: Collection[str] = frozenset(),
) -> tuple[list[PlannedBundle], list[RejectedEvent]]:
    """`read` (seq order, one kind of request) in bundles, each with the earlier ones of the
    plan it must follow; and the events no bundle can carry.

    Args:
        claim: the caller sends the bundles itself once ready (claimed at commit).
        foresight: what the source's answers said of the keys read (bundles only).
        expected: events that went apart as expected failures before (sent again, as the rest
            of a refused bundle): their operations are held as such (`held_action`).
    """
    events = [event_from_mapping(e.body, e.content) for e in read]
    no_merge = {e.event_id for e in read if e.no_merge}
    mode = deps.settings.coalesce_mode
    sendables: Sequence[Sendable]
    if bulk:
        bulk_plan = plan_bulk(events, caps=deps.bulk_caps, mode=mode, no_merge=no_merge)
        validate_bulk_plan(bulk_plan, deps.bulk_caps)
        sendables, rejected = bulk_plan.requests, _rejection_errors(bulk_plan.rejected)
    else:
        plan = plan_bundles(
            events,
            caps=caps,
            mode=mode,
            no_merge=no_merge,
            after_delete=after_delete,
            foresight=foresight,
        )
        validate_plan(plan, deps.settings.plan_caps())
        sendables = plan.bundles
        rejected = []
        for outcome in outcomes_for_rejections(plan).outcomes:
            error = outcome.error.model_dump_json(exclude_none=True) if outcome.error else "{}"
            rejected.append((outcome.event_id, error))
    planned = _to_commit(deps, sendables, read, claim=claim, expected=expected)
    return planned, [RejectedEvent(event_id, error) for event_id, error in rejected]


def plan_rest(
    deps: Deps,
    source: str,
    bundle: BundlePlan,
    read: Sequence[ReadEvent],
    caps: PlanCaps,
    *,
    apart: bool = False,
) -> list[PlannedBundle] | None:
    """The rest of a refused bundle (`read`: the events it sends again) as the bundle's own
    operations minus those that met their fate, in one bundle (`apart`: each in a bundle of its
    own); None when it must be planned again (`plan_events`).

    Why: planning a rest again cost as much as planning it the first time, once per refusal, for
    the same answer. When every operation kept is sent again whole (nothing unmerged), the rest
    is a subset of one bundle that passed `validate_plan`: one operation per entity, resources
    first, every rule between its operations held. Dropping operations breaks none of them, and
    planning the rest events again would merge and order them the same way, in one bundle. A
    rest over the source's caps now (the answer may have shrunk them) is planned again. Apart,
    each operation follows the earlier ones it conflicts with (`_to_commit`), as in one bundle.
    """
    kept = {e.event_id for e in read}
    ops = []
    covered = 0
    for op in bundle.ops:
        inside = sum(1 for event_id in op.event_ids if event_id in kept)
        if inside == 0:
            continue
        if inside != len(op.events):
            return None  # part of an operation goes again: plan it again
        ops.append(op)
        covered += inside
    if not ops or covered != len(kept):
        return None
    if apart:
        rests = [bundle_of_ops(i, [op], isolated=True) for i, op in enumerate(ops)]
    else:
        if len(ops) > (caps.target_operations or caps.max_operations):
            return None
        rests = [bundle_of_ops(0, ops, isolated=bundle.isolated)]
    if any(rest.size_bytes > caps.max_bytes for rest in rests):
        return None
    validate_plan(
        Plan(source, deps.settings.coalesce_mode, tuple(rests)), deps.settings.plan_caps()
    )
    return _to_commit(deps, rests, read, claim=False)


def _to_commit(
    deps: Deps,
    sendables: Sequence[Sendable],
    read: Sequence[ReadEvent],
    *,
    claim: bool,
    expected: Collection[str] = frozenset(),
) -> list[PlannedBundle]:
    """Each sendable with what commit.lua (or record.lua, for a replacement) takes: its keys,
    layout, groups, and the earlier ones of `sendables` it must follow."""
    groups = {e.event_id: e.group for e in read}
    seqs = {e.event_id: e.seq for e in read}
    sizes = {e.event_id: e.size for e in read}
    writer: dict[str, str] = {}
    readers: dict[str, set[str]] = {}
    planned: list[PlannedBundle] = []
    for sendable in sendables:
        bundle_id = deps.new_id()
        writes, reads = bundle_locks(sendable)
        after: set[str] = set()
        for key in writes:
            if key in writer:
                after.add(writer[key])
            after |= readers.pop(key, set())
            writer[key] = bundle_id
        for key in reads:
            if key in writer:
                after.add(writer[key])
            readers.setdefault(key, set()).add(bundle_id)
        event_ids = sendable_event_ids(sendable)
        commit = BundleToCommit(
            bundle_id=bundle_id,
            event_ids=event_ids,
            writes=writes,
            reads=reads,
            layout=encode_layout(sendable, seqs),
            groups=tuple(sorted({groups[e] for e in event_ids if groups.get(e)})),
            after=tuple(sorted(after)),
            claim=claim,
            size=sum(sizes[e] for e in event_ids),
            actions={str(op.key): held_action(op, expected) for op in sendable.ops},
        )
        planned.append(PlannedBundle(sendable, commit))
    return planned


def held_action(op: PlannedOp, expected: Collection[str] = frozenset()) -> str:
    """What an unfinished bundle's operation leaves its entity as, for the rounds planned while
    it is in flight (hash `la`): its action, marked when it went apart as an expected failure,
    now or in the refused bundle it is the rest of (`expected`: foresight then takes the entity
    as it was before it)."""
    if op.set_apart or op.carrier.event_id in expected:
        return EXPECTED_TO_FAIL + op.action.value
    return op.action.value

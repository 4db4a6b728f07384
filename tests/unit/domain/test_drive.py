"""The whole pure path, driven as the pipeline will: events -> plans -> Registry -> outcomes.

A tiny Registry model lives here (resources, relationships, cascade on delete, invalid payloads,
atomic bundles: the first failing operation is FAILURE, or every failing one with its own error,
the rest CANCELLED, nothing applied).
Random event streams are applied two ways: one by one (the oracle), and through plan_bundles,
validate_plan, the model, outcomes_from_receipts and re-planning (rule F), until every event is
final. Both must end in the same state, with the same outcome per event, except the documented
SUPERSEDE exception and the documented binding of relationships to failed worker-id creates.
The later property tests run the same loop against the emulator's state model.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from api_client.models import Action, BundleReceipts, ErrorType, Receipt
from worker.domain.coalesce import CoalesceMode, Fate
from worker.domain.events import ChangeEvent, Target
from worker.domain.keys import EntityKey, RelationshipKey, ResourceKey, key_of
from worker.domain.outcomes import EventOutcome, outcomes_from_receipts
from worker.domain.plan import BundlePlan, PlanCaps, check_atomic_batch, plan_bundles
from worker.domain.plan_check import validate_plan

from .factories import rel, res

RESOURCES = [("office", "o1"), ("office", "o2"), ("provider", "p1"), ("provider", "g1")]
GENERATED = ResourceKey("src", "provider", "g1")
LINKS = [
    (("office", "o1"), ("provider", "p1")),
    (("office", "o2"), ("provider", "p1")),
    (("office", "o1"), ("provider", "g1")),
]


@dataclass
class Registry:
    """Entities by key -> the payload marker they hold."""

    state: dict[EntityKey, Any] = field(default_factory=dict)
    every_failure: bool = False
    """A refused bundle reports every failing operation (the emulator's `bundle_failures: all`),
    each judged on what the operations before it left, rather than the first only."""

    def apply(self, key: EntityKey, action: Action, payload: Any) -> ErrorType | None:
        """One operation; returns its error, or None when applied."""
        if action is not Action.DELETE and payload.get("bad"):
            return ErrorType.INVALID_ARGUMENT
        missing_end = isinstance(key, RelationshipKey) and any(
            end not in self.state for end in key.endpoints
        )
        if missing_end and action is not Action.DELETE:
            return ErrorType.NOT_FOUND
        if action is Action.CREATE and key in self.state:
            return ErrorType.ALREADY_EXISTS
        if action is Action.DELETE:
            if key not in self.state:
                return ErrorType.NOT_FOUND
            del self.state[key]
            if isinstance(key, ResourceKey):
                for other in [k for k in self.state if isinstance(k, RelationshipKey)]:
                    if key in other.endpoints:
                        del self.state[other]
            return None
        self.state[key] = payload.get("v")
        return None

    def bundle(self, bundle: BundlePlan) -> BundleReceipts:
        """Atomic: the first failing operation fails (or every one, `every_failure`), every
        other one is cancelled."""
        saved = dict(self.state)
        failures: dict[int, ErrorType] = {}
        for index, op in enumerate(bundle.ops):
            payload = op.carrier.event.data or {}
            error = self.apply(op.key, op.action, payload)
            if error is not None:
                failures[index] = error
                if not self.every_failure:
                    break
        receipts = []
        for index, op in enumerate(bundle.ops):
            _, type_, id_ = op.receipt_key
            status, error_body = "SUCCESS", None
            if failures:
                status = "FAILURE" if index in failures else "CANCELLED"
                if index in failures:
                    error_body = {"code": 400, "type": failures[index], "message": "refused"}
            receipts.append(
                Receipt.model_validate(
                    {"status": status, "type": type_, "id": id_, "error": error_body}
                )
            )
        if failures:
            self.state = saved
        n = len(bundle.resource_ops)
        return BundleReceipts(
            resource_operation_receipts=receipts[:n], relationship_operation_receipts=receipts[n:]
        )


BATCH_FAILED = "batch failed"
"""One-by-one outcome of every event of an atomic batch in which any event failed."""


def one_by_one(start: dict[EntityKey, Any], events: list[ChangeEvent]):
    """The oracle: each event alone, in order; an atomic batch all or nothing."""
    registry = Registry(dict(start))
    outcomes: dict[str, Any] = {}
    index = 0
    while index < len(events):
        batch = events[index].atomic_batch
        members = [events[index]]
        while batch and index + len(members) < len(events):
            if events[index + len(members)].atomic_batch != batch:
                break
            members.append(events[index + len(members)])
        saved = dict(registry.state)
        errors: list[Any] = [registry.apply(key_of(e), e.action, e.data or {}) for e in members]
        if batch and any(errors):
            registry.state = saved
            errors = [BATCH_FAILED] * len(members)
        for event, error in zip(members, errors, strict=True):
            outcomes[event.event_id] = error
        index += len(members)
    return registry.state, outcomes


def through_the_planner(start, events, mode: CoalesceMode, caps: PlanCaps, every_failure=False):
    registry = Registry(dict(start), every_failure=every_failure)
    final: dict[str, EventOutcome] = {}
    no_merge: set[str] = set()
    pending = list(events)
    for _ in range(10 * len(events) + 10):
        if not pending:
            break
        plan = plan_bundles(pending, caps=caps, mode=mode, no_merge=no_merge)
        assert not plan.rejected
        validate_plan(plan, caps)
        for bundle in plan.bundles:  # rule F: in order, re-plan at the first non-final fate
            outcomes = outcomes_from_receipts(bundle, registry.bundle(bundle))
            for outcome in outcomes.outcomes:
                if outcome.is_final:
                    final[outcome.event_id] = outcome
            no_merge |= outcomes.no_merge
            if outcomes.to_replan:
                break
        pending = [e for e in pending if e.event_id not in final]
    assert not pending, "the loop did not converge"
    return registry.state, final


@st.composite
def streams(draw) -> tuple[dict[EntityKey, Any], list[ChangeEvent]]:
    start: dict[EntityKey, Any] = {}
    for type_, id_ in RESOURCES[:3]:
        if draw(st.booleans()):
            start[ResourceKey("src", type_, id_)] = "old"
    for (ft, fid), (tt, tid) in LINKS[:2]:
        key = RelationshipKey("src", "works-at", ft, fid, tt, tid)
        if all(end in start for end in key.endpoints) and draw(st.booleans()):
            start[key] = "old"
    events: list[ChangeEvent] = []
    generated_seen = False
    for index in range(draw(st.integers(1, 9))):
        if draw(st.integers(0, 5)) == 0:
            events.extend(draw(batches(f"b{index}", index * 10)))
            continue
        action = draw(st.sampled_from([Action.CREATE, Action.UPSERT, Action.DELETE]))
        data = {"v": index, "bad": draw(st.booleans()) and draw(st.booleans())}
        if action is Action.DELETE:
            data = {}
        if draw(st.booleans()):
            type_, id_ = draw(st.sampled_from(RESOURCES))
            is_generated = ResourceKey("src", type_, id_) == GENERATED
            if is_generated and not generated_seen:
                # A worker-id resource: its first event is its CREATE (refs cannot come earlier).
                event = res(Action.CREATE, type_, id_, data={"v": index, "bad": data.get("bad")})
                events.append(event.model_copy(update={"generated_id": True}))
                generated_seen = True
                continue
            events.append(res(action, type_, id_, data=data or None))
        else:
            frm, to = draw(st.sampled_from(LINKS))
            if to == ("provider", "g1") and not generated_seen:
                continue
            events.append(rel(action, "works-at", frm, to, data=data or None))
    return start, events


@st.composite
def batches(draw, batch_id: str, base: int) -> list[ChangeEvent]:
    """An atomic batch that check_atomic_batch accepts (else none): distinct entities."""
    resources = draw(st.lists(st.sampled_from(RESOURCES[:3]), max_size=2, unique=True))
    links = draw(st.lists(st.sampled_from(LINKS[:2]), max_size=2, unique=True))
    members: list[ChangeEvent] = []
    for offset, (type_, id_) in enumerate(resources):
        action = draw(st.sampled_from(list(Action)))
        data = None if action is Action.DELETE else {"v": base + offset, "bad": draw(st.booleans())}
        members.append(res(action, type_, id_, data=data, atomicBatch=batch_id))
    for offset, (frm, to) in enumerate(links):
        action = draw(st.sampled_from(list(Action)))
        data = None if action is Action.DELETE else {"v": base + 5 + offset}
        members.append(rel(action, "works-at", frm, to, data=data, atomicBatch=batch_id))
    return members if members and not check_atomic_batch(members) else []


def _matches(event: ChangeEvent, expected: Any, got: EventOutcome, mode) -> bool:
    if expected == BATCH_FAILED:
        return got.fate is Fate.FAILED
    if expected is None:
        return got.fate in (Fate.APPLIED, Fate.COALESCED)
    if got.fate is Fate.FAILED and got.bound_to is not None:
        # Bound to a failed worker-id create: alone it fails too (its end is missing, or its own
        # payload is refused first); the bound outcome carries the cause's error instead.
        return event.target is Target.RELATIONSHIP
    if got.fate is Fate.COALESCED and mode is CoalesceMode.SUPERSEDE:
        # The documented exception: a superseded payload the Registry never judged.
        return expected is ErrorType.INVALID_ARGUMENT and bool((event.data or {}).get("bad"))
    return got.fate is Fate.FAILED and got.error is not None and got.error.type == expected


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    stream=streams(),
    mode=st.sampled_from([CoalesceMode.SUPERSEDE, CoalesceMode.STRICT]),
    max_operations=st.sampled_from([1, 2, 4, 500]),
    isolate=st.booleans(),
    every_failure=st.booleans(),
)
def test_drive_planned_bundles_match_one_by_one_application(
    stream, mode, max_operations, isolate, every_failure
):
    start, events = stream
    sizes = Counter(e.atomic_batch for e in events if e.atomic_batch)
    assume(all(size <= max_operations for size in sizes.values()))  # else refused at publish
    caps = PlanCaps(max_operations=max_operations, isolate_expected_failures=isolate)
    expected_state, expected = one_by_one(start, events)
    state, outcomes = through_the_planner(start, events, mode, caps, every_failure)
    assert state == expected_state
    for event in events:
        got = outcomes[event.event_id]
        assert _matches(event, expected[event.event_id], got, mode), (event, got)

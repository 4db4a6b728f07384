"""The driver loop of docs/coalescing.md rule F, run against the emulator's state model.

Plan the pending events, check the plan (with `validate_plan` and, independently, by reading the
request it sends), submit its bundles one after another through `SourceState.apply_bundle`, read
each answer with `outcomes_from_receipts`, and send everything not yet final back to planning as
soon as a bundle brings a CANCELLED, UNMERGED or RETRY fate. Repeat until every event is final.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from api_client.models import BundleReceipts, dump_json
from emulator.state import SourceState
from tests.property.oracle import JSON
from worker.domain.coalesce import CoalesceMode
from worker.domain.events import ChangeEvent
from worker.domain.outcomes import (
    EventOutcome,
    Outcomes,
    outcomes_for_rejections,
    outcomes_from_receipts,
)
from worker.domain.plan import BundlePlan, Plan, PlanCaps, plan_bundles
from worker.domain.plan_check import validate_plan
from worker.domain.receipts import Answer

Submit = Callable[[BundlePlan], Answer]
"""Sends one bundle and returns the Registry's terminal answer."""
Observe = Callable[[BundlePlan, Answer, Outcomes], None]
"""Sees every submission with its answer and the outcomes read from it."""


def request_body(bundle: BundlePlan) -> JSON:
    """The bundle's request exactly as the client sends it, decoded."""
    body: JSON = json.loads(dump_json(bundle.request))
    return body


def answer_of(resources: list[JSON], relationships: list[JSON]) -> BundleReceipts:
    """The synchronous bundle answer carrying the emulator's raw receipts."""
    return BundleReceipts.model_validate(
        {"resourceOperationReceipts": resources, "relationshipOperationReceipts": relationships}
    )


def submitter(registry: SourceState) -> Submit:
    """Submit bundles to `registry`, as the Registry's bundle endpoint would run them."""

    def submit(bundle: BundlePlan) -> Answer:
        resources, relationships = registry.apply_bundle(request_body(bundle))
        return answer_of(resources, relationships)

    return submit


def operation_identity(op: JSON) -> tuple[str, ...]:
    """What the unique-ID rule counts: a resource's (type, id), a relationship's type and ends."""
    body = op[op["action"].lower()]
    if "from" in body:
        ends = (body["from"]["type"], body["from"]["id"], body["to"]["type"], body["to"]["id"])
        return (body["type"], *ends)
    return (body["type"], body["id"])


def check_bundles(plan: Plan, caps: PlanCaps) -> None:
    """The unique-ID rule and the caps, read from the bytes each bundle sends (not the plan)."""
    for bundle in plan.bundles:
        sent = dump_json(bundle.request)
        assert len(sent) <= caps.max_bytes, (bundle.index, len(sent), caps.max_bytes)
        body = json.loads(sent)
        operations = body["resourceOperations"] + body["relationshipOperations"]
        assert 1 <= len(operations) <= caps.max_operations, (bundle.index, len(operations))
        for kind in ("resourceOperations", "relationshipOperations"):
            counts = Counter(operation_identity(op) for op in body[kind])
            twice = [identity for identity, count in counts.items() if count > 1]
            assert not twice, (bundle.index, kind, twice)


def check_accounting(plan: Plan, pending: Sequence[ChangeEvent]) -> None:
    """Every pending event is carried by exactly one operation, or rejected, never both."""
    carried = [e for op in plan.ops for e in op.event_ids]
    carried += [p.event_id for rejection in plan.rejected for p in rejection.events]
    assert sorted(carried) == sorted(e.event_id for e in pending)


@dataclass
class Run:
    """What one drive produced: the final outcome of every event, and what was planned/sent."""

    final: dict[str, EventOutcome] = field(default_factory=dict)
    plans: list[Plan] = field(default_factory=list)
    submissions: list[tuple[BundlePlan, Outcomes]] = field(default_factory=list)

    def record(self, outcome: EventOutcome) -> None:
        """Keep a final outcome; an event that ends twice is a bug."""
        assert outcome.event_id not in self.final, ("two final outcomes", outcome.event_id)
        self.final[outcome.event_id] = outcome


def drive(
    events: Sequence[ChangeEvent],
    submit: Submit,
    *,
    mode: CoalesceMode,
    caps: PlanCaps,
    observe: Observe | None = None,
) -> Run:
    """Drive `events` to a final outcome each (rule F); fails if the loop does not converge."""
    run = Run()
    no_merge: set[str] = set()
    pending = list(events)
    for _ in range(10 * len(events) + 10):
        if not pending:
            break
        plan = plan_bundles(pending, caps=caps, mode=mode, no_merge=no_merge)
        validate_plan(plan, caps)
        check_bundles(plan, caps)
        check_accounting(plan, pending)
        run.plans.append(plan)
        for outcome in outcomes_for_rejections(plan).outcomes:
            run.record(outcome)
        for bundle in plan.bundles:
            answer = submit(bundle)
            outcomes = outcomes_from_receipts(bundle, answer)
            # Every event of the bundle gets exactly one outcome from its answer.
            assert sorted(o.event_id for o in outcomes.outcomes) == sorted(bundle.event_ids)
            if observe is not None:
                observe(bundle, answer, outcomes)
            run.submissions.append((bundle, outcomes))
            for outcome in outcomes.outcomes:
                if outcome.is_final:
                    run.record(outcome)
            no_merge |= outcomes.no_merge
            if outcomes.to_replan:
                break
        pending = [e for e in pending if e.event_id not in run.final]
    assert not pending, "the driver loop did not converge"
    assert sorted(run.final) == sorted(e.event_id for e in events)
    return run

"""A FAILURE injected on one operation of a bundle that would otherwise apply in full.

The emulator fails it for real where it can: a CREATE or UPSERT gets a property its profile does
not allow, and `apply_bundle` refuses it (FAILED_PRECONDITION) and cancels the rest. A DELETE has
no payload to spoil, so its receipts are rewritten as the bundle would answer: that operation
FAILURE, every other one CANCELLED, nothing applied.

The failure goes only on an operation whose events were never submitted before. The Registry's
data errors are deterministic (transient ones are RETRY, never FAILED): an operation that ran
without error inside a bundle that a later operation failed will apply when resubmitted, and the
core relies on that, because the failing operation was judged on a state that included it. A
failure injected on such an operation would model a Registry that changes its mind.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from api_client.models import Action
from emulator.state import CANCELLED, FAILURE, SUCCESS, SourceState
from tests.property.driver import answer_of, request_body
from tests.property.oracle import INJECTED_ERROR, INJECTED_ERROR_TYPE, JSON
from worker.domain.events import Target
from worker.domain.ops import PlannedOp
from worker.domain.plan import BundlePlan
from worker.domain.receipts import Answer


@dataclass(frozen=True)
class Injection:
    """Where the failure went: which submission, and which operation of its bundle."""

    submission: int
    bundle: BundlePlan
    op: PlannedOp


def _receipts(bundle: BundlePlan, resources: list[JSON], relationships: list[JSON]) -> list[JSON]:
    assert len(resources) == len(bundle.resource_ops)
    return resources + relationships


class Injector:
    """Submits bundles to `registry`, failing one operation of the first eligible bundle.

    Eligible: submitted at or after `after`, with at least two operations (so that there are
    innocents to cancel), applying in full if left alone, and holding an operation none of whose
    events was submitted before; `choice` picks among those.
    """

    def __init__(self, registry: SourceState, *, after: int, choice: int) -> None:
        self.registry = registry
        self.after = after
        self.choice = choice
        self.submitted = 0
        self.seen: set[str] = set()
        self.injection: Injection | None = None

    def __call__(self, bundle: BundlePlan) -> Answer:
        index = self.submitted
        self.submitted += 1
        body = request_body(bundle)
        fresh = [i for i, op in enumerate(bundle.ops) if self.seen.isdisjoint(op.event_ids)]
        self.seen.update(bundle.event_ids)
        if self.injection is None and index >= self.after and len(bundle.ops) >= 2 and fresh:
            trial = copy.deepcopy(self.registry)
            resources, relationships = trial.apply_bundle(copy.deepcopy(body))
            if all(r["status"] == SUCCESS for r in resources + relationships):
                position = fresh[self.choice % len(fresh)]
                return self._inject(index, bundle, body, position, (resources, relationships))
        return answer_of(*self.registry.apply_bundle(body))

    def _inject(
        self,
        index: int,
        bundle: BundlePlan,
        body: JSON,
        position: int,
        dry_run: tuple[list[JSON], list[JSON]],
    ) -> Answer:
        resources, relationships = dry_run
        op = bundle.ops[position]
        self.injection = Injection(index, bundle, op)
        before = self.registry.snapshot()
        if op.action is Action.DELETE:
            for at, receipt in enumerate(_receipts(bundle, resources, relationships)):
                receipt["status"] = FAILURE if at == position else CANCELLED
                if at == position:
                    receipt["error"] = dict(INJECTED_ERROR)
        else:
            if op.target is Target.RESOURCE:
                kind, at = "resourceOperations", position
            else:
                kind, at = "relationshipOperations", position - len(bundle.resource_ops)
            payload = body[kind][at][op.action.lower()]
            payload.setdefault("data", {})["injectedUnknownProperty"] = True
            resources, relationships = self.registry.apply_bundle(body)
        statuses = [r["status"] for r in _receipts(bundle, resources, relationships)]
        assert statuses == [FAILURE if at == position else CANCELLED for at in range(len(statuses))]
        failed = _receipts(bundle, resources, relationships)[position]
        assert failed["error"]["type"] == INJECTED_ERROR_TYPE, failed
        assert self.registry.snapshot() == before  # a failed bundle applies nothing
        return answer_of(resources, relationships)

"""Invariant 5: receipts are matched by target, type and id, so their order changes nothing.

At every submission of a driven run, the emulator's receipts are read three ways: as answered;
with each receipt list permuted; and as a terminal task answer (one flat list, shuffled, with the
`targetType`, `action` and `taskId` a task's receipts carry). All three give the same outcomes.
"""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from api_client.models import BundleReceipts, Receipt, TaskState
from tests.property.cases import Case, cases
from tests.property.driver import drive, request_body, submitter
from tests.property.oracle import registry_with
from worker.domain.coalesce import CoalesceMode
from worker.domain.outcomes import Outcomes, outcomes_from_receipts
from worker.domain.plan import BundlePlan
from worker.domain.receipts import Answer

MODES = st.sampled_from([CoalesceMode.SUPERSEDE, CoalesceMode.STRICT])


def _shuffled(receipts: list[Receipt], rng: random.Random) -> list[Receipt]:
    shuffled = list(receipts)
    rng.shuffle(shuffled)
    return shuffled


def _task_answer(bundle: BundlePlan, answer: BundleReceipts, rng: random.Random) -> TaskState:
    body = request_body(bundle)
    flat = []
    for kind, target, receipts in (
        ("resourceOperations", "RESOURCE", answer.resource_operation_receipts),
        ("relationshipOperations", "RELATIONSHIP", answer.relationship_operation_receipts),
    ):
        for op, receipt in zip(body[kind], receipts, strict=True):
            raw = receipt.model_dump(by_alias=True, exclude_none=True)
            raw.update({"targetType": target, "action": op["action"], "taskId": "bd_1"})
            flat.append(raw)
    rng.shuffle(flat)
    failed = any(r["status"] == "FAILURE" for r in flat)
    status = "FAILURE" if failed else "SUCCESS"
    return TaskState.model_validate({"status": status, "taskId": "bd_1", "receipts": flat})


@given(case=cases(), mode=MODES, rng=st.randoms(use_true_random=False))
def test_outcomes_from_receipts_do_not_depend_on_receipt_order(
    case: Case, mode: CoalesceMode, rng: random.Random
) -> None:
    checked = []

    def observe(bundle: BundlePlan, answer: Answer, outcomes: Outcomes) -> None:
        assert isinstance(answer, BundleReceipts)
        permuted = BundleReceipts(
            resource_operation_receipts=_shuffled(answer.resource_operation_receipts, rng),
            relationship_operation_receipts=_shuffled(answer.relationship_operation_receipts, rng),
        )
        assert outcomes_from_receipts(bundle, permuted).outcomes == outcomes.outcomes
        task = _task_answer(bundle, answer, rng)
        assert outcomes_from_receipts(bundle, task).outcomes == outcomes.outcomes
        checked.append(bundle.index)

    registry = registry_with(case.scenario.start)
    drive(case.scenario.events, submitter(registry), mode=mode, caps=case.caps, observe=observe)
    assert checked  # every run submits at least one bundle

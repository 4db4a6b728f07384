"""Every JSON example of the seed pages parses into its model and survives a dump and re-parse."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from api_client import ids
from api_client.models import (
    Action,
    BulkRejected,
    BundleReceipts,
    BundleRequest,
    EntityRef,
    ErrorType,
    ReceiptStatus,
    RelationshipCreateRequest,
    RelationshipWriteAnswer,
    ResourceBulkRequest,
    ResourceDeletePayload,
    ResourceOperation,
    ResourcePayload,
    SubmissionStatus,
    TargetType,
    TaskAccepted,
    TaskState,
    TaskStatus,
    dump_json,
    parse_bulk_answer,
    parse_bundle_answer,
)

FIXTURES_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "seeds"

FIXTURE_MODELS: dict[str, type[BaseModel]] = {
    "bulk-guide.accepted-answer": TaskAccepted,
    "bulk-guide.create-operation": ResourceOperation,
    "bulk-guide.create-request": ResourceBulkRequest,
    "bulk-guide.delete-operation": ResourceOperation,
    "bulk-guide.delete-request": ResourceBulkRequest,
    "bulk-guide.rejected-answer": BulkRejected,
    "bulk-guide.request-skeleton": ResourceBulkRequest,
    "bulk-guide.task-answer": TaskState,
    "bulk-guide.upsert-operation": ResourceOperation,
    "bulk-guide.upsert-request": ResourceBulkRequest,
    "bundle-guide.failed-answer": BundleReceipts,
    "bundle-guide.request-skeleton": BundleRequest,
    "bundle-guide.success-answer": BundleReceipts,
    "bundle-guide.use-case-request": BundleRequest,
    "bundle-guide.virtual-id-answer": BundleReceipts,
    "bundle-guide.virtual-id-request": BundleRequest,
    "bundle-reference.accepted-answer": TaskAccepted,
    "bundle-reference.request": BundleRequest,
    "relationship-bulk-status-reference.answer": TaskState,
    "relationship-create-reference.answer": RelationshipWriteAnswer,
    "relationship-create-reference.request": RelationshipCreateRequest,
}

# Answers whose shape is decided by a dispatch function rather than known in advance.
ANSWER_PARSERS: dict[str, Callable[[Any], BaseModel]] = {
    "bulk-guide.accepted-answer": parse_bulk_answer,
    "bulk-guide.rejected-answer": parse_bulk_answer,
    "bundle-guide.failed-answer": parse_bundle_answer,
    "bundle-guide.success-answer": parse_bundle_answer,
    "bundle-guide.virtual-id-answer": parse_bundle_answer,
    "bundle-reference.accepted-answer": parse_bundle_answer,
}

FIXTURE_NAMES = sorted(path.name.removesuffix(".json") for path in FIXTURES_DIR.glob("*.json"))


def _load(name: str) -> Any:
    return json.loads((FIXTURES_DIR / f"{name}.json").read_text(encoding="utf-8"))


def _parse(name: str) -> BaseModel:
    return FIXTURE_MODELS[name].model_validate(_load(name))


def _assert_contained(original: Any, dumped: Any, path: str = "$") -> None:
    """Every key and value of `original` is in `dumped` (which may add defaults such as [])."""
    if isinstance(original, dict):
        assert isinstance(dumped, dict), path
        for key, value in original.items():
            assert key in dumped, f"{path}.{key} lost in the dump"
            _assert_contained(value, dumped[key], f"{path}.{key}")
    elif isinstance(original, list):
        assert isinstance(dumped, list), path
        assert len(original) == len(dumped), path
        for index, (left, right) in enumerate(zip(original, dumped, strict=True)):
            _assert_contained(left, right, f"{path}[{index}]")
    else:
        assert original == dumped, path


def test_seed_fixtures_directory_holds_every_seed_example() -> None:
    assert len(FIXTURE_NAMES) == 21
    missing = sorted(set(FIXTURE_MODELS) - set(FIXTURE_NAMES))
    assert not missing, f"mapped fixtures without a file: {missing}"


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_seed_fixture_has_a_model(name: str) -> None:
    if name not in FIXTURE_MODELS:
        pytest.fail(f"fixture {name!r} has no model mapping in FIXTURE_MODELS")


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_seed_fixture_round_trips_through_dump_json(name: str) -> None:
    model = FIXTURE_MODELS.get(name)
    if model is None:
        pytest.fail(f"fixture {name!r} has no model mapping in FIXTURE_MODELS")
    parsed = model.model_validate(_load(name))

    wire = dump_json(parsed)
    again = model.model_validate_json(wire)

    assert type(again) is model
    assert again == parsed
    _assert_contained(_load(name), json.loads(wire))


@pytest.mark.parametrize("name", sorted(ANSWER_PARSERS))
def test_seed_answer_dispatch_picks_the_mapped_model(name: str) -> None:
    answer = ANSWER_PARSERS[name](_load(name))

    assert type(answer) is FIXTURE_MODELS[name]
    assert answer == _parse(name)


def test_seed_substitutions_file_records_the_same_models() -> None:
    text = (FIXTURES_DIR / "SUBSTITUTIONS.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([\w.-]+)` \| `(\w+)`(?: \(via `(\w+)`\))? \|", text, re.MULTILINE)
    recorded = {fixture: model for fixture, model, _ in rows}
    via = {fixture: parser for fixture, _, parser in rows if parser}

    assert recorded == {name: model.__name__ for name, model in FIXTURE_MODELS.items()}
    assert via == {name: parser.__name__ for name, parser in ANSWER_PARSERS.items()}


def test_seed_failed_bundle_reports_one_failure_and_cancels_the_rest() -> None:
    answer = parse_bundle_answer(_load("bundle-guide.failed-answer"))
    assert isinstance(answer, BundleReceipts)

    failed, cancelled = answer.resource_operation_receipts
    assert failed.status is ReceiptStatus.FAILURE
    assert (failed.type, failed.id) == ("office", "1")
    assert failed.error is not None
    assert failed.error.type is ErrorType.FAILED_PRECONDITION
    assert failed.error.code == 400
    assert failed.error.message == "invalid schema for office"
    [detail] = failed.error.details
    assert detail.type is ErrorType.INVALID_ARGUMENT
    assert detail.message == "additionalProperties 'UNKNOWN' not allowed"
    assert detail.details == []
    assert cancelled.status is ReceiptStatus.CANCELLED
    assert cancelled.error is None
    assert [r.status for r in answer.relationship_operation_receipts] == [ReceiptStatus.CANCELLED]


def test_seed_success_bundle_has_a_success_receipt_per_operation() -> None:
    answer = parse_bundle_answer(_load("bundle-guide.success-answer"))
    assert isinstance(answer, BundleReceipts)

    receipts = answer.resource_operation_receipts + answer.relationship_operation_receipts
    assert [(r.type, r.id) for r in receipts] == [
        ("office", "1"),
        ("provider", "2"),
        ("provider-office", "office.1,provider.2"),
    ]
    assert all(r.status is ReceiptStatus.SUCCESS for r in receipts)
    assert receipts[2].received_at == "2024-11-27T15:43:09.444574Z"
    assert answer.status is None
    assert answer.task_id is None


def test_seed_virtual_id_answer_carries_generated_ids() -> None:
    answer = parse_bundle_answer(_load("bundle-guide.virtual-id-answer"))
    assert isinstance(answer, BundleReceipts)

    office, provider = answer.resource_operation_receipts
    [relationship] = answer.relationship_operation_receipts
    for receipt in (office, provider):
        assert receipt.id is not None
        assert len(receipt.id) == ids.GENERATED_ID_LENGTH
        assert ids.is_resource_id(receipt.id)
        assert not ids.is_virtual_id(receipt.id)
    assert relationship.id == f"office.{office.id},provider.{provider.id}"
    assert (
        relationship.id == "office.2pUv7EdiOrKlphAYBtTKF0TwCM9,provider.2pUv7AQvsnalGn8I4RsBdKID8OR"
    )


def test_seed_virtual_id_request_uses_virtual_ids_on_creates_only() -> None:
    request = BundleRequest.model_validate(_load("bundle-guide.virtual-id-request"))

    payloads = [op.payload for op in request.resource_operations]
    assert all(op.action is Action.CREATE for op in request.resource_operations)
    assert [p.id for p in payloads] == ["@rootId1", "@rootId2"]
    assert all(p.id is not None and ids.is_virtual_id(p.id) for p in payloads)
    [relationship] = [op.payload for op in request.relationship_operations]
    assert relationship.from_ == EntityRef(id="@rootId1", type="office")
    assert relationship.to == EntityRef(id="@rootId2", type="provider")


def test_seed_bundle_skeleton_keeps_one_payload_per_action_in_order() -> None:
    request = BundleRequest.model_validate(_load("bundle-guide.request-skeleton"))

    for operations in (request.resource_operations, request.relationship_operations):
        assert [op.action for op in operations] == [Action.CREATE, Action.UPSERT, Action.DELETE]
    create, upsert, delete = (op.payload for op in request.resource_operations)
    assert isinstance(create, ResourcePayload)
    assert create.data == {"name": "Clinic Name"}
    assert isinstance(upsert, ResourcePayload)
    assert delete == ResourceDeletePayload(id="3", type="provider")


def test_seed_bulk_task_answer_keeps_the_failure_receipt() -> None:
    state = TaskState.model_validate(_load("bulk-guide.task-answer"))

    assert state.status is TaskStatus.SUCCESS
    assert state.is_terminal
    assert state.task_id is None
    assert state.receipts is not None
    ok, failed = state.receipts
    assert ok.status is ReceiptStatus.SUCCESS
    assert ok.id == "2dMyvjBs8mDQ7VJxjFPtWnFvaxp"
    assert failed.status is ReceiptStatus.FAILURE
    assert failed.error is not None
    assert (failed.error.code, failed.error.type) == (409, ErrorType.ALREADY_EXISTS)


def test_seed_relationship_bulk_status_reads_every_receipt_field() -> None:
    state = TaskState.model_validate(_load("relationship-bulk-status-reference.answer"))

    assert state.receipts is not None
    [receipt] = state.receipts
    assert receipt.action is Action.CREATE
    assert receipt.target_type is TargetType.RELATIONSHIP
    assert receipt.task_id == "bk_2wil2vg5uqi08x1aet097gLW8DO"
    assert receipt.completed_at == "2023-11-07T05:31:56Z"
    assert receipt.pipeline_execution is not None
    assert receipt.pipeline_execution.status == "SUCCESSFUL"
    assert receipt.pipeline_execution.pipeline_definition_id == "provider-office.1"
    assert receipt.error is not None
    assert receipt.error.type is ErrorType.ALREADY_EXISTS


def test_seed_bulk_accepted_answer_reads_legacy_bulk_id_as_task_id() -> None:
    answer = parse_bulk_answer(_load("bulk-guide.accepted-answer"))

    assert isinstance(answer, TaskAccepted)
    assert answer.status is SubmissionStatus.ACCEPTED
    assert answer.task_id == answer.bulk_id == "bk_2wil2vg5uqi08x1aet097gLW8DO"


def test_seed_bulk_rejected_answer_keeps_receipts_in_order() -> None:
    answer = parse_bulk_answer(_load("bulk-guide.rejected-answer"))

    assert isinstance(answer, BulkRejected)
    assert answer.status is SubmissionStatus.REJECTED
    assert [r.status for r in answer.receipts] == [ReceiptStatus.CANCELLED, ReceiptStatus.FAILURE]
    assert answer.receipts[1].error is not None
    assert answer.receipts[1].error.type is ErrorType.INVALID_ARGUMENT


def test_seed_bundle_reference_answer_is_an_accepted_task() -> None:
    answer = parse_bundle_answer(_load("bundle-reference.accepted-answer"))

    assert isinstance(answer, TaskAccepted)
    assert answer.task_id == "bd_2pUv7EdiOrKlphAYBtTKF0TwCM9"
    assert answer.bulk_id is None


def test_seed_relationship_create_answer_keeps_meta_and_unknown_fields() -> None:
    answer = RelationshipWriteAnswer.model_validate(_load("relationship-create-reference.answer"))

    assert answer.status is SubmissionStatus.ACCEPTED
    assert answer.task_id == "s_2pUv7EdiOrKlphAYBtTKF0TwCM9"
    relationship = answer.relationship
    assert relationship is not None
    assert relationship.from_ == EntityRef(id="1", type="office")
    assert relationship.meta is not None
    assert relationship.meta.source == "hospital-a"
    assert relationship.meta.identifier is not None
    [identifier] = relationship.meta.identifier
    assert identifier.value == "S-1001"
    assert identifier.model_extra == {"id": "staff-id-1"}
    assert identifier.period is not None
    assert identifier.period.end == "2024-12-31"


def test_seed_bulk_create_request_keeps_data_values_and_types() -> None:
    request = ResourceBulkRequest.model_validate(_load("bulk-guide.create-request"))

    [operation] = request.operations
    payload = operation.payload
    assert isinstance(payload, ResourcePayload)
    assert payload.id is None
    assert payload.data == {
        "name": "John Doe",
        "practiceNumber": 1020993,
        "specialities": ["Pharmacist"],
    }
    assert b'"practiceNumber":1020993' in dump_json(request)

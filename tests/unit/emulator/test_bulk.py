"""The bulk endpoints: judged before acceptance, processed in order, each operation alone."""

from __future__ import annotations

from typing import Any

import pytest

from emulator.registry import Registry
from tests.unit.emulator.conftest import RegistryFactory, seed
from tests.unit.emulator.ops import office, provider, rel, res


def _bulk(registry: Registry, ops: list[Any], target: str = "resources", source: str = "s") -> str:
    reply = registry.bulk(source, target, {"operations": ops}, raw_size=10)  # type: ignore[arg-type]
    assert reply.status == 202, reply.body
    return str(reply.body["taskId"])


def _finish(registry: Registry, task_id: str, source: str = "s") -> dict[str, Any]:
    for _ in range(10):
        answer = registry.task_status(source, task_id, with_receipts=True).body
        if answer["status"] != "PENDING":
            return dict(answer)
    raise AssertionError(f"task {task_id} still PENDING after 10 polls")


def test_bulk_accepted_answer_has_task_id_and_equal_bulk_id(registry: Registry) -> None:
    reply = registry.bulk("s", "resources", seed("bulk-guide.create-request"), raw_size=10)

    assert reply.status == 202
    assert reply.body["status"] == "ACCEPTED"
    assert reply.body["taskId"].startswith("bk_")
    assert reply.body["bulkId"] == reply.body["taskId"]


def test_bulk_bad_operation_rejects_the_request_in_the_legacy_shape(registry: Registry) -> None:
    ops = [
        provider("1"),
        res("CREATE", "provider", "2", data={"name": "x", "UNKNOWN": 1}),
        provider("3"),
        res("UPSERT", "provider", "4", data={"practiceNumber": "not a number"}),
    ]

    reply = registry.bulk("s", "resources", {"operations": ops}, raw_size=10)

    assert reply.status == 400
    assert reply.body["status"] == "REJECTED"
    receipts = reply.body["receipts"]
    assert receipts[0] == {"status": "CANCELLED"}
    assert receipts[2] == {"status": "CANCELLED"}
    assert receipts[1]["status"] == "FAILURE"
    assert receipts[1]["error"]["details"][0]["message"] == (
        "additionalProperties 'UNKNOWN' not allowed"
    )
    assert set(receipts[3]) == {"status", "error"}
    assert "practiceNumber" in receipts[3]["error"]["details"][0]["message"]
    assert registry.task_ids_of("s") == []


def test_bulk_relationship_operation_on_resources_endpoint_is_rejected(
    registry: Registry,
) -> None:
    reply = registry.bulk(
        "s", "resources", {"operations": [provider("1"), rel("CREATE", "1", "2")]}, raw_size=10
    )

    assert reply.status == 400
    assert reply.body["receipts"][1]["status"] == "FAILURE"
    assert "relationship operation" in reply.body["receipts"][1]["error"]["message"]


def test_bulk_resource_operation_on_relationships_endpoint_is_rejected(
    registry: Registry,
) -> None:
    reply = registry.bulk("s", "relationships", {"operations": [provider("1")]}, raw_size=10)

    assert reply.status == 400
    assert "resource operation" in reply.body["receipts"][0]["error"]["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "operations"), ({"operations": {}}, "operations"), ({"operations": [], "x": 1}, "x")],
)
def test_bulk_body_shape_errors_name_the_field(
    registry: Registry, body: dict[str, Any], field: str
) -> None:
    reply = registry.bulk("s", "resources", body, raw_size=10)

    assert reply.status == 400
    assert reply.body["message"].startswith(field)


def test_bulk_over_the_byte_limit_answers_413(make_registry: RegistryFactory) -> None:
    registry = make_registry(max_bulk_bytes=100)

    reply = registry.bulk("s", "resources", {"operations": [provider("1")]}, raw_size=101)

    assert reply.status == 413
    assert reply.body["type"] == "CONTENT_TOO_LARGE"


def test_bulk_processes_in_order_and_a_failure_does_not_stop_the_rest(registry: Registry) -> None:
    task_id = _bulk(
        registry,
        [
            provider("1", action="CREATE"),
            provider("1", action="CREATE"),
            res("DELETE", "provider", "missing"),
            provider("1", "Renamed"),
            res("CREATE", "provider", data={"name": "no id"}),
        ],
    )

    answer = _finish(registry, task_id)

    assert answer["status"] == "FAILURE"
    receipts = answer["receipts"]
    assert [r["status"] for r in receipts] == [
        "SUCCESS",
        "FAILURE",
        "FAILURE",
        "SUCCESS",
        "SUCCESS",
    ]
    assert receipts[1]["error"] == {
        "code": 409,
        "message": "record with id '1' already exists",
        "type": "ALREADY_EXISTS",
    }
    assert receipts[2]["error"]["code"] == 404
    assert receipts[2]["error"]["type"] == "NOT_FOUND"
    assert len(receipts[4]["id"]) == 27
    assert registry.get_resource("s", "provider", "1").body["data"] == {"name": "Renamed"}
    assert registry.get_resource("s", "provider", receipts[4]["id"]).status == 200


def test_bulk_task_receipts_carry_the_documented_fields(registry: Registry) -> None:
    task_id = _bulk(registry, [provider("1")])

    receipt = _finish(registry, task_id)["receipts"][0]

    assert set(receipt) == {
        "receivedAt",
        "completedAt",
        "taskId",
        "action",
        "status",
        "targetType",
        "id",
        "type",
    }
    assert receipt["taskId"] == task_id
    assert (receipt["action"], receipt["targetType"]) == ("UPSERT", "RESOURCE")


def test_bulk_legacy_status_ends_success_despite_failures(make_registry: RegistryFactory) -> None:
    registry = make_registry(legacy_bulk_status=True)
    task_id = _bulk(registry, [provider("1"), res("DELETE", "provider", "missing")])

    answer = _finish(registry, task_id)

    assert answer["status"] == "SUCCESS"
    assert [r["status"] for r in answer["receipts"]] == ["SUCCESS", "FAILURE"]


def test_bulk_relationship_to_a_missing_resource_fails_failed_precondition(
    registry: Registry,
) -> None:
    _finish(registry, _bulk(registry, [office("1"), provider("2")]))
    task_id = _bulk(
        registry, [rel("CREATE", "1", "2"), rel("CREATE", "1", "404")], target="relationships"
    )

    answer = _finish(registry, task_id)

    assert [r["status"] for r in answer["receipts"]] == ["SUCCESS", "FAILURE"]
    assert answer["receipts"][1]["error"]["type"] == "FAILED_PRECONDITION"
    assert answer["receipts"][1]["id"] == "office.1,provider.404"
    assert answer["receipts"][0]["targetType"] == "RELATIONSHIP"


def test_bulk_status_route_answers_without_task_id(registry: Registry) -> None:
    task_id = _bulk(registry, [provider("1")])

    pending = registry.bulk_status("s", "resources", task_id, with_receipts=False)
    done = registry.bulk_status("s", "resources", task_id, with_receipts=False)
    with_receipts = registry.bulk_status("s", "resources", task_id, with_receipts=True)

    assert pending.body == {"status": "PENDING"}
    assert done.body == {"status": "SUCCESS"}
    assert set(with_receipts.body) == {"status", "receipts"}
    assert with_receipts.body["receipts"][0]["status"] == "SUCCESS"


def test_bulk_task_route_answers_with_task_id(registry: Registry) -> None:
    task_id = _bulk(registry, [provider("1")])

    pending = registry.task_status("s", task_id, with_receipts=True).body
    done = registry.task_status("s", task_id, with_receipts=False).body

    assert pending["taskId"] == task_id
    assert pending["receipts"][0]["status"] == "PENDING"
    assert "completedAt" not in pending["receipts"][0]
    assert done == {"status": "SUCCESS", "taskId": task_id}


def test_bulk_status_of_the_other_target_is_not_found(registry: Registry) -> None:
    task_id = _bulk(registry, [provider("1")])

    reply = registry.bulk_status("s", "relationships", task_id, with_receipts=False)

    assert reply.status == 404
    assert reply.body["type"] == "NOT_FOUND"


def test_bulk_status_accepts_the_deprecated_bare_id(registry: Registry) -> None:
    task_id = _bulk(registry, [provider("1")])

    reply = registry.bulk_status("s", "resources", task_id.removeprefix("bk_"), with_receipts=False)

    assert reply.status == 200


def test_bulk_virtual_id_is_generated_on_create_and_rejected_on_upsert(
    registry: Registry,
) -> None:
    created = _finish(registry, _bulk(registry, [res("CREATE", "provider", "@rootId1", data={})]))
    rejected = registry.bulk(
        "s",
        "resources",
        {"operations": [res("UPSERT", "provider", "@rootId1", data={})]},
        raw_size=10,
    )

    assert len(created["receipts"][0]["id"]) == 27
    assert rejected.status == 400
    assert "only allowed on CREATE" in rejected.body["receipts"][0]["error"]["message"]


def test_bulk_over_the_operation_limit_is_refused(make_registry: RegistryFactory) -> None:
    registry = make_registry(max_ops_per_request=2)

    reply = registry.bulk(
        "s",
        "resources",
        {"operations": [provider("1"), provider("2"), provider("3")]},
        raw_size=10,
    )

    assert reply.status == 400
    assert reply.body["message"].startswith("operations: 3 operations")

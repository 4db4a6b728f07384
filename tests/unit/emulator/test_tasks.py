"""Task lifecycle: PENDING by polls and by time, review and failure overrides, receipt order."""

from __future__ import annotations

from typing import Any

from emulator.registry import Registry, TaskOverride
from tests.unit.emulator.conftest import FakeClock, RegistryFactory
from tests.unit.emulator.ops import bundle, provider, res


def _accept(registry: Registry, ops: list[Any], **kwargs) -> str:
    reply = registry.bulk("s", "resources", {"operations": ops}, raw_size=10, **kwargs)
    assert reply.status == 202, reply.body
    return str(reply.body["taskId"])


def _status(registry: Registry, task_id: str) -> str:
    return str(registry.task_status("s", task_id, with_receipts=False).body["status"])


def test_task_stays_pending_for_the_configured_polls(make_registry: RegistryFactory) -> None:
    registry = make_registry(task_pending_polls=3)
    task_id = _accept(registry, [provider("1")])

    statuses = [_status(registry, task_id) for _ in range(5)]

    assert statuses == ["PENDING", "PENDING", "PENDING", "SUCCESS", "SUCCESS"]


def test_task_with_zero_polls_is_processed_on_any_access(make_registry: RegistryFactory) -> None:
    registry = make_registry(task_pending_polls=0)
    _accept(registry, [provider("1")])

    assert registry.get_resource("s", "provider", "1").status == 200


def test_task_stays_pending_until_its_time_has_passed(
    make_registry: RegistryFactory, clock: FakeClock
) -> None:
    registry = make_registry(task_pending_polls=0, task_pending_s=5.0)
    task_id = _accept(registry, [provider("1")])

    clock.advance(4.9)
    assert _status(registry, task_id) == "PENDING"
    assert registry.get_resource("s", "provider", "1").status == 404
    clock.advance(0.1)
    assert registry.get_resource("s", "provider", "1").status == 200
    assert _status(registry, task_id) == "SUCCESS"


def test_task_needs_both_its_polls_and_its_time(
    make_registry: RegistryFactory, clock: FakeClock
) -> None:
    registry = make_registry(task_pending_polls=1, task_pending_s=2.0)
    task_id = _accept(registry, [provider("1")])

    assert [_status(registry, task_id) for _ in range(3)] == ["PENDING"] * 3
    clock.advance(2.0)
    assert _status(registry, task_id) == "SUCCESS"


def test_task_completed_at_follows_the_clock(
    make_registry: RegistryFactory, clock: FakeClock
) -> None:
    registry = make_registry(task_pending_polls=1)
    task_id = _accept(registry, [provider("1")])
    _status(registry, task_id)
    clock.advance(1.5)

    receipt = registry.task_status("s", task_id, with_receipts=True).body["receipts"][0]

    assert receipt["receivedAt"] == "2024-11-27T15:43:09.438665Z"
    assert receipt["completedAt"] == "2024-11-27T15:43:10.938665Z"


def test_task_override_pending_shows_a_pipeline_execution_in_review(
    registry: Registry,
) -> None:
    task_id = _accept(
        registry, [provider("1"), provider("2")], override=TaskOverride(pending_polls=4)
    )

    answers = [registry.task_status("s", task_id, with_receipts=True).body for _ in range(5)]

    for answer in answers[:4]:
        assert answer["status"] == "PENDING"
        for receipt in answer["receipts"]:
            assert receipt["status"] == "PENDING"
            execution = receipt["pipelineExecution"]
            assert execution["status"] == "IN_REVIEW"
            assert set(execution) == {"id", "pipelineDefinitionId", "status"}
            assert execution["pipelineDefinitionId"] == "provider.1"
    assert answers[4]["status"] == "SUCCESS"
    assert answers[4]["receipts"][0]["pipelineExecution"]["status"] == "SUCCESSFUL"


def test_task_override_pending_makes_a_sync_source_answer_accepted(registry: Registry) -> None:
    reply = registry.bundle(
        "s", bundle([provider("1")]), raw_size=10, override=TaskOverride(pending_polls=1)
    )

    assert reply.status == 202


def test_task_override_failure_fails_every_receipt_and_applies_nothing(
    make_registry: RegistryFactory,
) -> None:
    registry = make_registry(task_pending_polls=0, legacy_bulk_status=True)
    failure = {"code": 500, "message": "injected failure", "type": "INTERNAL"}
    task_id = _accept(
        registry, [provider("1"), provider("2")], override=TaskOverride(failure=failure)
    )

    answer = registry.task_status("s", task_id, with_receipts=True).body

    assert answer["status"] == "FAILURE"
    assert [r["status"] for r in answer["receipts"]] == ["FAILURE", "FAILURE"]
    assert all(r["error"] == failure for r in answer["receipts"])
    assert registry.snapshot("s")["resources"] == []


def test_task_receipts_keep_operation_order_by_default(make_registry: RegistryFactory) -> None:
    registry = make_registry(task_pending_polls=0)
    task_id = _accept(registry, [provider(str(n)) for n in range(20)])

    receipts = registry.task_status("s", task_id, with_receipts=True).body["receipts"]

    assert [r["id"] for r in receipts] == [str(n) for n in range(20)]


def test_task_shuffled_receipts_hold_the_same_set_in_another_order(
    make_registry: RegistryFactory,
) -> None:
    registry = make_registry(task_pending_polls=0, shuffle_receipts=True)
    task_id = _accept(registry, [provider(str(n)) for n in range(20)])

    first = registry.task_status("s", task_id, with_receipts=True).body["receipts"]
    again = registry.task_status("s", task_id, with_receipts=True).body["receipts"]

    ids = [r["id"] for r in first]
    assert ids != [str(n) for n in range(20)]
    assert sorted(ids, key=int) == [str(n) for n in range(20)]
    assert again == first


def test_task_unknown_id_is_not_found(registry: Registry) -> None:
    reply = registry.task_status("s", "bk_doesnotexist", with_receipts=False)

    assert reply.status == 404
    assert reply.body["type"] == "NOT_FOUND"
    assert reply.body["details"] == []


def test_task_of_another_source_is_not_found(registry: Registry) -> None:
    task_id = _accept(registry, [provider("1")])

    assert registry.task_status("other", task_id, with_receipts=False).status == 404
    assert registry.bulk_status("other", "resources", task_id, with_receipts=False).status == 404
    assert registry.task_status("s", task_id, with_receipts=False).status == 200


def test_task_deprecated_bare_id_is_found_on_the_task_route(registry: Registry) -> None:
    task_id = _accept(registry, [provider("1")])

    reply = registry.task_status("s", task_id.removeprefix("bk_"), with_receipts=False)

    assert reply.status == 200
    assert reply.body["taskId"] == task_id


def test_task_single_write_task_is_readable_and_terminal(registry: Registry) -> None:
    reply = registry.create_resource("s", "provider", {"id": "1", "data": {"name": "x"}})

    answer = registry.task_status("s", reply.body["taskId"], with_receipts=True).body

    assert reply.body["taskId"].startswith("s_")
    assert answer["status"] == "SUCCESS"
    assert answer["receipts"][0]["action"] == "CREATE"
    assert answer["receipts"][0]["id"] == "1"


def test_task_async_single_write_failure_ends_the_task_failure(
    make_registry: RegistryFactory,
) -> None:
    registry = make_registry(mode="async", task_pending_polls=0)
    registry.create_resource("s", "provider", {"id": "1", "data": {}})
    reply = registry.create_resource("s", "provider", {"id": "1", "data": {}})

    answer = registry.task_status("s", reply.body["taskId"], with_receipts=True).body

    assert reply.status == 202
    assert answer["status"] == "FAILURE"
    assert answer["receipts"][0]["error"]["type"] == "ALREADY_EXISTS"


def test_task_ids_and_counts_are_listed_per_source(make_registry: RegistryFactory) -> None:
    registry = make_registry(task_pending_polls=0)
    first = _accept(registry, [provider("1")])
    second = _accept(registry, [res("DELETE", "provider", "1")])

    assert registry.task_ids_of("s") == [first, second]
    assert registry.counts() == {"s": {"resources": 0, "relationships": 0, "tasks": 2}}
    assert [(w["action"], w["taskId"]) for w in registry.write_log()] == [
        ("UPSERT", first),
        ("DELETE", second),
    ]

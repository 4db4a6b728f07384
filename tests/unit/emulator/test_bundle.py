"""The bundle endpoint: the seed examples, atomicity, virtual ids, refusals, limits."""

from __future__ import annotations

import re
from typing import Any

from api_client import ids
from emulator.registry import Registry, TaskOverride
from tests.unit.emulator.conftest import RegistryFactory, seed
from tests.unit.emulator.ops import bundle, office, provider, rel, res

RFC3339_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z")


def _without_received_at(answer: dict[str, Any]) -> dict[str, Any]:
    return {
        key: [{k: v for k, v in r.items() if k != "receivedAt"} for r in receipts]
        for key, receipts in answer.items()
    }


def _assert_received_at_well_formed(answer: dict[str, Any]) -> None:
    for receipts in answer.values():
        for receipt in receipts:
            assert RFC3339_UTC.fullmatch(receipt["receivedAt"]), receipt


def test_bundle_seed_use_case_answers_the_seed_receipts(registry: Registry) -> None:
    reply = registry.bundle("hospital-a", seed("bundle-guide.use-case-request"), raw_size=500)

    assert reply.status == 200
    expected = seed("bundle-guide.success-answer")
    assert _without_received_at(reply.body) == _without_received_at(expected)
    _assert_received_at_well_formed(reply.body)
    assert reply.body["resourceOperationReceipts"][0]["receivedAt"] == "2024-11-27T15:43:09.438665Z"


def test_bundle_seed_use_case_persists_every_record(registry: Registry) -> None:
    registry.bundle("hospital-a", seed("bundle-guide.use-case-request"), raw_size=500)

    office_record = registry.get_resource("hospital-a", "office", "1")
    assert office_record.status == 200
    assert office_record.body["data"] == {"name": "Clinic Name"}
    assert office_record.body["meta"]["source"] == "hospital-a"
    relationship = registry.get_relationship("hospital-a", "provider-office", "1.2")
    assert relationship.status == 200
    assert relationship.body["data"] == {"description": "Works at"}


def test_bundle_unknown_property_fails_with_the_seed_error_and_persists_nothing(
    registry: Registry,
) -> None:
    body = seed("bundle-guide.use-case-request")
    body["resourceOperations"][0]["upsert"]["data"]["UNKNOWN"] = "x"

    reply = registry.bundle("hospital-a", body, raw_size=500)

    assert reply.status == 400
    expected = seed("bundle-guide.failed-answer")
    assert _without_received_at(reply.body) == _without_received_at(expected)
    assert registry.snapshot("hospital-a") == {"resources": [], "relationships": []}
    assert registry.write_log() == []


def test_bundle_failure_status_is_configurable(make_registry: RegistryFactory) -> None:
    registry = make_registry(bundle_failure_status=200)
    body = bundle([office("1"), res("DELETE", "provider", "missing")])

    reply = registry.bundle("s", body, raw_size=10)

    assert reply.status == 200
    statuses = [r["status"] for r in reply.body["resourceOperationReceipts"]]
    assert statuses == ["CANCELLED", "FAILURE"]


def test_bundle_failure_rolls_back_writes_done_before_it(registry: Registry) -> None:
    registry.bundle("s", bundle([office("1", "Old name")]), raw_size=10)
    body = bundle(
        [office("1", "New name"), provider("2")],
        [rel("CREATE", "1", "2"), rel("DELETE", "1", "9")],
    )

    reply = registry.bundle("s", body, raw_size=10)

    receipts = reply.body["relationshipOperationReceipts"]
    assert [r["status"] for r in receipts] == ["CANCELLED", "FAILURE"]
    assert receipts[1]["error"]["type"] == "NOT_FOUND"
    assert [r["status"] for r in reply.body["resourceOperationReceipts"]] == ["CANCELLED"] * 2
    assert registry.get_resource("s", "office", "1").body["data"] == {"name": "Old name"}
    assert registry.get_resource("s", "provider", "2").status == 404


def test_bundle_virtual_ids_become_generated_ids_that_reads_find(registry: Registry) -> None:
    reply = registry.bundle("hospital-a", seed("bundle-guide.virtual-id-request"), raw_size=500)

    assert reply.status == 200
    office_id, provider_id = (r["id"] for r in reply.body["resourceOperationReceipts"])
    for generated in (office_id, provider_id):
        assert len(generated) == ids.GENERATED_ID_LENGTH
        assert ids.is_resource_id(generated)
        assert not generated.startswith("@")
    assert office_id != provider_id
    relationship_receipt = reply.body["relationshipOperationReceipts"][0]
    assert relationship_receipt["id"] == f"office.{office_id},provider.{provider_id}"
    assert registry.get_resource("hospital-a", "office", office_id).status == 200
    assert registry.get_resource("hospital-a", "provider", provider_id).status == 200
    assert registry.get_relationship(
        "hospital-a", "provider-office", f"{office_id}.{provider_id}"
    ).body["from"] == {"id": office_id, "type": "office"}


def test_bundle_virtual_id_resolves_in_reference_properties(registry: Registry) -> None:
    registry.put_profile(
        "s",
        "provider",
        {"properties": {"name": {"type": "string"}, "office": {"type": "reference"}}},
    )
    body = bundle(
        [
            res("CREATE", "office", "@rootId1", data={"name": "Clinic"}),
            res("CREATE", "provider", "@rootId2", data={"office": {"id": "@rootId1"}}),
        ]
    )

    reply = registry.bundle("s", body, raw_size=10)

    office_id, provider_id = (r["id"] for r in reply.body["resourceOperationReceipts"])
    stored = registry.get_resource("s", "provider", provider_id).body
    assert stored["data"]["office"] == {"id": office_id}


def test_bundle_root_id_on_upsert_fails_and_cancels_the_rest(registry: Registry) -> None:
    body = bundle([office("1"), res("UPSERT", "provider", "@rootId1", data={})])

    reply = registry.bundle("s", body, raw_size=10)

    first, second = reply.body["resourceOperationReceipts"]
    assert first["status"] == "CANCELLED"
    assert second["status"] == "FAILURE"
    assert second["error"]["type"] == "INVALID_ARGUMENT"
    assert "@rootId1" in second["error"]["message"]
    assert "only allowed on CREATE" in second["error"]["message"]


def test_bundle_undefined_virtual_id_in_relationship_fails(registry: Registry) -> None:
    body = bundle([office("1")], [rel("CREATE", "1", "@rootId7")])

    reply = registry.bundle("s", body, raw_size=10)

    failure = reply.body["relationshipOperationReceipts"][0]
    assert failure["status"] == "FAILURE"
    assert "@rootId7" in failure["error"]["message"]
    assert registry.get_resource("s", "office", "1").status == 404


def test_bundle_two_operations_on_one_resource_are_refused_naming_the_id(
    registry: Registry,
) -> None:
    body = bundle([office("1"), provider("7"), res("DELETE", "provider", "7")])

    reply = registry.bundle("s", body, raw_size=10)

    assert reply.status == 400
    assert reply.body["type"] == "INVALID_ARGUMENT"
    assert "'7'" in reply.body["message"]
    assert "resourceOperations[2]" in reply.body["message"]
    assert reply.body["details"] == []
    assert registry.snapshot("s")["resources"] == []


def test_bundle_two_operations_on_one_relationship_are_refused(registry: Registry) -> None:
    body = bundle(
        [office("1"), provider("2")],
        [rel("UPSERT", "1", "2"), rel("DELETE", "1", "2")],
    )

    reply = registry.bundle("s", body, raw_size=10)

    assert reply.status == 400
    assert "office.1,provider.2" in reply.body["message"]


def test_bundle_same_id_in_two_types_is_allowed(registry: Registry) -> None:
    reply = registry.bundle("s", bundle([office("1"), provider("1")]), raw_size=10)

    assert reply.status == 200


def test_bundle_shape_errors_name_the_field(registry: Registry) -> None:
    cases = [
        ({"resourceOperations": []}, "relationshipOperations"),
        ({"resourceOperations": {}, "relationshipOperations": []}, "resourceOperations"),
        (bundle([{"action": "MERGE", "merge": {}}]), "resourceOperations[0].action"),
        (bundle([{"action": "CREATE", "upsert": {}}]), "resourceOperations[0].upsert"),
        (bundle([res("CREATE", "office", data=[])]), "resourceOperations[0].create.data"),
        (
            bundle([], [{"action": "CREATE", "create": {"type": "x"}}]),
            "relationshipOperations[0].create.from",
        ),
        ([], "body"),
    ]
    for body, field in cases:
        reply = registry.bundle("s", body, raw_size=10)
        assert reply.status == 400, body
        assert reply.body["type"] == "INVALID_ARGUMENT"
        assert reply.body["message"].startswith(field), (field, reply.body["message"])


def test_bundle_over_the_byte_limit_is_refused_without_receipts(
    make_registry: RegistryFactory,
) -> None:
    registry = make_registry(max_bundle_bytes=1000)

    reply = registry.bundle("s", bundle([office("1")]), raw_size=1001)

    assert reply.status == 413
    assert reply.body["type"] == "CONTENT_TOO_LARGE"
    assert "resourceOperationReceipts" not in reply.body
    assert registry.bundle("s", bundle([office("1")]), raw_size=1000).status == 200


def test_bundle_over_the_operation_limit_is_refused(make_registry: RegistryFactory) -> None:
    registry = make_registry(max_ops_per_request=2)

    reply = registry.bundle(
        "s", bundle([office("1"), office("2")], [rel("CREATE", "1", "2")]), raw_size=10
    )

    assert reply.status == 400
    assert "more than the limit of 2" in reply.body["message"]


def test_bundle_seed_reference_request_succeeds_with_given_meta(registry: Registry) -> None:
    registry.bundle("hospital-a", bundle([office("1")]), raw_size=10)

    reply = registry.bundle("hospital-a", seed("bundle-reference.request"), raw_size=500)

    assert reply.status == 200, reply.body
    stored = registry.get_resource("hospital-a", "provider", "p-17").body
    assert stored["meta"]["createdAt"] == "2023-11-07T05:31:56Z"
    assert stored["meta"]["identifier"][0]["value"] == "p-17"


def test_bundle_async_answers_accepted_and_applies_when_processed(
    make_registry: RegistryFactory,
) -> None:
    registry = make_registry(mode="async")

    reply = registry.bundle("s", seed("bundle-guide.use-case-request"), raw_size=500)

    assert reply.status == 202
    assert set(reply.body) == {"taskId", "status"}
    assert reply.body["status"] == "ACCEPTED"
    assert reply.body["taskId"].startswith("bd_")
    assert registry.get_resource("s", "office", "1").status == 404
    pending = registry.task_status("s", reply.body["taskId"], with_receipts=True).body
    assert pending["status"] == "PENDING"
    done = registry.task_status("s", reply.body["taskId"], with_receipts=True).body
    assert done["status"] == "SUCCESS"
    assert [(r["targetType"], r["id"]) for r in done["receipts"]] == [
        ("RESOURCE", "1"),
        ("RESOURCE", "2"),
        ("RELATIONSHIP", "office.1,provider.2"),
    ]
    assert registry.get_resource("s", "office", "1").status == 200


def test_bundle_async_failure_shows_in_the_task(make_registry: RegistryFactory) -> None:
    registry = make_registry(mode="async", task_pending_polls=0)
    body = seed("bundle-guide.use-case-request")
    body["resourceOperations"][0]["upsert"]["data"]["UNKNOWN"] = 1

    task_id = registry.bundle("s", body, raw_size=500).body["taskId"]

    answer = registry.task_status("s", task_id, with_receipts=True).body
    assert answer["status"] == "FAILURE"
    assert [r["status"] for r in answer["receipts"]] == ["FAILURE", "CANCELLED", "CANCELLED"]
    assert answer["receipts"][0]["error"]["message"] == "invalid schema for office"
    assert registry.snapshot("s")["resources"] == []


def test_bundle_async_above_threshold(make_registry: RegistryFactory) -> None:
    registry = make_registry(mode="async_above", async_above_ops=2)

    small = registry.bundle("s", bundle([office("1"), office("2")]), raw_size=10)
    large = registry.bundle("s", bundle([office("3"), office("4"), office("5")]), raw_size=10)

    assert small.status == 200
    assert large.status == 202


def test_bundle_source_mode_overrides_the_default(make_registry: RegistryFactory) -> None:
    registry = make_registry(mode="sync", source_modes={"slow": "async"})

    assert registry.bundle("fast", bundle([office("1")]), raw_size=10).status == 200
    assert registry.bundle("slow", bundle([office("1")]), raw_size=10).status == 202


def test_bundle_force_async_override(registry: Registry) -> None:
    reply = registry.bundle(
        "s", bundle([office("1")]), raw_size=10, override=TaskOverride(force_async=True)
    )

    assert reply.status == 202


def test_bundle_sync_injected_failure_fails_every_receipt(registry: Registry) -> None:
    failure = {"code": 500, "message": "injected", "type": "INTERNAL"}

    reply = registry.bundle(
        "s", bundle([office("1")], []), raw_size=10, override=TaskOverride(failure=failure)
    )

    assert reply.status == 400
    assert reply.body["resourceOperationReceipts"][0]["error"] == failure
    assert registry.snapshot("s")["resources"] == []


def _refused_bundle() -> Any:
    """Office 1 exists; then a valid office, a CREATE of 1 again, an off-profile provider, a
    valid provider, a DELETE of a missing office, a link to a missing provider and a valid link."""
    return bundle(
        [
            office("5", "New office"),
            res("CREATE", "office", "1", data={"name": "Again"}),
            res("UPSERT", "provider", "2", data={"name": "Ann", "UNKNOWN": 1}),
            provider("3"),
            res("DELETE", "office", "9"),
        ],
        [rel("UPSERT", "1", "404"), rel("CREATE", "1", "3")],
    )


def test_bundle_failures_first_reports_only_the_first_failing_operation(
    make_registry: RegistryFactory,
) -> None:
    registry = make_registry()
    registry.bundle("s", bundle([office("1", "Old name")]), raw_size=10)
    body = bundle([office("2"), res("DELETE", "office", "9"), res("DELETE", "office", "8")])

    reply = registry.bundle("s", body, raw_size=10)

    statuses = [r["status"] for r in reply.body["resourceOperationReceipts"]]
    assert statuses == ["CANCELLED", "FAILURE", "CANCELLED"]
    assert registry.config.bundle_failures == "first"


def _errors(receipts: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    return [(r["status"], r.get("error", {}).get("type")) for r in receipts]


def test_bundle_failures_all_reports_every_failing_operation_and_applies_nothing(
    make_registry: RegistryFactory,
) -> None:
    registry = make_registry(bundle_failures="all")
    registry.bundle("s", bundle([office("1", "Old name")]), raw_size=10)
    before = registry.snapshot("s")

    reply = registry.bundle("s", _refused_bundle(), raw_size=10)

    assert reply.status == 400
    assert _errors(reply.body["resourceOperationReceipts"]) == [
        ("CANCELLED", None),
        ("FAILURE", "ALREADY_EXISTS"),
        ("FAILURE", "FAILED_PRECONDITION"),
        ("CANCELLED", None),
        ("FAILURE", "NOT_FOUND"),
    ]
    assert _errors(reply.body["relationshipOperationReceipts"]) == [
        ("FAILURE", "FAILED_PRECONDITION"),
        ("CANCELLED", None),
    ]
    schema = reply.body["resourceOperationReceipts"][2]["error"]
    assert schema["message"] == "invalid schema for provider"
    assert "404" in reply.body["relationshipOperationReceipts"][0]["error"]["message"]
    assert registry.snapshot("s") == before
    assert [w["id"] for w in registry.write_log()] == ["1"]


def test_bundle_failures_all_judges_each_operation_on_what_ran_before_it(
    make_registry: RegistryFactory,
) -> None:
    registry = make_registry(bundle_failures="all")
    # the provider's CREATE fails, so the link to it fails too; the office's CREATE runs, so the
    # second link finds it (and is cancelled, not failed)
    body = bundle(
        [res("CREATE", "provider", "2", data={"UNKNOWN": 1}), office("1", action="CREATE")],
        [rel("CREATE", "1", "2"), rel("DELETE", "1", "7")],
    )

    reply = registry.bundle("s", body, raw_size=10)

    assert _errors(reply.body["resourceOperationReceipts"]) == [
        ("FAILURE", "FAILED_PRECONDITION"),
        ("CANCELLED", None),
    ]
    assert _errors(reply.body["relationshipOperationReceipts"]) == [
        ("FAILURE", "FAILED_PRECONDITION"),
        ("FAILURE", "NOT_FOUND"),
    ]
    assert registry.snapshot("s") == {"resources": [], "relationships": []}


def test_bundle_failures_all_shows_every_failure_in_an_async_task(
    make_registry: RegistryFactory,
) -> None:
    registry = make_registry(mode="async", task_pending_polls=0, bundle_failures="all")
    body = bundle([office("1"), res("DELETE", "office", "9"), res("DELETE", "provider", "8")])

    task_id = registry.bundle("s", body, raw_size=10).body["taskId"]

    answer = registry.task_status("s", task_id, with_receipts=True).body
    assert answer["status"] == "FAILURE"
    assert _errors(answer["receipts"]) == [
        ("CANCELLED", None),
        ("FAILURE", "NOT_FOUND"),
        ("FAILURE", "NOT_FOUND"),
    ]
    assert registry.snapshot("s")["resources"] == []


def test_bundle_failures_switch_applies_from_the_next_bundle(registry: Registry) -> None:
    body = bundle([res("DELETE", "office", "9"), res("DELETE", "office", "8")])

    first = registry.bundle("s", body, raw_size=10).body["resourceOperationReceipts"]
    registry.config.bundle_failures = "all"  # type: ignore[assignment]  # validated on assignment
    every = registry.bundle("s", body, raw_size=10).body["resourceOperationReceipts"]

    assert [r["status"] for r in first] == ["FAILURE", "CANCELLED"]
    assert [r["status"] for r in every] == ["FAILURE", "FAILURE"]

"""The pure state model as an oracle: one operation at a time, atomic, with receipts."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from emulator.config import DeletePolicy, EmulatorConfig
from emulator.failures import RequestRefusedError
from emulator.registry import Registry
from emulator.state import SourceState
from tests.unit.emulator.conftest import FakeClock, seed
from tests.unit.emulator.ops import bundle, office, provider, rel, res


def _state(clock: FakeClock, **kwargs) -> SourceState:
    counter = itertools.count(1)
    return SourceState("s", clock=clock, new_id=lambda: f"gen-{next(counter)}", **kwargs)


def _outcome(receipt: dict[str, Any]) -> tuple[str, str | None]:
    return receipt["status"], receipt.get("error", {}).get("type")


def test_state_apply_resource_operation_returns_the_bundle_receipt(clock: FakeClock) -> None:
    state = _state(clock)

    receipt = state.apply_resource_operation(office("1"))

    assert receipt == {
        "id": "1",
        "receivedAt": "2024-11-27T15:43:09.438665Z",
        "status": "SUCCESS",
        "type": "office",
    }
    assert state.snapshot()["resources"][0]["data"] == {"name": "Clinic"}


def test_state_generated_ids_come_from_the_injected_generator(clock: FakeClock) -> None:
    state = _state(clock)

    first = state.apply_resource_operation(res("CREATE", "provider", data={}))
    second = state.apply_resource_operation(res("CREATE", "provider", "@rootId1", data={}))

    assert (first["id"], second["id"]) == ("gen-1", "gen-2")


def test_state_failed_operation_changes_nothing(clock: FakeClock) -> None:
    state = _state(clock)
    state.apply_resource_operation(office("1", "Kept"))
    before = state.snapshot()

    outcomes = [
        _outcome(state.apply_resource_operation(office("1", action="CREATE"))),
        _outcome(state.apply_resource_operation(res("DELETE", "office", "2"))),
        _outcome(state.apply_resource_operation(res("UPSERT", "office", "1", data={"x": 1}))),
        _outcome(state.apply_resource_operation(res("UPSERT", "nope", "1", data={}))),
        _outcome(state.apply_resource_operation({"action": "CREATE"})),
        _outcome(state.apply_relationship_operation(rel("CREATE", "1", "2"))),
    ]

    assert outcomes == [
        ("FAILURE", "ALREADY_EXISTS"),
        ("FAILURE", "NOT_FOUND"),
        ("FAILURE", "FAILED_PRECONDITION"),
        ("FAILURE", "FAILED_PRECONDITION"),
        ("FAILURE", "INVALID_ARGUMENT"),
        ("FAILURE", "FAILED_PRECONDITION"),
    ]
    assert state.snapshot() == before


def test_state_one_at_a_time_matches_the_registry_one_by_one(clock: FakeClock) -> None:
    # Given the same sequence, including operations that fail on their own
    resources = [
        office("1", action="CREATE"),
        provider("2"),
        office("1", action="CREATE"),
        res("DELETE", "provider", "3"),
        provider("3", "Later"),
    ]
    relationships = [rel("CREATE", "1", "2"), rel("CREATE", "1", "9"), rel("UPSERT", "1", "3")]
    final_delete = res("DELETE", "office", "1")
    oracle = _state(clock)
    registry = Registry(EmulatorConfig(), clock=clock)

    # When the oracle applies each alone, and the registry gets each in its own bundle
    expected = [_outcome(oracle.apply_resource_operation(op)) for op in resources]
    expected += [_outcome(oracle.apply_relationship_operation(op)) for op in relationships]
    expected.append(_outcome(oracle.apply_resource_operation(final_delete)))
    actual = []
    for op in resources:
        reply = registry.bundle("s", bundle([op]), raw_size=10)
        actual.append(_outcome(reply.body["resourceOperationReceipts"][0]))
    for op in relationships:
        reply = registry.bundle("s", bundle([], [op]), raw_size=10)
        actual.append(_outcome(reply.body["relationshipOperationReceipts"][0]))
    reply = registry.bundle("s", bundle([final_delete]), raw_size=10)
    actual.append(_outcome(reply.body["resourceOperationReceipts"][0]))

    # Then every outcome and the final state agree
    assert actual == expected
    assert registry.snapshot("s") == oracle.snapshot()
    assert oracle.snapshot()["relationships"] == []


def test_state_apply_bundle_is_atomic(clock: FakeClock) -> None:
    state = _state(clock)

    resource_receipts, relationship_receipts = state.apply_bundle(
        bundle([office("1"), provider("2")], [rel("CREATE", "1", "2"), rel("CREATE", "1", "3")])
    )

    assert [r["status"] for r in resource_receipts] == ["CANCELLED", "CANCELLED"]
    assert [r["status"] for r in relationship_receipts] == ["CANCELLED", "FAILURE"]
    assert state.snapshot() == {"resources": [], "relationships": []}
    assert state.drain_writes() == []


def test_state_apply_bundle_refuses_duplicates_by_raising(clock: FakeClock) -> None:
    state = _state(clock)

    with pytest.raises(RequestRefusedError) as refused:
        state.apply_bundle(bundle([office("1"), office("1", "Other")]))

    assert refused.value.status == 400
    assert "'1'" in refused.value.body["message"]


def test_state_apply_bundle_seed_virtual_ids(clock: FakeClock) -> None:
    state = _state(clock)

    resource_receipts, relationship_receipts = state.apply_bundle(
        seed("bundle-guide.virtual-id-request")
    )

    assert [r["id"] for r in resource_receipts] == ["gen-1", "gen-2"]
    assert relationship_receipts[0]["id"] == "office.gen-1,provider.gen-2"


@pytest.mark.parametrize("policy", [DeletePolicy.CASCADE, DeletePolicy.REFUSE])
def test_state_delete_with_relationships_follows_the_policy(
    clock: FakeClock, policy: DeletePolicy
) -> None:
    state = _state(clock, delete_policy=policy)
    state.apply_bundle(
        bundle(
            [office("1"), provider("2"), provider("3")],
            [rel("CREATE", "1", "2"), rel("CREATE", "1", "3")],
        )
    )

    receipt = state.apply_resource_operation(res("DELETE", "office", "1"))

    snapshot = state.snapshot()
    if policy == DeletePolicy.CASCADE:
        assert receipt["status"] == "SUCCESS"
        assert snapshot["relationships"] == []
        assert [r["id"] for r in snapshot["resources"]] == ["2", "3"]
    else:
        assert receipt["status"] == "FAILURE"
        assert receipt["error"]["type"] == "FAILED_PRECONDITION"
        assert "2 relationship(s)" in receipt["error"]["message"]
        assert len(snapshot["relationships"]) == 2


def test_state_delete_of_endpoint_runs_before_relationship_ops_in_a_bundle(
    clock: FakeClock,
) -> None:
    state = _state(clock, delete_policy=DeletePolicy.REFUSE)
    state.apply_bundle(bundle([office("1"), provider("2")], [rel("CREATE", "1", "2")]))

    resource_receipts, _ = state.apply_bundle(
        bundle([res("DELETE", "provider", "2")], [rel("DELETE", "1", "2")])
    )

    assert resource_receipts[0]["status"] == "FAILURE"
    assert len(state.snapshot()["relationships"]) == 1


def test_state_snapshot_is_a_copy(clock: FakeClock) -> None:
    state = _state(clock)
    state.apply_resource_operation(office("1"))

    state.snapshot()["resources"][0]["data"]["name"] = "changed"

    assert state.snapshot()["resources"][0]["data"]["name"] == "Clinic"


def test_state_drain_writes_lists_applied_writes_once(clock: FakeClock) -> None:
    state = _state(clock)
    state.apply_resource_operation(office("1"))
    state.apply_resource_operation(office("1", action="CREATE"))

    assert state.drain_writes() == [
        {"target": "resource", "action": "UPSERT", "type": "office", "id": "1"}
    ]
    assert state.drain_writes() == []

"""Every example of the seed pages, reproduced against the emulator over real HTTP."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from emulator.app import create_app
from emulator.config import EmulatorConfig
from emulator.registry import Registry
from emulator.server import serve_in_thread
from tests.integration.emulator.conftest import (
    KEY,
    SOURCE,
    Emulator,
    console_script_emulator,
    seed,
)
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


BASELINE_CONFIG = {"mode": "sync", "legacy_bulk_status": False, "source_modes": {SOURCE: None}}
"""Every switch a test here may turn, back to its default (a reset keeps the config)."""


@pytest.fixture(scope="module", params=["serve_in_thread", "clinia-ingest emulator"])
def served(request: pytest.FixtureRequest) -> Iterator[str]:
    """One emulator per module: in this process, and as users start it (the console script)."""
    if request.param == "serve_in_thread":
        app = create_app(Registry(EmulatorConfig(api_key=SecretStr(KEY))))
        with serve_in_thread(app) as server:
            yield server.url
        return
    with console_script_emulator() as url:
        yield url


@pytest.fixture
def emulator(served: str) -> Emulator:
    """The module's emulator, reset so every test starts from an empty Registry."""
    running = Emulator(url=served, app=None)
    running.admin("POST", "/reset")
    running.admin("PATCH", "/config", json=BASELINE_CONFIG)
    return running


S = f"/sources/{SOURCE}/v1"
RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
GENERATED = re.compile(r"[0-9A-Za-z]{27}")


def without_times(receipts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Receipts with `receivedAt` checked for form and removed, to compare the rest exactly."""
    out = []
    for item in receipts:
        assert RFC3339_UTC.fullmatch(item["receivedAt"]), item["receivedAt"]
        out.append({k: v for k, v in item.items() if k != "receivedAt"})
    return out


def poll_terminal(http, url: str) -> dict[str, Any]:
    def terminal() -> dict[str, Any] | None:
        body: dict[str, Any] = http.get(url).json()
        return body if body["status"] != "PENDING" else None

    found: dict[str, Any] = wait_for(terminal)
    return found


def test_emulator_seed_use_case_bundle_succeeds_and_is_readable(emulator: Emulator):
    expected = seed("bundle-guide.success-answer")
    with emulator.client() as http:
        answer = http.post(f"{S}/bundle", json=seed("bundle-guide.use-case-request"))
        assert answer.status_code == 200
        body = answer.json()
        assert set(body) == {"resourceOperationReceipts", "relationshipOperationReceipts"}
        for key in body:
            assert without_times(body[key]) == without_times(expected[key])
        assert http.get(f"{S}/resources/office/1").json()["data"] == {"name": "Clinic Name"}
        assert http.get(f"{S}/resources/provider/2").json()["data"] == {"name": "John Doe"}
        for rel_id in ("1.2", "office.1,provider.2"):
            found = http.get(f"{S}/relationships/provider-office/{rel_id}")
            assert found.status_code == 200
            assert found.json()["data"] == {"description": "Works at"}


def test_emulator_seed_virtual_ids_return_generated_ids_that_get_finds(emulator: Emulator):
    with emulator.client() as http:
        answer = http.post(f"{S}/bundle", json=seed("bundle-guide.virtual-id-request"))
        assert answer.status_code == 200
        office, provider = answer.json()["resourceOperationReceipts"]
        (relationship,) = answer.json()["relationshipOperationReceipts"]
        assert GENERATED.fullmatch(office["id"])
        assert GENERATED.fullmatch(provider["id"])
        assert office["id"] != provider["id"]
        assert relationship["id"] == f"office.{office['id']},provider.{provider['id']}"
        assert {office["status"], provider["status"], relationship["status"]} == {"SUCCESS"}
        assert http.get(f"{S}/resources/office/{office['id']}").status_code == 200
        assert http.get(f"{S}/resources/provider/{provider['id']}").status_code == 200
        rel = http.get(f"{S}/relationships/provider-office/{office['id']}.{provider['id']}")
        assert rel.status_code == 200


def test_emulator_seed_unknown_property_fails_one_and_cancels_the_rest(emulator: Emulator):
    request = copy.deepcopy(seed("bundle-guide.use-case-request"))
    request["resourceOperations"][0]["upsert"]["data"]["UNKNOWN"] = "not in the profile"
    expected = seed("bundle-guide.failed-answer")
    with emulator.client() as http:
        answer = http.post(f"{S}/bundle", json=request)
        assert answer.status_code == 400
        body = answer.json()
        for key in ("resourceOperationReceipts", "relationshipOperationReceipts"):
            assert without_times(body[key]) == without_times(expected[key])
        assert http.get(f"{S}/resources/office/1").status_code == 404
        assert http.get(f"{S}/resources/provider/2").status_code == 404
    assert emulator.admin("GET", "/writes") == []
    assert emulator.admin("GET", f"/sources/{SOURCE}/resources") == []


def test_emulator_seed_bulk_task_is_readable_with_and_without_receipts(emulator: Emulator):
    with emulator.client() as http:
        answer = http.post(f"{S}/resources/bulk", json=seed("bulk-guide.create-request"))
        assert answer.status_code == 202
        accepted = answer.json()
        assert accepted["status"] == "ACCEPTED"
        task_id = accepted["taskId"]
        assert task_id.startswith("bk_")
        assert accepted["bulkId"] == task_id
        first = http.get(f"{S}/resources/bulk/{task_id}")
        assert first.json() == {"status": "PENDING"}
        final = poll_terminal(http, f"{S}/resources/bulk/{task_id}?withReceipts=false")
        assert final == {"status": "SUCCESS"}
        detailed = http.get(f"{S}/resources/bulk/{task_id}?withReceipts=true").json()
        (receipt,) = detailed["receipts"]
        assert receipt["status"] == "SUCCESS"
        assert (receipt["action"], receipt["targetType"]) == ("CREATE", "RESOURCE")
        assert receipt["type"] == "provider"
        assert GENERATED.fullmatch(receipt["id"])
        assert receipt["taskId"] == task_id
        generic = http.get(f"{S}/tasks/{task_id}").json()
        assert generic == {"status": "SUCCESS", "taskId": task_id}
        assert http.get(f"{S}/tasks/{task_id}?withReceipts=true").json()["receipts"] == [receipt]
        created = http.get(f"{S}/resources/provider/{receipt['id']}").json()
        assert created["data"]["practiceNumber"] == 1020993


@pytest.mark.parametrize(("legacy", "status"), [(False, "FAILURE"), (True, "SUCCESS")])
def test_emulator_seed_bulk_task_answer_with_an_already_existing_id(
    emulator: Emulator, legacy: bool, status: str
):
    """The guide's task answer: one CREATE succeeds, one hits ALREADY_EXISTS (legacy: SUCCESS)."""
    emulator.admin("PATCH", "/config", json={"legacy_bulk_status": legacy})
    taken = "2dMo6zb0yWtzHvt8MhmbI2ddQbR"
    with emulator.client() as http:
        http.put(f"{S}/resources/provider/{taken}", json={"data": {"name": "Jane"}})
        operations = [
            {"action": "CREATE", "create": {"type": "provider", "data": {"name": "John Doe"}}},
            {"action": "CREATE", "create": {"id": taken, "type": "provider", "data": {}}},
        ]
        task_id = http.post(f"{S}/resources/bulk", json={"operations": operations}).json()["taskId"]
        final = poll_terminal(http, f"{S}/resources/bulk/{task_id}?withReceipts=true")
    assert final["status"] == status
    ok, failed = final["receipts"]
    assert ok["status"] == "SUCCESS"
    assert failed["status"] == "FAILURE"
    assert failed["id"] == taken
    assert failed["error"]["code"] == 409
    assert failed["error"]["type"] == "ALREADY_EXISTS"
    assert failed["error"]["message"] == f"record with id '{taken}' already exists"


def test_emulator_seed_bulk_rejected_cancels_every_operation(emulator: Emulator):
    operations = [
        {"action": "CREATE", "create": {"type": "provider", "data": {"name": "John Doe"}}},
        {"action": "CREATE", "create": {"type": "provider", "data": {"UNKNOWN": 1}}},
    ]
    with emulator.client() as http:
        answer = http.post(f"{S}/resources/bulk", json={"operations": operations})
    assert answer.status_code == 400
    body = answer.json()
    assert body["status"] == "REJECTED"
    assert body["receipts"][0] == {"status": "CANCELLED"}
    assert body["receipts"][1]["status"] == "FAILURE"
    assert body["receipts"][1]["error"]["code"] == 400
    assert emulator.admin("GET", "/writes") == []


def test_emulator_seed_relationship_create_reference(emulator: Emulator):
    with emulator.client() as http:
        assert http.post(f"{S}/bundle", json=seed("bundle-guide.use-case-request")).is_success
        http.delete(f"{S}/relationships/provider-office/1.2")
        answer = http.post(
            f"{S}/relationships/provider-office",
            json=seed("relationship-create-reference.request"),
        )
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "PERSISTED"
    assert body["taskId"].startswith("s_")
    relationship = body["relationship"]
    assert relationship["id"] == "1.2"
    assert relationship["from"] == {"id": "1", "type": "office"}
    assert relationship["to"] == {"id": "2", "type": "provider"}
    assert relationship["meta"]["source"] == SOURCE


def test_emulator_seed_relationship_bulk_status_reference(emulator: Emulator):
    with emulator.client() as http:
        request = seed("bundle-guide.use-case-request")
        request["relationshipOperations"] = []
        assert http.post(f"{S}/bundle", json=request).is_success
        operation = {
            "action": "CREATE",
            "create": {
                "type": "provider-office",
                "from": {"id": "1", "type": "office"},
                "to": {"id": "2", "type": "provider"},
                "data": {"description": "Works at"},
            },
        }
        accepted = http.post(f"{S}/relationships/bulk", json={"operations": [operation]})
        assert accepted.status_code == 202
        task_id = accepted.json()["taskId"]
        final = poll_terminal(http, f"{S}/relationships/bulk/{task_id}?withReceipts=true")
    assert final["status"] == "SUCCESS"
    (receipt,) = final["receipts"]
    assert (receipt["targetType"], receipt["action"]) == ("RELATIONSHIP", "CREATE")
    assert (receipt["id"], receipt["type"]) == ("office.1,provider.2", "provider-office")
    assert RFC3339_UTC.fullmatch(receipt["completedAt"])


def test_emulator_seed_bundle_reference_accepted_in_async_mode(emulator: Emulator):
    with emulator.client() as http:
        assert http.put(f"{S}/resources/office/1", json={"data": {"name": "Clinic"}}).is_success
        emulator.admin("PATCH", "/config", json={"source_modes": {SOURCE: "async"}})
        answer = http.post(f"{S}/bundle", json=seed("bundle-reference.request"))
        assert answer.status_code == 202
        assert set(answer.json()) == {"taskId", "status"}
        assert answer.json()["status"] == "ACCEPTED"
        task_id = answer.json()["taskId"]
        assert task_id.startswith("bd_")
        final = poll_terminal(http, f"{S}/tasks/{task_id}?withReceipts=true")
        assert final["status"] == "SUCCESS"
        assert http.get(f"{S}/resources/provider/p-17").status_code == 200

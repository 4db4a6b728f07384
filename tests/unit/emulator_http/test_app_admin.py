"""The admin API: inspection, faults, config switches, reset, and per-task concurrency."""

from __future__ import annotations

import anyio
import httpx
import pytest

from emulator.app import create_app
from emulator.registry import Registry
from tests.unit.emulator_http.conftest import AUTH, SOURCE, use_case_bundle

pytestmark = pytest.mark.anyio

S = f"/sources/{SOURCE}/v1"
A = "/_emulator"


async def seed_records(client: httpx.AsyncClient) -> None:
    answer = await client.post(f"{S}/bundle", json=use_case_bundle(), headers=AUTH)
    assert answer.status_code == 200


async def test_admin_lists_resources_and_relationships(client):
    await seed_records(client)
    resources = (await client.get(f"{A}/sources/{SOURCE}/resources")).json()
    assert sorted((r["type"], r["id"]) for r in resources) == [("office", "1"), ("provider", "2")]
    offices = (await client.get(f"{A}/sources/{SOURCE}/resources?type=office")).json()
    assert [r["id"] for r in offices] == ["1"]
    one = await client.get(f"{A}/sources/{SOURCE}/resources/provider/2")
    assert one.json()["data"] == {"name": "John Doe"}
    missing = await client.get(f"{A}/sources/{SOURCE}/resources/provider/3")
    assert missing.status_code == 404
    assert missing.json()["type"] == "NOT_FOUND"
    rels = (await client.get(f"{A}/sources/{SOURCE}/relationships?from=1&to=2")).json()
    assert [(r["type"], r["id"]) for r in rels] == [("provider-office", "1.2")]
    assert (await client.get(f"{A}/sources/{SOURCE}/relationships?to=1")).json() == []


async def test_admin_counts_and_write_log(client):
    await seed_records(client)
    counts = (await client.get(f"{A}/counts")).json()
    assert counts[SOURCE]["resources"] == 2
    assert counts[SOURCE]["relationships"] == 1
    writes = (await client.get(f"{A}/writes")).json()
    assert [(w["seq"], w["target"], w["action"]) for w in writes] == [
        (1, "resource", "UPSERT"),
        (2, "resource", "UPSERT"),
        (3, "relationship", "UPSERT"),
    ]


async def test_admin_write_log_shows_an_operation_applied_twice(client):
    await seed_records(client)
    await seed_records(client)
    writes = (await client.get(f"{A}/writes")).json()
    assert [w["id"] for w in writes].count("1") == 2


async def test_admin_request_log_records_what_was_sent(client):
    await seed_records(client)
    await client.get(f"{S}/resources/office/1")
    log = (await client.get(f"{A}/requests")).json()
    assert [(e["method"], e["route"], e["status"], e["opCount"]) for e in log] == [
        ("POST", "bundle", 200, 3),
        ("GET", "get_resource", 401, 0),
    ]
    assert log[0]["ids"] == ["1", "2"]
    assert log[0]["path"] == f"{S}/bundle"
    assert log[0]["source"] == SOURCE
    assert (await client.delete(f"{A}/requests")).status_code == 204
    assert (await client.get(f"{A}/requests")).json() == []


async def test_admin_tasks_of_a_source(client):
    await client.patch(f"{A}/config", json={"mode": "async"})
    accepted = await client.post(f"{S}/bundle", json=use_case_bundle(), headers=AUTH)
    assert accepted.status_code == 202
    tasks = (await client.get(f"{A}/sources/{SOURCE}/tasks")).json()
    assert tasks == [accepted.json()["taskId"]]


async def test_admin_faults_add_list_remove_clear(client):
    added = await client.post(
        f"{A}/faults",
        json=[
            {"route": "get_profile", "effect": {"kind": "status", "status": 503}},
            {"id": "slow", "route": "bundle", "effect": {"kind": "latency", "seconds": 1}},
        ],
    )
    assert added.status_code == 201
    assert [r["id"] for r in added.json()] == ["f1", "slow"]
    assert (await client.get(f"{S}/profiles/office", headers=AUTH)).status_code == 503
    listed = (await client.get(f"{A}/faults")).json()
    assert [(r["id"], r["seen"], r["fired"]) for r in listed] == [("f1", 1, 1), ("slow", 0, 0)]
    assert (await client.delete(f"{A}/faults/f1")).status_code == 204
    assert (await client.delete(f"{A}/faults/f1")).status_code == 404
    assert (await client.get(f"{S}/profiles/office", headers=AUTH)).status_code == 200
    assert (await client.delete(f"{A}/faults")).status_code == 204
    assert (await client.get(f"{A}/faults")).json() == []


@pytest.mark.parametrize(
    ("rule", "named"),
    [
        ({"effect": {"kind": "status", "status": 302}}, "effect.status.status"),
        ({"route": "bundel", "effect": {"kind": "drop"}}, "bundel"),
        ({"effect": {"kind": "latency"}}, "seconds"),
        ({"every": 0, "effect": {"kind": "drop"}}, "every"),
    ],
)
async def test_admin_faults_refuses_a_bad_rule_naming_the_field(client, rule, named):
    answer = await client.post(f"{A}/faults", json=rule)
    assert answer.status_code == 400
    assert answer.json()["type"] == "INVALID_ARGUMENT"
    assert named in answer.json()["message"]
    assert (await client.get(f"{A}/faults")).json() == []


async def test_admin_faults_refuses_invalid_json(client):
    answer = await client.post(f"{A}/faults", content=b"{")
    assert answer.status_code == 400
    assert "invalid JSON" in answer.json()["message"]


async def test_admin_config_switches_apply_to_the_next_request(client, registry):
    changed = await client.patch(
        f"{A}/config",
        json={
            "source_modes": {SOURCE: "async"},
            "shuffle_receipts": True,
            "legacy_bulk_status": True,
            "delete_policy": "refuse",
            "task_pending_polls": 4,
        },
    )
    assert changed.status_code == 200
    config = registry.config
    assert config.mode_of(SOURCE) == "async"
    assert (config.shuffle_receipts, config.legacy_bulk_status) == (True, True)
    assert (config.delete_policy, config.task_pending_polls) == ("refuse", 4)
    accepted = await client.post(f"{S}/bundle", json=use_case_bundle(), headers=AUTH)
    assert accepted.status_code == 202
    removed = await client.patch(f"{A}/config", json={"source_modes": {SOURCE: None}})
    assert removed.json()["source_modes"] == {}


async def test_admin_config_bundle_failures_all_reports_every_failure_of_the_next_bundle(
    client, registry
):
    body = {
        "resourceOperations": [
            {"action": "DELETE", "delete": {"type": "office", "id": "9"}},
            {"action": "DELETE", "delete": {"type": "office", "id": "8"}},
        ],
        "relationshipOperations": [],
    }
    first = await client.post(f"{S}/bundle", json=body, headers=AUTH)
    changed = await client.patch(f"{A}/config", json={"bundle_failures": "all"})
    every = await client.post(f"{S}/bundle", json=body, headers=AUTH)

    assert changed.json()["bundle_failures"] == "all"
    statuses = [
        [r["status"] for r in answer.json()["resourceOperationReceipts"]]
        for answer in (first, every)
    ]
    assert statuses == [["FAILURE", "CANCELLED"], ["FAILURE", "FAILURE"]]


async def test_admin_config_source_modes_merge(client, registry):
    await client.patch(f"{A}/config", json={"source_modes": {"a": "async"}})
    await client.patch(f"{A}/config", json={"source_modes": {"b": "async_above"}})
    assert registry.config.source_modes == {"a": "async", "b": "async_above"}


@pytest.mark.parametrize(
    ("patch", "named"),
    [
        ({"mode": "sometimes"}, "mode"),
        ({"nonsense": 1}, "nonsense"),
        ({"seed": 3}, "seed"),
        ({"task_pending_polls": -1}, "task_pending_polls"),
        ({"source_modes": ["a"]}, "source_modes"),
        ({"bundle_failures": "some"}, "bundle_failures"),
        ([1, 2], "config"),
    ],
)
async def test_admin_config_refuses_bad_fields_and_changes_nothing(client, registry, patch, named):
    before = registry.config.model_dump()
    answer = await client.patch(f"{A}/config", json=patch)
    assert answer.status_code == 400
    assert named in answer.json()["message"]
    assert registry.config.model_dump() == before


async def test_admin_config_is_all_or_nothing(client, registry):
    answer = await client.patch(f"{A}/config", json={"shuffle_receipts": True, "mode": "bad"})
    assert answer.status_code == 400
    assert registry.config.shuffle_receipts is False


async def test_admin_reset_forgets_records_logs_and_faults(client):
    await seed_records(client)
    await client.post(f"{A}/faults", json={"effect": {"kind": "latency", "seconds": 1}})
    assert (await client.post(f"{A}/reset")).status_code == 204
    assert (await client.get(f"{A}/counts")).json() == {}
    assert (await client.get(f"{A}/writes")).json() == []
    assert (await client.get(f"{A}/requests")).json() == []
    assert (await client.get(f"{A}/faults")).json() == []


async def test_admin_unknown_path_is_404_json(client):
    answer = await client.get(f"{A}/nothing")
    assert answer.status_code == 404
    assert answer.json()["type"] == "NOT_FOUND"


async def test_admin_concurrency_counts_overlapping_polls_per_task(registry):
    """Two polls of one task held in flight together show a highest count of 2."""
    gate = anyio.Event()

    async def held_sleep(seconds: float) -> None:
        await gate.wait()

    app = create_app(registry, sleep=held_sleep)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://e") as http:
        await http.patch(f"{A}/config", json={"mode": "async", "task_pending_polls": 10})
        accepted = await http.post(f"{S}/bundle", json=use_case_bundle(), headers=AUTH)
        task_id = accepted.json()["taskId"]
        await http.post(
            f"{A}/faults",
            json={"route": "task_status", "effect": {"kind": "latency", "seconds": 1}},
        )
        statuses: list[int] = []

        async def poll() -> None:
            statuses.append((await http.get(f"{S}/tasks/{task_id}", headers=AUTH)).status_code)

        async with anyio.create_task_group() as group:
            for _ in range(2):
                group.start_soon(poll)
            with anyio.fail_after(5):
                while app.context.concurrency.current().get(task_id) != 2:
                    await anyio.sleep(0.001)
            gate.set()
        await http.get(f"{S}/tasks/{task_id}", headers=AUTH)  # a third poll, alone
        seen = (await http.get(f"{A}/concurrency")).json()
    assert statuses == [200, 200]
    assert seen == {"highest": {task_id: 2}, "current": {}}


async def test_admin_concurrency_stays_at_one_for_sequential_polls(client):
    await client.patch(f"{A}/config", json={"mode": "async"})
    accepted = await client.post(f"{S}/bundle", json=use_case_bundle(), headers=AUTH)
    task_id = accepted.json()["taskId"]
    for _ in range(3):
        await client.get(f"{S}/tasks/{task_id}", headers=AUTH)
    assert (await client.get(f"{A}/concurrency")).json()["highest"] == {task_id: 1}
    assert (await client.delete(f"{A}/concurrency")).status_code == 204
    assert (await client.get(f"{A}/concurrency")).json()["highest"] == {}


async def test_admin_concurrency_is_keyed_by_task_id_on_every_status_route(registry):
    app = create_app(registry)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://e") as http:
        for url in (f"{S}/resources/bulk/bk_a", f"{S}/relationships/bulk/bk_b", f"{S}/purge/pg_c"):
            await http.get(url, headers=AUTH)
        highest = (await http.get(f"{A}/concurrency")).json()["highest"]
    assert highest == {"bk_a": 1, "bk_b": 1, "pg_c": 1}


def test_admin_registry_fixture_is_fresh(registry: Registry):
    assert registry.counts() == {}

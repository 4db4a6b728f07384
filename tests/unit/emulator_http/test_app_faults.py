"""Each fault effect as the app carries it out, in process."""

from __future__ import annotations

import json
from collections.abc import MutableMapping
from typing import Any

import pytest

from emulator.app import DROPPED, EmulatorApp, create_app
from emulator.config import EmulatorConfig, SourceMode
from emulator.faults import FaultPlan, FaultRule, UnknownRouteError
from emulator.registry import Registry
from tests.unit.emulator_http.conftest import AUTH, SOURCE, RecordingSleep, use_case_bundle

pytestmark = pytest.mark.anyio

S = f"/sources/{SOURCE}/v1"
BUNDLE_URL = f"{S}/bundle"


def add(app: EmulatorApp, **fields: Any) -> None:
    app.context.faults.add(FaultRule.model_validate(fields))


async def poll_until_terminal(client, task_id: str, limit: int = 10) -> list[dict[str, Any]]:
    """Every task answer up to the first terminal one (bounded, so a stuck task fails the test)."""
    answers = []
    for _ in range(limit):
        answer = await client.get(f"{S}/tasks/{task_id}?withReceipts=true", headers=AUTH)
        assert answer.status_code == 200
        answers.append(answer.json())
        if answers[-1]["status"] != "PENDING":
            return answers
    raise AssertionError(f"task {task_id} still PENDING after {limit} polls")


async def test_fault_latency_delays_then_handles_normally(app, client, sleeps):
    add(app, route="get_profile", effect={"kind": "latency", "seconds": 0.75})
    answer = await client.get(f"{S}/profiles/office", headers=AUTH)
    assert answer.status_code == 200
    assert sleeps.calls == [0.75]


async def test_fault_429_carries_retry_after_and_applies_nothing(app, client, registry):
    add(app, route="bundle", calls=[1], effect={"kind": "status", "status": 429})
    add(
        app, route="bundle", calls=[2], effect={"kind": "status", "status": 429, "retry_after": "7"}
    )
    first = await client.post(BUNDLE_URL, json=use_case_bundle(), headers=AUTH)
    second = await client.post(BUNDLE_URL, json=use_case_bundle(), headers=AUTH)
    assert (first.status_code, first.headers["retry-after"]) == (429, "1")
    assert (second.status_code, second.headers["retry-after"]) == (429, "7")
    assert first.json()["type"] == "RESOURCE_EXHAUSTED"
    assert registry.write_log() == []


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (500, "INTERNAL"),
        (502, "UNAVAILABLE"),
        (503, "UNAVAILABLE"),
        (504, "DEADLINE_EXCEEDED"),
        (401, "UNAUTHENTICATED"),
        (403, "PERMISSION_DENIED"),
        (400, "INVALID_ARGUMENT"),
        (413, "CONTENT_TOO_LARGE"),
    ],
)
async def test_fault_status_answers_the_error_shape_without_receipts(
    app, client, registry, status, error_type
):
    add(app, route="bundle", effect={"kind": "status", "status": status})
    answer = await client.post(BUNDLE_URL, json=use_case_bundle(), headers=AUTH)
    assert answer.status_code == status
    body = answer.json()
    assert body["type"] == error_type
    assert body["code"] == status
    assert body["details"] == []
    assert "resourceOperationReceipts" not in body
    assert registry.write_log() == []
    assert "retry-after" not in answer.headers


async def test_fault_status_can_answer_a_plain_text_body(app, client):
    add(app, effect={"kind": "status", "status": 502, "text_body": "<html>bad gateway</html>"})
    answer = await client.get(f"{S}/profiles/office", headers=AUTH)
    assert answer.status_code == 502
    assert answer.text == "<html>bad gateway</html>"


async def test_fault_status_apply_first_applies_then_answers_the_error(app, client, registry):
    add(app, route="bundle", effect={"kind": "status", "status": 502, "apply_first": True})
    answer = await client.post(BUNDLE_URL, json=use_case_bundle(), headers=AUTH)
    assert answer.status_code == 502
    assert [(w["target"], w["id"]) for w in registry.write_log()] == [
        ("resource", "1"),
        ("resource", "2"),
        ("relationship", "office.1,provider.2"),
    ]


async def call_asgi(app: EmulatorApp, method: str, path: str, body: bytes) -> tuple[Any, list[Any]]:
    """Call the ASGI app directly, to see what it sends and what it returns to the server."""
    sent: list[dict[str, Any]] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"x-clinia-api-key", AUTH["X-Clinia-API-Key"].encode())],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8700),
    }
    returned = await app(scope, receive, send)
    return returned, sent


@pytest.mark.parametrize("apply_first", [False, True])
async def test_fault_drop_sends_nothing_and_tells_the_server_to_close(app, registry, apply_first):
    add(app, route="bundle", effect={"kind": "drop", "apply_first": apply_first})
    body = json.dumps(use_case_bundle()).encode()
    returned, sent = await call_asgi(app, "POST", BUNDLE_URL, body)
    assert returned is DROPPED
    assert sent == []
    entry = app.context.requests.entries()[-1]
    assert entry["dropped"] is True
    assert entry["status"] is None
    assert bool(registry.write_log()) is apply_first


async def test_fault_without_drop_returns_none_to_the_server(app):
    returned, sent = await call_asgi(app, "GET", f"{S}/profiles/office", b"")
    assert returned is None
    assert sent[0]["status"] == 200


async def test_fault_pending_keeps_the_task_in_review_for_n_polls(app, client, registry):
    add(app, route="bundle", effect={"kind": "pending", "polls": 3})
    accepted = await client.post(BUNDLE_URL, json=use_case_bundle(), headers=AUTH)
    assert accepted.status_code == 202
    assert accepted.json()["status"] == "ACCEPTED"
    answers = await poll_until_terminal(client, accepted.json()["taskId"])
    assert [a["status"] for a in answers] == ["PENDING"] * 3 + ["SUCCESS"]
    reviews = {r["pipelineExecution"]["status"] for r in answers[0]["receipts"]}
    assert reviews == {"IN_REVIEW"}
    assert len(registry.write_log()) == 3


async def test_fault_task_failure_ends_the_task_failure_with_the_error(app, client, registry):
    error = {"code": 500, "message": "pipeline crashed", "type": "INTERNAL"}
    add(app, route="bundle", effect={"kind": "task_failure", "error": error})
    add(app, route="bundle", effect={"kind": "force_async"})
    accepted = await client.post(BUNDLE_URL, json=use_case_bundle(), headers=AUTH)
    assert accepted.status_code == 202
    final = (await poll_until_terminal(client, accepted.json()["taskId"]))[-1]
    assert final["status"] == "FAILURE"
    assert {r["status"] for r in final["receipts"]} == {"FAILURE"}
    assert final["receipts"][0]["error"]["message"] == "pipeline crashed"
    assert registry.write_log() == []


async def test_fault_task_failure_on_a_synchronous_bundle_fails_every_receipt(app, client):
    add(app, route="bundle", effect={"kind": "task_failure"})
    answer = await client.post(BUNDLE_URL, json=use_case_bundle(), headers=AUTH)
    receipts = answer.json()["resourceOperationReceipts"]
    assert {r["status"] for r in receipts} == {"FAILURE"}
    assert receipts[0]["error"]["type"] == "INTERNAL"


async def test_fault_late_answer_applies_before_the_delay(registry):
    observed: list[int] = []

    async def sleep(seconds: float) -> None:
        observed.append(len(registry.write_log()))

    app = create_app(registry, sleep=sleep)
    add(app, route="bundle", effect={"kind": "late", "seconds": 30})
    returned, sent = await call_asgi(
        app, "POST", BUNDLE_URL, json.dumps(use_case_bundle()).encode()
    )
    assert returned is None
    assert sent[0]["status"] == 200
    assert observed == [3]  # all three writes applied when the delay began


@pytest.mark.parametrize(
    ("mode", "force_async", "status"),
    [
        (SourceMode.SYNC, False, 200),
        (SourceMode.SYNC, True, 202),
        (SourceMode.ASYNC, False, 202),
    ],
)
async def test_fault_late_answer_in_sync_and_async_modes(
    app, client, registry, sleeps, mode, force_async, status
):
    registry.config.mode = mode
    add(app, route="bundle", effect={"kind": "late", "seconds": 5, "force_async": force_async})
    answer = await client.post(BUNDLE_URL, json=use_case_bundle(), headers=AUTH)
    assert answer.status_code == status
    assert sleeps.calls == [5]


async def test_fault_op_id_refuses_only_requests_touching_that_id(app, client, registry):
    add(app, op_id="2", effect={"kind": "status", "status": 400})
    refused = await client.post(BUNDLE_URL, json=use_case_bundle(), headers=AUTH)
    assert refused.status_code == 400
    other = {
        "resourceOperations": [
            {"action": "UPSERT", "upsert": {"id": "9", "type": "office", "data": {}}}
        ],
        "relationshipOperations": [],
    }
    accepted = await client.post(BUNDLE_URL, json=other, headers=AUTH)
    assert accepted.status_code == 200
    direct = await client.get(f"{S}/resources/provider/2", headers=AUTH)
    assert direct.status_code == 400  # the path id counts too


async def test_fault_min_ops_refuses_only_bundles_that_large(app, client, registry):
    add(app, route="bundle", min_ops=3, effect={"kind": "status", "status": 413})

    def offices(n: int) -> dict[str, Any]:
        upserts = [
            {"action": "UPSERT", "upsert": {"id": f"o{i}", "type": "office", "data": {}}}
            for i in range(n)
        ]
        return {"resourceOperations": upserts, "relationshipOperations": []}

    refused = await client.post(BUNDLE_URL, json=offices(3), headers=AUTH)
    assert refused.status_code == 413
    assert "receipts" not in refused.json()
    accepted = await client.post(BUNDLE_URL, json=offices(2), headers=AUTH)
    assert accepted.status_code == 200
    assert [e["opCount"] for e in app.context.requests.entries()] == [3, 2]


async def test_fault_times_limits_the_firings(app, client):
    add(app, route="get_profile", times=1, effect={"kind": "status", "status": 503})
    statuses = [
        (await client.get(f"{S}/profiles/office", headers=AUTH)).status_code for _ in range(3)
    ]
    assert statuses == [503, 200, 200]


async def test_fault_fired_rules_show_in_the_request_log(app, client):
    add(app, id="slow", route="get_profile", effect={"kind": "latency", "seconds": 1})
    await client.get(f"{S}/profiles/office", headers=AUTH)
    await client.get(f"{S}/profiles/provider", headers=AUTH)
    assert [e["faults"] for e in app.context.requests.entries()] == [["slow"], ["slow"]]


async def test_fault_terminal_comes_before_input_checks(app, client, registry):
    add(app, route="bundle", effect={"kind": "status", "status": 503})
    answer = await client.post(BUNDLE_URL, content=b"not json", headers=AUTH)
    assert answer.status_code == 503


async def test_fault_rule_with_unknown_route_name_is_refused_at_create(registry):
    plan = FaultPlan([FaultRule.model_validate({"route": "bundel", "effect": {"kind": "drop"}})])
    with pytest.raises(UnknownRouteError, match="bundel"):
        create_app(registry, faults=plan, sleep=RecordingSleep())


async def test_fault_config_must_be_the_registry_own(registry):
    with pytest.raises(ValueError, match="config"):
        create_app(registry, config=EmulatorConfig())


async def test_fault_seeded_probability_is_reproducible_through_the_app(registry):
    async def pattern() -> list[int]:
        app = create_app(Registry(registry.config), sleep=RecordingSleep())
        add(app, route="get_profile", probability=0.5, effect={"kind": "status", "status": 500})
        out = []
        for _ in range(20):
            _, sent = await call_asgi(app, "GET", f"{S}/profiles/office", b"")
            out.append(sent[0]["status"])
        return out

    first = await pattern()
    assert first == await pattern()
    assert set(first) == {200, 500}

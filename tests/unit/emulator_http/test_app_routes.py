"""Every Registry route reaches its registry method with the right arguments; bad input is 400."""

from __future__ import annotations

import json
from typing import Any, cast

import httpx
import pytest
from pydantic import SecretStr

from emulator.app import create_app
from emulator.config import EmulatorConfig
from emulator.registry import Registry, Reply
from emulator.routes import ROUTE_NAMES
from tests.unit.emulator_http.conftest import AUTH, KEY, SOURCE

pytestmark = pytest.mark.anyio

BODY = {"any": ["json", 1]}
SIZE = len(json.dumps(BODY).encode())
S = f"/sources/{SOURCE}/v1"


class SpyRegistry:
    """Records every registry call and answers an unusual status, to see it passed through."""

    def __init__(self) -> None:
        self.config = EmulatorConfig(api_key=SecretStr(KEY))
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        def method(*args: Any, **kwargs: Any) -> Reply:
            self.calls.append((name, args, kwargs))
            return Reply(207, {"called": name})

        return method


W = {"raw_size": SIZE, "override": None}
CASES = [
    ("bundle", "POST", f"{S}/bundle", "bundle", (SOURCE, BODY), W),
    ("resources_bulk", "POST", f"{S}/resources/bulk", "bulk", (SOURCE, "resources", BODY), W),
    (
        "resources_bulk_status",
        "GET",
        f"{S}/resources/bulk/bk_1?withReceipts=true",
        "bulk_status",
        (SOURCE, "resources", "bk_1"),
        {"with_receipts": True},
    ),
    (
        "relationships_bulk",
        "POST",
        f"{S}/relationships/bulk",
        "bulk",
        (SOURCE, "relationships", BODY),
        W,
    ),
    (
        "relationships_bulk_status",
        "GET",
        f"{S}/relationships/bulk/2wil2vg5",
        "bulk_status",
        (SOURCE, "relationships", "2wil2vg5"),
        {"with_receipts": False},
    ),
    (
        "task_status",
        "GET",
        f"{S}/tasks/bd_1?withReceipts=FALSE",
        "task_status",
        (SOURCE, "bd_1"),
        {"with_receipts": False},
    ),
    (
        "create_relationship",
        "POST",
        f"{S}/relationships/provider-office",
        "create_relationship",
        (SOURCE, "provider-office", BODY),
        {"override": None},
    ),
    (
        "get_relationship",
        "GET",
        f"{S}/relationships/provider-office/1.2",
        "get_relationship",
        (SOURCE, "provider-office", "1.2"),
        {},
    ),
    (
        "delete_relationship",
        "DELETE",
        f"{S}/relationships/provider-office/office.1,provider.2",
        "delete_relationship",
        (SOURCE, "provider-office", "office.1,provider.2"),
        {},
    ),
    (
        "create_resource",
        "POST",
        f"{S}/resources/office",
        "create_resource",
        (SOURCE, "office", BODY),
        {"override": None},
    ),
    (
        "upsert_resource",
        "PUT",
        f"{S}/resources/office/1",
        "upsert_resource",
        (SOURCE, "office", "1", BODY),
        {"override": None},
    ),
    ("get_resource", "GET", f"{S}/resources/office/1", "get_resource", (SOURCE, "office", "1"), {}),
    (
        "delete_resource",
        "DELETE",
        f"{S}/resources/office/1",
        "delete_resource",
        (SOURCE, "office", "1"),
        {},
    ),
    ("purge", "POST", f"{S}/purge", "purge", (SOURCE, BODY), {}),
    ("purge_status", "GET", f"{S}/purge/purge:abc", "purge_status", (SOURCE, "purge:abc"), {}),
    ("get_profile", "GET", f"{S}/profiles/office", "get_profile", (SOURCE, "office"), {}),
    ("put_profile", "PUT", f"{S}/profiles/office", "put_profile", (SOURCE, "office", BODY), {}),
    (
        "get_relationship_definition",
        "GET",
        f"{S}/relationship-definitions/provider-office",
        "get_relationship_definition",
        (SOURCE, "provider-office"),
        {},
    ),
    (
        "put_relationship_definition",
        "PUT",
        f"{S}/relationship-definitions/provider-office",
        "put_relationship_definition",
        (SOURCE, "provider-office", BODY),
        {},
    ),
    (
        "create_source",
        "PUT",
        f"/catalog/v1/sources/{SOURCE}",
        "create_source",
        (SOURCE, BODY),
        {},
    ),
]
UNIMPLEMENTED = [
    ("PATCH", f"{S}/resources/office/1"),
    ("PATCH", f"{S}/relationships/provider-office/1.2"),
    ("PUT", f"{S}/resources/office/1/addresses/a1"),
    ("GET", f"{S}/collections/office/pipeline"),
    ("PUT", f"{S}/collections/office/pipeline"),
    ("GET", f"{S}/pipelines/executions/x1"),
    ("GET", f"{S}/objects/photos/o1"),
]


async def send(app: Any, method: str, url: str, body: Any = None, **kw: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://emulator") as http:
        content = None if body is None else json.dumps(body).encode()
        return await http.request(method, url, content=content, headers=kw.get("headers", AUTH))


@pytest.mark.parametrize(("route", "method", "url", "called", "args", "kwargs"), CASES)
async def test_app_route_reaches_its_registry_method(route, method, url, called, args, kwargs):
    spy = SpyRegistry()
    app = create_app(cast(Registry, spy))
    body = BODY if method in {"POST", "PUT"} else None
    answer = await send(app, method, url, body)
    assert answer.status_code == 207
    assert answer.json() == {"called": called}
    assert spy.calls == [(called, args, kwargs)]
    assert app.context.requests.entries()[-1]["route"] == route


def test_app_route_table_is_covered_by_the_cases():
    """A route added without a case here fails this test."""
    unemulated = {
        "patch_relationship",
        "patch_resource",
        "upsert_contained_resource",
        "get_pipeline",
        "put_pipeline",
        "get_pipeline_execution",
        "get_object",
    }
    assert {case[0] for case in CASES} | unemulated == set(ROUTE_NAMES)
    assert len(UNIMPLEMENTED) == len(unemulated)


@pytest.mark.parametrize(("method", "url"), UNIMPLEMENTED)
async def test_app_documented_but_unemulated_endpoints_answer_501(method, url):
    spy = SpyRegistry()
    answer = await send(create_app(cast(Registry, spy)), method, url, BODY)
    assert answer.status_code == 501
    assert answer.json()["type"] == "UNIMPLEMENTED"
    assert answer.json()["details"] == []
    assert spy.calls == []


async def test_app_invalid_json_is_400_invalid_argument(client):
    answer = await client.post(f"{S}/bundle", content=b"{not json", headers=AUTH)
    assert answer.status_code == 400
    body = answer.json()
    assert body["type"] == "INVALID_ARGUMENT"
    assert body["code"] == 400
    assert body["details"] == []
    assert "invalid JSON" in body["message"]


async def test_app_empty_body_is_400(client):
    answer = await client.post(f"{S}/resources/bulk", headers=AUTH)
    assert answer.status_code == 400
    assert "empty" in answer.json()["message"]


@pytest.mark.parametrize(
    ("url", "segment"),
    [
        ("/sources/bad%20key/v1/tasks/bd_1", "sourceKey"),
        (f"{S}/resources/off%C3%A9/1", "resourceType"),
        (f"{S}/resources/office/a%20b", "resourceId"),
        (f"{S}/tasks/bd%241", "taskId"),
        (f"{S}/profiles/-%2A", "profileKey"),
    ],
)
async def test_app_invalid_path_id_is_400_naming_the_segment(client, url, segment):
    answer = await client.get(url, headers=AUTH)
    assert answer.status_code == 400
    assert answer.json()["type"] == "INVALID_ARGUMENT"
    assert segment in answer.json()["message"]


async def test_app_bad_with_receipts_is_400(client):
    answer = await client.get(f"{S}/tasks/bd_1?withReceipts=maybe", headers=AUTH)
    assert answer.status_code == 400
    assert "withReceipts" in answer.json()["message"]


async def test_app_unknown_route_is_404_in_the_error_shape(client):
    answer = await client.get("/sources/x/v2/nothing", headers=AUTH)
    assert answer.status_code == 404
    assert answer.json() == {
        "code": 404,
        "message": "no route for GET /sources/x/v2/nothing",
        "type": "NOT_FOUND",
        "details": [],
    }


async def test_app_wrong_method_is_405_with_allow(client):
    answer = await client.delete(f"{S}/bundle", headers=AUTH)
    assert answer.status_code == 405
    assert answer.headers["allow"] == "POST"
    assert answer.json()["code"] == 405


async def test_app_passes_the_exact_body_size_to_the_registry():
    spy = SpyRegistry()
    raw = b'{"operations":   []}  '
    transport = httpx.ASGITransport(app=create_app(cast(Registry, spy)))
    async with httpx.AsyncClient(transport=transport, base_url="http://e") as http:
        await http.post(f"{S}/resources/bulk", content=raw, headers=AUTH)
    assert spy.calls[0][2]["raw_size"] == len(raw)


async def test_app_registry_reply_reaches_the_client(client):
    answer = await client.get(f"{S}/profiles/office", headers=AUTH)
    assert answer.status_code == 200
    assert answer.json()["type"] == "ROOT"


async def test_app_registry_bug_answers_500_internal_without_details_of_the_data():
    class BrokenRegistry(SpyRegistry):
        def get_profile(self, *args: Any) -> Reply:
            raise KeyError("patient-name")

    app = create_app(cast(Registry, BrokenRegistry()))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://e") as http:
        answer = await http.get(f"{S}/profiles/office", headers=AUTH)
    assert answer.status_code == 500
    assert answer.json() == {
        "code": 500,
        "message": "emulator error: KeyError",
        "type": "INTERNAL",
        "details": [],
    }
    assert "patient-name" not in answer.text
    assert app.context.requests.entries()[-1]["status"] == 500

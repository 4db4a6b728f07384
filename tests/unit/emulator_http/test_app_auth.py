"""The Registry key on every Registry route, its change at run time, and the admin token."""

from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr

from emulator.app import create_app
from emulator.config import EmulatorConfig
from emulator.registry import Registry
from tests.unit.emulator_http.conftest import AUTH, KEY, SOURCE, use_case_bundle

pytestmark = pytest.mark.anyio

BUNDLE_URL = f"/sources/{SOURCE}/v1/bundle"


async def test_app_missing_key_is_401_and_nothing_is_applied(client, registry):
    answer = await client.post(BUNDLE_URL, json=use_case_bundle())
    assert answer.status_code == 401
    assert answer.json() == {
        "code": 401,
        "message": "missing API key: send the X-Clinia-API-Key header",
        "type": "UNAUTHENTICATED",
        "details": [],
    }
    assert registry.write_log() == []


async def test_app_wrong_key_is_401(client, registry):
    answer = await client.post(
        BUNDLE_URL, json=use_case_bundle(), headers={"X-Clinia-API-Key": KEY + "x"}
    )
    assert answer.status_code == 401
    assert answer.json()["message"] == "invalid API key"
    assert registry.write_log() == []


async def test_app_key_header_name_is_case_insensitive(client):
    answer = await client.get(
        f"/sources/{SOURCE}/v1/profiles/office", headers={"x-clinia-api-key": KEY}
    )
    assert answer.status_code == 200


async def test_app_unknown_route_without_key_is_401(client):
    answer = await client.get("/nowhere")
    assert answer.status_code == 401


async def test_app_key_changes_at_run_time_through_the_admin_api(client):
    url = f"/sources/{SOURCE}/v1/profiles/office"
    changed = await client.patch("/_emulator/config", json={"api_key": "fixed-key"})
    assert changed.status_code == 200
    assert "fixed-key" not in changed.text
    assert changed.json()["api_key"] == "**********"
    assert (await client.get(url, headers=AUTH)).status_code == 401
    assert (await client.get(url, headers={"X-Clinia-API-Key": "fixed-key"})).status_code == 200


async def test_app_key_never_appears_in_answers_or_the_request_log(client):
    await client.post(BUNDLE_URL, json=use_case_bundle(), headers=AUTH)
    await client.post(BUNDLE_URL, json=use_case_bundle(), headers={"X-Clinia-API-Key": "guess"})
    seen = [
        (await client.get("/_emulator/requests")).text,
        (await client.get("/_emulator/config")).text,
    ]
    for text in seen:
        assert KEY not in text
        assert "guess" not in text


async def test_app_admin_needs_no_registry_key(client):
    assert (await client.get("/_emulator/health")).status_code == 200


async def test_app_admin_token_guards_the_admin_api_when_set():
    app = create_app(
        Registry(EmulatorConfig(api_key=SecretStr(KEY))), admin_token=SecretStr("admin-t")
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://e") as http:
        refused = await http.get("/_emulator/health")
        assert refused.status_code == 401
        assert refused.json()["type"] == "UNAUTHENTICATED"
        wrong = await http.get("/_emulator/health", headers={"X-Emulator-Admin-Token": "no"})
        assert wrong.status_code == 401
        ok = await http.get("/_emulator/health", headers={"X-Emulator-Admin-Token": "admin-t"})
        assert ok.status_code == 200

"""An in-process emulator app, an httpx client bound to it (no socket), a recording sleep."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest
from pydantic import SecretStr

from emulator.app import EmulatorApp, create_app
from emulator.config import EmulatorConfig
from emulator.registry import Registry

KEY = "unit-test-key"
AUTH = {"X-Clinia-API-Key": KEY}
SOURCE = "hospital-a"


def use_case_bundle(office_data: dict[str, Any] | None = None) -> dict[str, Any]:
    """The bundle guide's office + provider + relationship example."""
    return {
        "resourceOperations": [
            {
                "action": "UPSERT",
                "upsert": {"id": "1", "type": "office", "data": office_data or {"name": "Clinic"}},
            },
            {
                "action": "UPSERT",
                "upsert": {"id": "2", "type": "provider", "data": {"name": "John Doe"}},
            },
        ],
        "relationshipOperations": [
            {
                "action": "UPSERT",
                "upsert": {
                    "type": "provider-office",
                    "from": {"id": "1", "type": "office"},
                    "to": {"id": "2", "type": "provider"},
                    "data": {"description": "Works at"},
                },
            }
        ],
    }


class RecordingSleep:
    """Stands in for asyncio.sleep: records each delay asked for and yields once, no waiting."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        await anyio.sleep(0)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def sleeps() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture
def registry() -> Registry:
    return Registry(EmulatorConfig(api_key=SecretStr(KEY)))


@pytest.fixture
def app(registry: Registry, sleeps: RecordingSleep) -> EmulatorApp:
    return create_app(registry, sleep=sleeps)


@pytest.fixture
async def client(app: EmulatorApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://emulator") as http:
        yield http

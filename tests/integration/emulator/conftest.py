"""The emulator served by uvicorn on a free loopback port, for tests that need a real socket."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from emulator.app import EmulatorApp, create_app
from emulator.config import EmulatorConfig
from emulator.registry import Registry
from emulator.server import serve_in_thread

KEY = "integration-key"
AUTH = {"X-Clinia-API-Key": KEY}
SOURCE = "hospital-a"
SEEDS = Path(__file__).resolve().parents[2] / "fixtures" / "seeds"


def seed(name: str) -> Any:
    """One seed example, as the fixtures copy it from the documentation."""
    return json.loads((SEEDS / f"{name}.json").read_text(encoding="utf-8"))


@dataclass
class Emulator:
    """A running emulator: its base URL, its app (for its context), and plain httpx clients."""

    url: str
    app: EmulatorApp

    def client(self, **kwargs: Any) -> httpx.Client:
        """A client that sends the Registry key; `timeout` and the rest as httpx takes them."""
        return httpx.Client(base_url=self.url, headers=AUTH, **kwargs)

    def admin(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call the admin API and return its JSON (None for 204)."""
        answer = httpx.request(method, f"{self.url}/_emulator{path}", **kwargs)
        answer.raise_for_status()
        return None if answer.status_code == 204 else answer.json()


def wait_for(condition: Callable[[], Any], *, timeout_s: float = 5.0) -> Any:
    """Poll `condition` until it returns something truthy, or fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        time.sleep(0.01)


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    app = create_app(Registry(EmulatorConfig(api_key=SecretStr(KEY))))
    with serve_in_thread(app) as server:
        yield Emulator(url=server.url, app=app)

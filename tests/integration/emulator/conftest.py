"""The emulator served by uvicorn on a free loopback port, for tests that need a real socket."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
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
from tests.redis_server import free_port
from tests.waiting import wait_for

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
    app: EmulatorApp | None
    """The in-process app, or None when the emulator runs as its own process."""

    def client(self, **kwargs: Any) -> httpx.Client:
        """A client that sends the Registry key; `timeout` and the rest as httpx takes them."""
        return httpx.Client(base_url=self.url, headers=AUTH, **kwargs)

    def admin(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call the admin API and return its JSON (None for 204)."""
        answer = httpx.request(method, f"{self.url}/_emulator{path}", **kwargs)
        answer.raise_for_status()
        return None if answer.status_code == 204 else answer.json()


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    app = create_app(Registry(EmulatorConfig(api_key=SecretStr(KEY))))
    with serve_in_thread(app) as server:
        yield Emulator(url=server.url, app=app)


@contextlib.contextmanager
def console_script_emulator() -> Iterator[str]:
    """`clinia-ingest emulator` in a process of its own on a free loopback port; yields its URL."""
    script = Path(sys.executable).with_name("clinia-ingest")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLINIA_")}
    env["CLINIA_API_KEY"] = KEY
    process = subprocess.Popen(
        [str(script), "emulator", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _healthy(url) or process.poll() is not None, timeout_s=20)
        assert process.poll() is None, "clinia-ingest emulator exited at start"
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/_emulator/health", timeout=1).status_code == 200
    except httpx.TransportError:
        return False

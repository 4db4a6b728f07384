"""`RegistryClient` against the emulator served by uvicorn on a loopback port.

One server for the whole session; before each test the admin API resets the emulator (records,
tasks, logs, fault rules) and puts every switch back to the suite's baseline. Each client gets a
fake clock whose sleeps only advance it, so retries and polls cost no real time, and a transport
that records every request it forwards (the emulator's request log keeps no query string).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from api_client._client import RegistryClient
from api_client.config import ClientConfig
from api_client.models import BundleRequest
from api_client.retry import RetryPolicy
from api_client.waiting import PollPolicy
from emulator.app import create_app
from emulator.config import EmulatorConfig
from emulator.registry import Registry
from emulator.server import serve_in_thread

KEY = "client-suite-key"
SOURCE = "hospital-a"
SEEDS = Path(__file__).resolve().parents[2] / "fixtures" / "seeds"
BASELINE = EmulatorConfig(api_key=SecretStr(KEY))
"""The switches every test starts from (the emulator's defaults, with the suite's key)."""
FAST_POLLS = PollPolicy(first_wait_s=0.01, multiplier=1.0, cap_s=0.01, jitter=0.0)
"""Waits of 0.01 s between polls: the fake clock makes them free, and they stay short anyway."""
EPOCH_S = 1_700_000_000.0
"""Where the fake wall clock starts (seconds since the epoch)."""


def seed(name: str) -> Any:
    """One seed example, as tests/fixtures/seeds copies it from the documentation."""
    return json.loads((SEEDS / f"{name}.json").read_text(encoding="utf-8"))


def seed_bundle() -> BundleRequest:
    """The bundle guide's use case: office 1, provider 2 and their relationship, all UPSERTs."""
    return BundleRequest.model_validate(seed("bundle-guide.use-case-request"))


@dataclass
class FakeTime:
    """A monotonic clock that moves only when the code under test sleeps; sleeps are recorded."""

    now_s: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def monotonic(self) -> float:
        """The current fake time."""
        return self.now_s

    def wall(self) -> float:
        """The fake time as seconds since the epoch."""
        return EPOCH_S + self.now_s

    def sleep(self, seconds: float) -> None:
        """Record the wait and advance the clock by it, without waiting."""
        self.sleeps.append(seconds)
        self.now_s += seconds


@dataclass(frozen=True)
class SentLine:
    """One request as it left the client: method, path and query string."""

    method: str
    path: str
    query: str


class RecordingTransport(httpx.BaseTransport):
    """A real HTTP transport that also remembers what it sent, for query-string checks."""

    def __init__(self, sent: list[SentLine]) -> None:
        self._inner = httpx.HTTPTransport()
        self.sent = sent

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Record the request, then send it over the socket."""
        self.sent.append(
            SentLine(request.method, request.url.path, request.url.query.decode("ascii"))
        )
        return self._inner.handle_request(request)

    def close(self) -> None:
        """Close the pooled connections."""
        self._inner.close()


@dataclass
class Harness:
    """The running emulator, its admin API, and clients built against it."""

    url: str
    admin_http: httpx.Client
    """Talks to the admin API; a fresh connection per call (see `admin_client`)."""
    time: FakeTime = field(default_factory=FakeTime)
    sent: list[SentLine] = field(default_factory=list)
    """Every request any of this test's clients sent, in order."""
    _clients: list[RegistryClient] = field(default_factory=list)

    def client(
        self,
        *,
        api_key: str = KEY,
        retry: RetryPolicy | None = None,
        read_timeout_s: float = 5.0,
    ) -> RegistryClient:
        """A client on the fake clock and the recording transport; closed after the test."""
        config = ClientConfig(
            base_url=self.url,
            api_key=SecretStr(api_key),
            connect_timeout_s=2.0,
            read_timeout_s=read_timeout_s,
            retry=retry or RetryPolicy(),
        )
        client = RegistryClient(
            config,
            transport=RecordingTransport(self.sent),
            clock=self.time.monotonic,
            wall_clock=self.time.wall,
            sleep=self.time.sleep,
            rng=random.Random(7),
        )
        self._clients.append(client)
        return client

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        """Call the admin API; its JSON, or None for 204. Fails the test on an error status."""
        answer = self.admin_http.request(method, f"/_emulator{path}", json=body)
        answer.raise_for_status()
        return None if answer.status_code == 204 else answer.json()

    def configure(self, **changes: Any) -> None:
        """PATCH the emulator's switches."""
        self.admin("PATCH", "/config", changes)

    def add_fault(self, rule: dict[str, Any]) -> None:
        """Add one fault rule."""
        self.admin("POST", "/faults", rule)

    def requests(self, route: str | None = None) -> list[dict[str, Any]]:
        """The emulator's request log, oldest first, only `route` when given."""
        entries: list[dict[str, Any]] = self.admin("GET", "/requests")
        return [entry for entry in entries if route is None or entry["route"] == route]

    def writes(self) -> list[dict[str, Any]]:
        """Every write the emulator applied, in order."""
        found: list[dict[str, Any]] = self.admin("GET", "/writes")
        return found

    def written_ids(self) -> list[str]:
        """The ids of the applied writes, in order."""
        return [write["id"] for write in self.writes()]

    def close(self) -> None:
        """Close every client built here (each closes its own transport)."""
        for client in self._clients:
            client.close()


@pytest.fixture(scope="session")
def emulator_url() -> Iterator[str]:
    """One emulator for the session, on a free loopback port."""
    app = create_app(Registry(BASELINE.model_copy(deep=True)))
    with serve_in_thread(app) as server:
        yield server.url


@pytest.fixture(scope="session")
def admin_client(emulator_url: str) -> Iterator[httpx.Client]:
    """An httpx client for the admin API that opens a new connection per call.

    A reused connection would pay the emulator server's ~40 ms Nagle stall on every answer
    (see `test_server_latency.py`); a fresh one does not.
    """
    limits = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(base_url=emulator_url, timeout=5.0, limits=limits) as http:
        yield http


def reset_emulator(admin_http: httpx.Client) -> None:
    """Forget every record, task, log and fault rule, and put every switch back to BASELINE."""
    admin_http.post("/_emulator/reset").raise_for_status()
    current = admin_http.get("/_emulator/config").json()
    baseline = BASELINE.model_dump(mode="json", exclude={"seed", "api_key", "source_modes"})
    patch = {
        **baseline,
        "api_key": KEY,
        "source_modes": dict.fromkeys(current["source_modes"]),
    }
    admin_http.patch("/_emulator/config", json=patch).raise_for_status()


@pytest.fixture
def harness(emulator_url: str, admin_client: httpx.Client) -> Iterator[Harness]:
    """A clean emulator (baseline switches, no records, no faults) and a client factory."""
    reset_emulator(admin_client)
    built = Harness(url=emulator_url, admin_http=admin_client)
    try:
        yield built
    finally:
        built.close()

"""The pipeline driven with `run_due` against the private Redis and the emulator on loopback.

Each test gets a fresh emulator (in-memory, its own port) whose records are stamped with one fixed
clock, a `Deps` with the fast settings profile, and helpers to drain the backlog with a deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import redis
from pydantic import SecretStr

from emulator.app import create_app
from emulator.config import EmulatorConfig
from emulator.registry import Registry
from emulator.server import RunningServer, serve_in_thread
from worker.domain.events import ChangeEvent
from worker.pipeline import Deps, build_deps, run_due
from worker.publish_report import PublishReport
from worker.publisher import publish
from worker.results import backlog
from worker.settings import IngestSettings
from worker.store.codec import event_from_json

from .oracle import fixed_clock

KEY = "pipeline-suite-key"
SOURCE = "hospital-a"
FAST: Mapping[str, Any] = {
    "linger_ms": 20,
    "max_age_ms": 200,
    "claim_ttl_ms": 3000,
    "poll_first_ms": 20,
    "poll_cap_ms": 200,
    "http_deadline_s": 2,
    "retry_base_ms": 20,
    "retry_cap_ms": 200,
    "due_lease_ms": 1000,
}
"""The fast settings profile: short lingers, claims and polls."""


@dataclass
class Harness:
    """A running emulator, the pipeline's dependencies against it, and what was published."""

    registry: Registry
    server: RunningServer
    deps: Deps
    published: list[str] = field(default_factory=list)
    """Accepted event ids, in publish order."""

    def publish(self, events: Sequence[Mapping[str, Any]], **kwargs: Any) -> PublishReport:
        report = publish(self.deps, events, **kwargs)
        self.published.extend(a.event_id for a in report.accepted)
        return report

    def drain(self, *, deadline_s: float = 60.0) -> int:
        """Run `run_due` until the backlog is 0; the rounds it took. Fails past the deadline."""
        deadline = time.monotonic() + deadline_s
        rounds = 0
        while True:
            counts = run_due(self.deps)
            rounds += 1
            current = backlog(self.deps)
            if current.total == 0:
                return rounds
            if time.monotonic() > deadline:
                raise AssertionError(f"backlog not drained in {deadline_s}s: {current.to_dict()}")
            if counts.idle:
                time.sleep(0.005)  # nothing due yet; the deadline above bounds the loop

    def stored_events(self, source: str = SOURCE) -> list[ChangeEvent]:
        """The accepted events as stored (ids and refs resolved), in publish order."""
        bodies = self.deps.store.event_bodies(source, self.published)
        return [event_from_json(bodies[e]) for e in self.published if e in bodies]

    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, timeout=10.0)

    def requests(self) -> list[dict[str, Any]]:
        with self.admin() as admin:
            answer = admin.get("/_emulator/requests")
            answer.raise_for_status()
            entries: list[dict[str, Any]] = answer.json()
            return entries

    def add_fault(self, rule: Mapping[str, Any]) -> None:
        with self.admin() as admin:
            admin.post("/_emulator/faults", json=dict(rule)).raise_for_status()


HarnessFactory = Callable[..., Harness]


@pytest.fixture
def harness_factory(redis_url: str) -> Iterator[HarnessFactory]:
    """Builds harnesses; stops their servers and closes their clients afterwards."""
    made: list[Harness] = []

    def make(config: EmulatorConfig | None = None, **settings: Any) -> Harness:
        emulator_config = config or EmulatorConfig()
        emulator_config.api_key = SecretStr(KEY)
        registry = Registry(emulator_config, clock=fixed_clock)
        server = serve_in_thread(create_app(registry))
        values = {**FAST, **settings}
        ingest = IngestSettings(
            base_url=server.url,
            api_key=SecretStr(KEY),
            redis_url=SecretStr(redis_url),
            **values,
        )
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        harness = Harness(registry, server, build_deps(ingest, redis=client))
        made.append(harness)
        return harness

    yield make
    for harness in made:
        harness.deps.close()
        harness.deps.store.client.close()
        harness.server.stop()

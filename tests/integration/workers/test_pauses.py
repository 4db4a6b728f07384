"""Source pauses across real worker processes: one pause in Redis holds every worker of a source.

Each test runs two `celery worker` processes against the emulator on loopback and reads what the
Registry saw from the emulator's request log (arrival time, duration, route, status): a 429 keeps
every worker off the source until its Retry-After; a refused key stops submissions and polls,
lets a single probe through when each pause ends, and resumes once the key is accepted again; an
unreachable Registry pauses the source until it listens again. Nothing is dead-lettered, and the
Registry ends equal to the events applied one by one.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

import pytest
from pydantic import SecretStr

from emulator.app import create_app
from emulator.config import EmulatorConfig, SourceMode
from emulator.registry import Registry
from emulator.server import serve_in_thread
from tests.integration.workers.checks import (
    check_registry_matches_oracle,
    publish_all,
    wait_drained,
)
from tests.integration.workers.conftest import (
    KEY,
    PROJECT_ROOT,
    Emulator,
    Workers,
    worker_environment,
)
from tests.integration.workers.stream import make_stream
from tests.waiting import wait_for
from worker.pipeline import Deps
from worker.results import backlog, event_status
from worker.settings import IngestSettings
from worker.store.keys import SourceKeys
from worker.store.pauses import Pause, PauseStore

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(60)]

SOURCE = "hospital-a"
OTHER_SOURCE = "hospital-b"
WRONG_KEY = "a-key-nobody-was-given"
RETRY_AFTER_S = 2
POOL_PROCESSES = 4
"""Two workers with two pool processes each: the most requests that can be under way at once."""
DRAIN_TIMEOUT_S = 20.0
FINAL_STATUSES = frozenset({"applied", "coalesced"})


# -- helpers ---------------------------------------------------------------------------------------


def pause_record(deps: Deps, source: str) -> Pause | None:
    """The source's pause as stored, ended or not."""
    return PauseStore(deps.store.client).get(source)


def active_pause(deps: Deps, source: str) -> Pause | None:
    """The source's pause while it holds, as `clinia-ingest backlog` shows it."""
    view = backlog(deps).sources.get(source)
    return None if view is None else view.paused


def arrival_s(entry: dict[str, Any]) -> float:
    """When the emulator received the request (seconds since the epoch)."""
    return datetime.fromisoformat(entry["at"]).timestamp()


def answered_s(entry: dict[str, Any]) -> float:
    """When the emulator had sent its answer."""
    return arrival_s(entry) + float(entry["durationMs"]) / 1000


def requests_of(
    emulator: Emulator, source: str, route: str | None = None, since_s: float = 0.0
) -> list[dict[str, Any]]:
    """The source's Registry requests (of one route), in arrival order."""
    found = [
        r
        for r in emulator.admin("GET", "/requests")
        if r["source"] == source
        and (route is None or r["route"] == route)
        and arrival_s(r) >= since_s
    ]
    return sorted(found, key=arrival_s)


def check_outcomes_and_registry(
    deps: Deps, emulator: Emulator, events: Sequence[dict[str, Any]], sources: Sequence[str]
) -> None:
    """Every event applied or coalesced, no dead letter, and the Registry equal to the oracle."""
    statuses = {e["eventId"]: event_status(deps, e["eventId"]).status for e in events}
    assert set(statuses.values()) <= FINAL_STATUSES, statuses
    for source in sources:
        assert deps.store.client.xlen(SourceKeys(source).dlq) == 0, source
    check_registry_matches_oracle(emulator, events, sources)


def check_nothing_dead_lettered(deps: Deps, events: Sequence[dict[str, Any]]) -> None:
    statuses = {event_status(deps, e["eventId"]).status for e in events}
    assert "dead_lettered" not in statuses, statuses
    assert deps.store.client.xlen(SourceKeys(events[0]["sourceKey"]).dlq) == 0


def check_no_key_in_logs(workers: Workers) -> None:
    logs = [worker.log() for worker in workers.running]
    assert any("source.paused" in log for log in logs)
    assert not any(KEY in log or WRONG_KEY in log for log in logs)


CLI_MAIN = "from worker.cli import main; raise SystemExit(main())"


def cli_backlog(settings: IngestSettings) -> dict[str, Any]:
    """`clinia-ingest backlog --json`, run as an operator would, with the workers' settings."""
    done = subprocess.run(
        [sys.executable, "-c", CLI_MAIN, "backlog", "--json"],
        cwd=PROJECT_ROOT,
        env=worker_environment(settings),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    parsed: dict[str, Any] = json.loads(done.stdout)
    return parsed


# -- 429: every worker waits for Retry-After -------------------------------------------------------


def test_429_holds_every_worker_off_the_source_until_retry_after(
    deps: Deps, emulator: Emulator, workers: Workers
) -> None:
    # Given a Registry that answers the first bundle of one source 429 with Retry-After: 2 ...
    effect = {"kind": "status", "status": 429, "retry_after": str(RETRY_AFTER_S)}
    rule = {"route": "bundle", "source": SOURCE, "times": 1, "effect": effect}
    emulator.admin("POST", "/faults", json=rule)
    events = make_stream(
        sources=[SOURCE, OTHER_SOURCE], groups=24, events=240, seed=41, deletes=False
    )
    first = [e for e in events if e["group"] == "g-0"]
    rest = [e for e in events if e["group"] != "g-0"]
    assert {e["sourceKey"] for e in first} == {SOURCE}
    workers.start(2)

    # ... when one group of that source meets the 429, and both sources get more work at once ...
    publish_all(deps, first)
    pause = wait_for(lambda: active_pause(deps, SOURCE), timeout_s=10)
    assert pause.kind == "throttled"
    publish_all(deps, rest)
    wait_drained(deps, workers, DRAIN_TIMEOUT_S)

    # ... no worker sent a bundle of the source until the Retry-After had passed ...
    throttled, *after = requests_of(emulator, SOURCE, "bundle")
    assert throttled["status"] == 429
    resume_at = arrival_s(throttled) + RETRY_AFTER_S
    assert after
    assert [r for r in after if arrival_s(r) < resume_at] == []
    assert {r["status"] for r in after} == {200}
    # ... then one probe went first, and the others only once it was answered ...
    probe, *others = after
    assert others
    assert min(arrival_s(r) for r in others) >= answered_s(probe)
    # ... while the other source's bundles kept flowing through the same workers.
    other = requests_of(emulator, OTHER_SOURCE, "bundle")
    assert any(arrival_s(throttled) < arrival_s(r) < resume_at for r in other)
    assert {r["status"] for r in other} == {200}

    check_outcomes_and_registry(deps, emulator, first + rest, [SOURCE, OTHER_SOURCE])
    assert pause_record(deps, SOURCE) is None, "the probe's answer ended the pause"
    assert deps.store.client.hget(SourceKeys(SOURCE).stats, "pauses") == "1"


# -- 401: submissions and polls stop; one probe per pause ------------------------------------------

AUTH_PAUSE_BASE_MS = 1000
AUTH_PAUSE_CAP_MS = 2400
"""The first pause lasts 0.5 s at least, so a sample every few ms sees each pause's end."""


class PauseWatch:
    """Samples a source's pause record, to know the end of each pause the test lived through."""

    def __init__(self, deps: Deps, emulator: Emulator, source: str) -> None:
        self.deps = deps
        self.emulator = emulator
        self.source = source
        self.ends_s: list[float] = []

    def sample(self) -> Pause | None:
        """The pause as stored now; its end is noted."""
        pause = pause_record(self.deps, self.source)
        if pause is not None and (not self.ends_s or self.ends_s[-1] != pause.until_ms / 1000):
            self.ends_s.append(pause.until_ms / 1000)
        return pause

    def probe_refused(self) -> dict[str, Any] | None:
        """The first request refused after a pause seen here had ended: the probe."""
        self.sample()
        for request in requests_of(self.emulator, self.source):
            if request["status"] == 401 and any(arrival_s(request) >= end for end in self.ends_s):
                return request
        return None


def test_401_stops_submissions_and_polls_one_probe_per_pause_then_resumes(
    deps: Deps, emulator: Emulator, workers: Workers
) -> None:
    # Given tasks answered ACCEPTED and kept PENDING for a while, every one of them being polled ...
    emulator.admin(
        "PATCH", "/config", json={"mode": "async", "task_pending_polls": 1, "task_pending_s": 3.0}
    )
    events = make_stream(sources=[SOURCE], groups=16, events=48, seed=43, deletes=False)
    accepted = [e for e in events if int(e["group"].removeprefix("g-")) < 12]
    later = [e for e in events if int(e["group"].removeprefix("g-")) >= 12]
    workers.start(
        2, pause_base_ms=AUTH_PAUSE_BASE_MS, pause_cap_ms=AUTH_PAUSE_CAP_MS, max_bundle_ops=4
    )
    publish_all(deps, accepted)

    def every_task_polled() -> set[str] | None:
        tasks = {event_status(deps, e["eventId"]).task_id for e in accepted}
        polled = {
            r["path"].rsplit("/", 1)[-1]
            for r in requests_of(emulator, SOURCE, "task_status")
            if r["status"] == 200
        }
        found = {t for t in tasks if t is not None}
        return found if None not in tasks and found <= polled else None

    tasks = wait_for(every_task_polled, timeout_s=10)
    assert len(tasks) > POOL_PROCESSES, tasks

    # ... when the Registry stops accepting the workers' key ...
    watch = PauseWatch(deps, emulator, SOURCE)
    emulator.admin("PATCH", "/config", json={"api_key": WRONG_KEY})
    pause = wait_for(watch.sample, timeout_s=10)
    assert pause.kind == "auth"
    assert KEY not in pause.reason
    assert WRONG_KEY not in pause.reason
    # ... and more events are published while the source is paused ...
    publish_all(deps, later)
    assert active_pause(deps, SOURCE) is not None
    check_nothing_dead_lettered(deps, accepted + later)
    assert backlog(deps).sources[SOURCE].parked == 0

    # ... the pause ends, a single probe is refused, and a longer pause starts; then the key is
    # accepted again (as when an operator fixes it on the Registry's side) ...
    probe = wait_for(watch.probe_refused, timeout_s=10)
    fixed_at = time.time()
    emulator.admin("PATCH", "/config", json={"api_key": KEY})

    # ... every request between the first refusal and the fix was either under way when the pause
    # began (a task poll, at most one per pool process) or that single probe (a poll or a bundle).
    refused = [r for r in requests_of(emulator, SOURCE) if r["status"] == 401]
    assert refused[0]["route"] == "task_status", "tasks were being polled when the key changed"
    window = [
        r
        for r in requests_of(emulator, SOURCE, since_s=arrival_s(refused[0]))
        if arrival_s(r) < fixed_at
    ]
    assert {r["status"] for r in window} == {401}
    first_end = max(end for end in watch.ends_s if end <= arrival_s(probe))
    under_way = [r for r in window if arrival_s(r) < first_end]
    assert 1 <= len(under_way) <= POOL_PROCESSES, under_way
    assert {r["route"] for r in under_way} == {"task_status"}
    assert [r for r in window if arrival_s(r) >= first_end] == [probe]
    assert probe["route"] in {"task_status", "bundle"}

    # Then, with no restart, the next probe gets through and everything lands.
    wait_drained(deps, workers, DRAIN_TIMEOUT_S)
    check_outcomes_and_registry(deps, emulator, accepted + later, [SOURCE])
    assert pause_record(deps, SOURCE) is None, "a probe's answer ended the pause"
    assert all(w.process.poll() is None for w in workers.running)
    check_no_key_in_logs(workers)


# -- unreachable: connection refused until the Registry listens again ------------------------------


@pytest.fixture
def closed_port() -> Iterator[socket.socket]:
    """A loopback port held by a socket that never listens: connecting to it is refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock
    finally:
        sock.close()


def test_unreachable_registry_pauses_the_source_until_it_listens_again(
    deps: Deps, workers: Workers, closed_port: socket.socket
) -> None:
    # Given workers whose Registry address refuses connections ...
    port = closed_port.getsockname()[1]
    base_url = f"http://127.0.0.1:{port}"
    overrides: dict[str, Any] = {"base_url": base_url, "pause_base_ms": 200, "pause_cap_ms": 1000}
    started = workers.start(2, **overrides)
    pids = [w.process.pid for w in started]
    events = make_stream(sources=[SOURCE], groups=10, events=80, seed=47)

    # ... when events are published, the source pauses; when the pause ends a probe goes out, is
    # refused too, and a longer pause starts ...
    publish_all(deps, events)

    def pause_where(condition: Callable[[Pause], bool]) -> Callable[[], Pause | None]:
        def check() -> Pause | None:
            pause = pause_record(deps, SOURCE)
            return pause if pause is not None and condition(pause) else None

        return check

    probing = wait_for(pause_where(lambda p: p.probing), timeout_s=10)
    again = wait_for(pause_where(lambda p: not p.probing and p.strikes > probing.strikes))
    assert again.kind == "unreachable"
    operator_settings = workers.settings.model_copy(update=overrides)

    def shown_paused() -> dict[str, Any] | None:
        view: dict[str, Any] = cli_backlog(operator_settings)["sources"][SOURCE]
        return view if view["paused"] is not None else None

    view = wait_for(shown_paused, timeout_s=15)
    assert view["paused"]["kind"] == "unreachable"
    assert view["total"] == len(events)
    assert view["parked"] == 0
    check_nothing_dead_lettered(deps, events)

    # ... then the Registry comes back on the same address: the workers resume by themselves.
    app = create_app(Registry(EmulatorConfig(api_key=SecretStr(KEY), mode=SourceMode.SYNC)))
    emulator = Emulator(url=base_url, app=app)
    closed_port.close()
    with serve_in_thread(app, port=port):
        wait_drained(deps, workers, DRAIN_TIMEOUT_S)
        check_outcomes_and_registry(deps, emulator, events, [SOURCE])
        assert pause_record(deps, SOURCE) is None
        assert requests_of(emulator, SOURCE, "bundle"), "the workers reached the new server"
    assert [w.process.pid for w in workers.running] == pids
    assert all(w.process.poll() is None for w in workers.running)

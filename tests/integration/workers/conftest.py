"""Real Celery worker processes on the test's private Redis, against the emulator on loopback.

`workers.start(n)` launches `python -m celery -A worker worker --pool=prefork` processes whose
environment points at the test Redis and emulator with a fast settings profile; the fixture's
finalizer stops every one of them (SIGTERM, a bounded wait, then SIGKILL).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from emulator.app import EmulatorApp, create_app
from emulator.config import EmulatorConfig, SourceMode
from emulator.registry import Registry
from emulator.server import serve_in_thread
from worker.pipeline import Deps, build_deps
from worker.settings import ENV_NAMES, IngestSettings

PROJECT_ROOT = Path(__file__).resolve().parents[3]
KEY = "workers-suite-key"
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0

FAST_PROFILE: dict[str, Any] = {
    "linger_ms": 20,
    "max_age_ms": 200,
    "claim_ttl_ms": 3000,
    "poll_first_ms": 20,
    "poll_cap_ms": 200,
    "http_deadline_s": 2.0,
    "http_connect_timeout_s": 1.0,
    "http_read_timeout_s": 1.0,
    "retry_base_ms": 20,
    "retry_cap_ms": 500,
    "tick_interval_ms": 50,
    "due_lease_ms": 1000,
    "task_soft_time_limit_s": 8.0,
    "task_time_limit_s": 10.0,
    "visibility_timeout_s": 30.0,
    "soft_shutdown_timeout_s": 2.0,
}
"""Short durations, so a stream drains in seconds; the chain of durations still holds."""


@dataclass
class Emulator:
    """The emulator serving on a loopback port, with its admin API."""

    url: str
    app: EmulatorApp

    def admin(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call the admin API and return its JSON (None for 204)."""
        answer = httpx.request(method, f"{self.url}/_emulator{path}", timeout=30.0, **kwargs)
        answer.raise_for_status()
        return None if answer.status_code == 204 else answer.json()


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    """Synchronous answers unless a test switches its sources to async."""
    return EmulatorConfig(api_key=SecretStr(KEY), mode=SourceMode.SYNC)


@pytest.fixture
def emulator(emulator_config: EmulatorConfig) -> Iterator[Emulator]:
    app = create_app(Registry(emulator_config))
    with serve_in_thread(app) as server:
        yield Emulator(url=server.url, app=app)


@pytest.fixture
def settings(redis_url: str, emulator: Emulator) -> IngestSettings:
    """The fast profile, pointed at this test's Redis and emulator."""
    return IngestSettings(
        redis_url=SecretStr(redis_url),
        base_url=emulator.url,
        api_key=SecretStr(KEY),
        **FAST_PROFILE,
    )


@pytest.fixture
def deps(settings: IngestSettings) -> Iterator[Deps]:
    """The test process's own dependencies (to publish and to read outcomes)."""
    built = build_deps(settings)
    yield built
    built.close()
    built.store.client.close()


def worker_environment(settings: IngestSettings) -> dict[str, str]:
    """The environment that makes `read_settings()` in a worker give `settings`."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("INGEST_", "CLINIA_", "CELERY_"))
    }
    for field_name, value in settings.model_dump().items():
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        env[ENV_NAMES[field_name]] = str(value).lower() if isinstance(value, bool) else str(value)
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class WorkerProcess:
    """One `celery worker` process and the file its output goes to."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Wait until Celery says the worker is ready; fail with its log if it exits or stalls."""
        deadline = time.monotonic() + timeout_s
        while f"{self.name}@" not in self.log() or " ready." not in self.log():
            if self.process.poll() is not None:
                raise AssertionError(f"worker {self.name} exited:\n{self.log()[-4000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"worker {self.name} not ready:\n{self.log()[-4000:]}")
            time.sleep(0.05)

    def terminate(self) -> None:
        """Ask for a warm shutdown (SIGTERM)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM (warm shutdown), wait, then SIGKILL; the exit status."""
        if self.process.poll() is None:
            self.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout_s)
        return self.process.returncode


@dataclass
class Workers:
    """Starts worker processes for one test; `stop_all` ends them."""

    settings: IngestSettings
    log_dir: Path
    running: list[WorkerProcess] = field(default_factory=list)

    def start(self, count: int, *, concurrency: int = 2, **overrides: Any) -> list[WorkerProcess]:
        """Start `count` workers and wait until all are ready."""
        settings = self.settings.model_copy(update=overrides) if overrides else self.settings
        env = worker_environment(settings)
        started = []
        for _ in range(count):
            name = f"w{len(self.running) + 1}"
            log_path = self.log_dir / f"{name}.log"
            args = [
                sys.executable, "-m", "celery", "-A", "worker", "worker",
                "--pool=prefork", "-c", str(concurrency),
                "-n", f"{name}@%h", "--loglevel", "INFO",
                "--without-mingle", "--without-gossip",
            ]  # fmt: skip
            with log_path.open("wb") as out:
                process = subprocess.Popen(
                    args, cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
                )
            worker = WorkerProcess(name, process, log_path)
            self.running.append(worker)
            started.append(worker)
        for worker in started:
            worker.wait_ready()
        return started

    def stop_all(self) -> None:
        """Ask every worker to stop at once, then wait for each (SIGKILL after the timeout)."""
        for worker in self.running:
            worker.terminate()
        for worker in self.running:
            worker.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {w.name} ---\n{w.log()[-3000:]}" for w in self.running)


@pytest.fixture
def workers(settings: IngestSettings, tmp_path: Path) -> Iterator[Workers]:
    """Worker processes for this test, stopped in the finalizer whatever happened."""
    pool = Workers(settings, tmp_path)
    try:
        yield pool
    finally:
        pool.stop_all()


# -- crashes: SIGKILL of a worker's main process or of one pool child -----------------------------

GONE_TIMEOUT_S = 10.0


def pool_children(worker: WorkerProcess) -> list[int]:
    """The pids of the worker's pool children (read from /proc: no extra dependency)."""
    pid = worker.process.pid
    listed = Path(f"/proc/{pid}/task/{pid}/children").read_text(encoding="ascii")
    return [int(child) for child in listed.split()]


def _gone(pid: int) -> bool:
    """Whether `pid` has exited (a zombie waiting to be reaped counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        return True
    return stat.rpartition(")")[2].split()[0] in {"Z", "X"}


def wait_gone(pids: list[int], timeout_s: float = GONE_TIMEOUT_S) -> None:
    """Wait until every one of `pids` has exited."""
    deadline = time.monotonic() + timeout_s
    while not all(_gone(pid) for pid in pids):
        if time.monotonic() > deadline:
            raise AssertionError(f"still running: {[p for p in pids if not _gone(p)]}")
        time.sleep(0.01)


def kill_main(worker: WorkerProcess) -> None:
    """SIGKILL the worker's main process, and wait until its pool children are gone too.

    Celery's prefork children ask the kernel for SIGKILL when their parent dies
    (`PR_SET_PDEATHSIG`), so nothing of the worker runs on: no request is answered, no record
    written, and the messages it held stay unacknowledged until the visibility timeout.
    """
    children = pool_children(worker)
    worker.process.kill()
    worker.process.wait(STOP_TIMEOUT_S)
    wait_gone(children)


def kill_pool_child(worker: WorkerProcess) -> int:
    """SIGKILL the worker's only pool child (start it with `concurrency=1`); its pid.

    The main process lives on: it requeues the child's message (`task_reject_on_worker_lost`)
    and forks a new child.
    """
    children = pool_children(worker)
    assert len(children) == 1, f"expected one pool child, found {children}"
    os.kill(children[0], signal.SIGKILL)
    wait_gone(children)
    return children[0]

"""The processes the benchmark runs beside itself, on top of the demo's (`worker.demo_stack`).

The emulator runs in its own process (`clinia-ingest emulator`), so that serving the Registry
never shares the benchmark's GIL; the baseline's workers are the demo's worker processes with
another app and one queue each. `Stack` is what every run shares. Everything listens on
127.0.0.1.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from celery import Celery

from bench.baseline import queue_name
from bench.stream import State, normalized
from worker.demo_stack import (
    PORT_ATTEMPTS,
    READY_TIMEOUT_S,
    PrivateRedis,
    StackError,
    Workers,
    environment_for,
    free_port,
    stop_process,
    wait_until,
)
from worker.settings import IngestSettings

if TYPE_CHECKING:
    import redis

    from bench.options import Options
    from worker.store import Store

PROJECT_ROOT = Path(__file__).resolve().parents[1]
ADMIN_TIMEOUT_S = 30.0
PING_TIMEOUT_S = 0.5


class BenchError(RuntimeError):
    """Something broke: a run lost events, failed writes, or did not finish in time."""


@dataclass
class Stack:
    """What every run shares: the options, our settings, the private Redis, the emulator, our
    store (on that Redis), a directory for the workers' logs, and where progress goes."""

    options: Options
    settings: IngestSettings
    redis_server: PrivateRedis
    emulator: EmulatorProcess
    store: Store
    directory: Path
    progress: Callable[[str], None]

    @property
    def client(self) -> redis.Redis:
        return self.store.client

    @property
    def broker_url(self) -> str:
        return self.settings.effective_broker_url.get_secret_value()

    @property
    def redis_pid(self) -> int:
        return self.redis_server.process.pid

    @property
    def emulator_pid(self) -> int:
        return self.emulator.process.pid

    def logs(self, tag: str) -> Path:
        """A directory for the logs of one crew of workers."""
        path = self.directory / tag
        path.mkdir(exist_ok=True)
        return path

    def reset(self) -> None:
        """Empty Redis and the emulator, between runs whose data would not fit together (no
        worker may run: their queues go too)."""
        self.client.flushall()
        self.emulator.reset()


class EmulatorProcess:
    """`clinia-ingest emulator` on a free loopback port, its key in the environment (not `ps`).

    As for the private Redis (`PrivateRedis`), the emulator is ours only when its health answer
    names our process: another process may take the port between its pick and our bind.
    """

    def __init__(self, directory: Path, api_key: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CLINIA_", "INGEST_"))}
        env["CLINIA_API_KEY"] = api_key
        self.log_path = directory / "emulator.log"
        for _ in range(PORT_ATTEMPTS):
            self.port = free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            args = [*_emulator_command(), "--host", "127.0.0.1", "--port", str(self.port),
                    "--log-level", "warning"]  # fmt: skip
            with self.log_path.open("wb") as out:
                self.process = subprocess.Popen(  # noqa: S603 - our own arguments, no shell
                    args, env=env, stdout=out, stderr=subprocess.STDOUT
                )
            self._http = httpx.Client(base_url=f"{self.url}/_emulator", timeout=ADMIN_TIMEOUT_S)
            wait_until(self._answers, timeout_s=READY_TIMEOUT_S, what="the emulator did not start")
            if self.process.poll() is None and self._pid() == self.process.pid:
                return
            self._http.close()
            stop_process(self.process)  # the port was taken: try another
        raise StackError(f"the emulator found no free port in {PORT_ATTEMPTS} attempts")

    def _answers(self) -> bool:
        """Whether the emulator exited at start or something answers health on its port."""
        if self.process.poll() is not None:
            return True
        try:
            return self._http.get("/health").status_code == 200
        except httpx.TransportError:
            return False

    def _pid(self) -> int | None:
        try:
            return int(self._http.get("/health").json().get("pid", 0))
        except (httpx.TransportError, ValueError, AttributeError):
            return None

    def alive(self) -> bool:
        """Whether the emulator still runs (one that exited says why in its log)."""
        if self.process.poll() is not None:
            tail = self.log_path.read_text(encoding="utf-8", errors="replace")[-2000:]
            raise StackError(f"the emulator exited (status {self.process.returncode}):\n{tail}")
        return True

    def admin(self, path: str) -> Any:
        """GET an admin route (under /_emulator) and return its JSON."""
        answer = self._http.get(path)
        answer.raise_for_status()
        return answer.json()

    def requests_so_far(self) -> int:
        """How many Registry requests the emulator has served since it started.

        The log keeps the last 10,000 only, but numbers them all: the last number is the count.
        """
        entries = self.admin("/requests")
        return int(entries[-1]["seq"]) if entries else 0

    def state(self, source: str) -> State:
        """The source's records as the emulator holds them, normalized for comparison."""
        return normalized(
            {
                "resources": self.admin(f"/sources/{source}/resources"),
                "relationships": self.admin(f"/sources/{source}/relationships"),
            }
        )

    def configure(self, changes: dict[str, Any]) -> None:
        """Change the emulator's switches (`PATCH /_emulator/config`); kept across `reset`."""
        self._http.patch("/config", json=changes).raise_for_status()

    def reset(self) -> None:
        """Forget every record, request and fault (between runs that would not fit together)."""
        self._http.post("/reset").raise_for_status()

    def stop(self) -> None:
        self._http.close()
        stop_process(self.process)


def _emulator_command() -> list[str]:
    """`clinia-ingest emulator` from this interpreter's environment (`python -m emulator` else)."""
    script = Path(sys.executable).with_name("clinia-ingest")
    if script.exists():
        return [str(script), "emulator"]
    return [sys.executable, "-m", "emulator"]


class BaselineWorkers(Workers):
    """`celery -A bench.baseline worker` processes: one pool process and one queue each.

    The demo's worker processes with another app; started, watched and stopped the same way.
    """

    def __init__(self, settings: IngestSettings, log_dir: Path, *, count: int) -> None:
        env = environment_for(settings, os.environ)
        self.processes = []
        for index in range(count):
            log_path = log_dir / f"baseline{index + 1}.log"
            args = [sys.executable, "-m", "celery", "-A", "bench.baseline", "worker",
                    "--pool=prefork", "-c", "1", "-Q", queue_name(index),
                    "-n", f"baseline{index + 1}@%h", "--loglevel", "WARNING",
                    "--without-mingle", "--without-gossip"]  # fmt: skip
            with log_path.open("wb") as out:
                process = subprocess.Popen(  # noqa: S603 - our own arguments, no shell
                    args, cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
                )
            self.processes.append((process, log_path))


def worker_pids(workers: Workers) -> list[int]:
    """The workers' main processes (their pool children hang below them)."""
    return [process.pid for process, _ in workers.processes]


def wait_ready(
    broker_url: str,
    workers: Workers,
    *,
    prefix: str,
    timeout_s: float = READY_TIMEOUT_S,
) -> list[str]:
    """Wait until every worker named `prefix...@host` answers a ping (its consumer is up);
    their names, sorted."""
    app = Celery("bench-ping", broker=broker_url, set_as_current=False)
    app.conf.broker_connection_retry_on_startup = True
    wanted = len(workers.processes)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            workers.alive()
            replies = app.control.ping(timeout=PING_TIMEOUT_S, limit=wanted) or []
            names = {name for reply in replies for name in reply if name.startswith(prefix)}
            if len(names) >= wanted:
                return sorted(names)
            if time.monotonic() > deadline:
                raise StackError(f"{wanted - len(names)} worker(s) not ready within {timeout_s} s")
    finally:
        app.close()

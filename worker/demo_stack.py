"""The processes the demo runs beside itself: a private Redis, the emulator, Celery workers.

Everything listens on 127.0.0.1 and lives in a temporary directory, so the demo never touches a
Redis or a port it did not open, and leaves nothing behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from worker.settings import ENV_NAMES, IngestSettings

READY_TIMEOUT_S = 30.0
PORT_ATTEMPTS = 5
STOP_TIMEOUT_S = 15.0
POLL_INTERVAL_S = 0.05


class StackError(RuntimeError):
    """A process of the demo's stack did not start; the message says which and why."""


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Callable[[], bool], *, timeout_s: float, what: str) -> None:
    """Poll `condition` until it holds; raise StackError naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise StackError(f"{what} within {timeout_s:.0f} s")
        time.sleep(POLL_INTERVAL_S)


class PrivateRedis:
    """A redis-server on a free loopback port, persistence off, that never evicts.

    A free port is only free when it is picked: another process may take it before our server
    binds it. So the server is ours only when it answers with our process id; when it exits at
    start, or a stranger answers, it starts again on another port.
    """

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise StackError("the demo needs `redis-server` on the PATH (Redis 7)")
        for _ in range(PORT_ATTEMPTS):
            self.port = free_port()
            self.url = f"redis://127.0.0.1:{self.port}/0"
            args = [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--dir",
                    str(directory), "--save", "", "--appendonly", "no", "--maxmemory-policy",
                    "noeviction", "--logfile", str(directory / "redis.log")]  # fmt: skip
            self.process = subprocess.Popen(  # noqa: S603 - our own arguments, no shell
                args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            wait_until(self._answers, timeout_s=READY_TIMEOUT_S, what="redis-server did not start")
            if self.process.poll() is None and self._server_pid() == self.process.pid:
                return
            stop_process(self.process)  # the port was taken: try another
        raise StackError(f"redis-server found no free port in {PORT_ATTEMPTS} attempts")

    def _answers(self) -> bool:
        """Whether the server exited at start or someone accepts on its port."""
        if self.process.poll() is not None:
            return True
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def _server_pid(self) -> int | None:
        """The process id of whatever Redis answers on our port (None: nothing answers)."""
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=READY_TIMEOUT_S)
        try:
            return int(client.info("server")["process_id"])
        except redis.RedisError:
            return None
        finally:
            client.close()

    def stop(self) -> None:
        stop_process(self.process)


class Workers:
    """Celery worker processes (`python -m celery -A worker worker`) with the ticker."""

    def __init__(self, settings: IngestSettings, log_dir: Path, *, count: int, concurrency: int):
        env = environment_for(settings, os.environ)
        self.processes: list[tuple[subprocess.Popen[bytes], Path]] = []
        for index in range(1, count + 1):
            log_path = log_dir / f"worker{index}.log"
            args = [sys.executable, "-m", "celery", "-A", "worker", "worker", "--pool=prefork",
                    "-c", str(concurrency), "-n", f"demo{index}@%h", "--loglevel", "WARNING",
                    "--without-mingle", "--without-gossip"]  # fmt: skip
            with log_path.open("wb") as out:
                process = subprocess.Popen(  # noqa: S603 - our own arguments, no shell
                    args, env=env, stdout=out, stderr=subprocess.STDOUT
                )
            self.processes.append((process, log_path))

    def alive(self) -> bool:
        """Whether every worker still runs (a worker that exited says why in its log)."""
        for process, log_path in self.processes:
            if process.poll() is not None:
                tail = log_path.read_text(encoding="utf-8", errors="replace")[-2000:]
                raise StackError(f"a worker exited (status {process.returncode}):\n{tail}")
        return True

    def stop(self) -> None:
        for process, _ in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process, _ in self.processes:
            stop_process(process)


def environment_for(settings: IngestSettings, base: Mapping[str, str]) -> dict[str, str]:
    """An environment in which `read_settings()` gives `settings` (our own variables replaced)."""
    env = {k: v for k, v in base.items() if not k.startswith(("INGEST_", "CLINIA_", "CELERY_"))}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        text: Any = value.get_secret_value() if isinstance(value, SecretStr) else value
        env[ENV_NAMES[name]] = str(text).lower() if isinstance(text, bool) else str(text)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Stop a process we started: SIGTERM, then SIGKILL after STOP_TIMEOUT_S."""
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(STOP_TIMEOUT_S)

"""A private redis-server for the test session: a free port, a temporary directory, our own config.

Tests never touch a Redis they did not start, so they can flush it freely and run beside anything.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

PORT_ATTEMPTS = 5


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One redis-server process, restartable on the same port and data directory."""

    def __init__(self, directory: Path, *, appendonly: bool = False) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError("redis-server")
        self.binary = binary
        self.directory = directory
        self.appendonly = appendonly
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.restarted = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, *, ready_timeout_s: float = 10.0) -> None:
        """Start the server; on a first start, on another port if another process took ours.

        A port is only free when `free_port` picks it: the server is ours when it answers with
        our process id. A restart keeps its port (its clients hold the URL), so a stranger on
        it is an error there.
        """
        for _ in range(PORT_ATTEMPTS):
            if self._start_once(ready_timeout_s):
                return
            if self.restarted:
                raise RuntimeError(f"port {self.port} was taken while redis-server was down")
            self.port = free_port()
        raise RuntimeError(f"redis-server found no free port in {PORT_ATTEMPTS} attempts")

    def _start_once(self, ready_timeout_s: float) -> bool:
        args = [
            self.binary,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.directory),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "always",
            "--maxmemory-policy", "noeviction",
            "--logfile", str(self.directory / "redis.log"),
            "--daemonize", "no",
        ]  # fmt: skip
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.process = process
        deadline = time.monotonic() + ready_timeout_s
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)
        try:
            while True:
                try:
                    pid = int(client.info("server")["process_id"])
                except redis.ConnectionError:
                    exited = process.poll() is not None
                    if exited or time.monotonic() > deadline:
                        log = self._log_tail()
                        if exited and "already in use" in log:
                            self.process = None
                            return False  # the port is taken
                        raise RuntimeError(f"redis-server did not start:\n{log}") from None
                    time.sleep(0.02)
                    continue
                if pid == process.pid:
                    return True
                self.stop()  # another server answers on the port
                return False
        finally:
            client.close()

    def _log_tail(self) -> str:
        path = self.directory / "redis.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else "(no log)"

    def stop(self) -> None:
        """Kill the server at once, as a crash would (AOF with fsync always keeps every write)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.restarted = True
        self.start()

"""The benchmark's emulator process is its own: never another process on the port it picked."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench import stack
from tests.redis_server import RedisServer, free_port

pytestmark = pytest.mark.integration


def test_a_taken_port_moves_the_emulator_to_another(
    redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def ports() -> Iterator[int]:
        yield redis_server.port  # taken: the emulator cannot bind it, and Redis answers no health
        while True:
            yield free_port()

    picks = ports()
    monkeypatch.setattr(stack, "free_port", lambda: next(picks))
    emulator = stack.EmulatorProcess(tmp_path, "bench-key")
    try:
        assert emulator.port != redis_server.port
        health = httpx.get(f"{emulator.url}/_emulator/health", timeout=5).json()
        assert health == {"status": "ok", "pid": emulator.process.pid}
    finally:
        emulator.stop()

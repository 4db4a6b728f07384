"""The emulator as its users start it: `python -m emulator`, and `serve_in_thread` for tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from emulator.app import create_app
from emulator.server import serve_in_thread
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def accepts(url: str) -> bool:
    try:
        return httpx.get(f"{url}/_emulator/health", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_serve_in_thread_serves_then_stops_cleanly():
    server = serve_in_thread(create_app())
    with server:
        assert server.url.startswith("http://127.0.0.1:")
        assert accepts(server.url)
    assert not accepts(server.url)


def test_python_m_emulator_serves_with_the_key_from_a_file(tmp_path: Path):
    key_file = tmp_path / "key"
    key_file.write_text("file-key\n", encoding="utf-8")
    config = tmp_path / "emulator.json"
    config.write_text(json.dumps({"mode": "async"}), encoding="utf-8")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLINIA_")}
    env["CLINIA_API_KEY_FILE"] = str(key_file)
    process = subprocess.Popen(
        [sys.executable, "-m", "emulator", "--port", str(port), "--config", str(config)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: accepts(url) or process.poll() is not None, timeout_s=20)
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        profile = f"{url}/sources/s/v1/profiles/office"
        assert httpx.get(profile, headers={"X-Clinia-API-Key": "file-key"}).status_code == 200
        assert httpx.get(profile, headers={"X-Clinia-API-Key": "emulator-key"}).status_code == 401
        assert httpx.get(f"{url}/_emulator/config").json()["mode"] == "async"
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=20)
    # uvicorn shuts down gracefully, then re-raises the signal so the exit status reports it
    assert process.returncode in {0, -signal.SIGTERM}
    assert b"Finished server process" in err
    assert b"file-key" not in err

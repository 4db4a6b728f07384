"""Running the emulator: command-line arguments, the config file, and uvicorn in a thread for tests.

`clinia-ingest emulator` and `python -m emulator` both call `add_arguments` then `run_from_args`.
Integration tests use `serve_in_thread(app)` to talk to the emulator over a real loopback socket.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import uvicorn
from pydantic import TypeAdapter, ValidationError
from starlette.types import ASGIApp

from emulator.app import EmulatorApp, create_app
from emulator.auth import (
    ADMIN_TOKEN_ENV,
    ADMIN_TOKEN_FILE_ENV,
    KEY_ENV,
    KEY_FILE_ENV,
    KeySourceError,
    resolve_secret,
)
from emulator.collector import freeze_after_full_collections
from emulator.config import EmulatorConfig
from emulator.faults import FaultPlan, FaultRule
from emulator.registry import Registry

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8700
START_TIMEOUT_S = 10.0
"""How long `serve_in_thread` waits for the server to accept connections."""
STOP_TIMEOUT_S = 10.0
"""How long `RunningServer.stop` waits for in-flight requests before forcing the server down."""
GRACEFUL_SHUTDOWN_S = 2
"""uvicorn's grace for open connections on shutdown (a late-answer fault may still hold one)."""

_RULE_LIST = TypeAdapter(list[FaultRule])


class ConfigFileError(ValueError):
    """The config file cannot be used; the message names the file and the field."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the emulator's command-line options on `parser` (a subcommand's, or its own)."""
    parser.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"interface to listen on (default {DEFAULT_HOST}; keep it on loopback: the admin "
        "API under /_emulator/ has no key)",
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})"
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="JSON file: EmulatorConfig fields, plus 'faults': a list of fault rules",
    )
    parser.add_argument(
        "--api-key",
        metavar="K",
        help=f"accepted API key, for local use only: it shows in `ps`; prefer {KEY_ENV} or "
        f"{KEY_FILE_ENV}",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="uvicorn's log level (default info)",
    )


def load_config_file(path: Path) -> tuple[EmulatorConfig, list[FaultRule]]:
    """The config and fault rules a JSON config file holds."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigFileError(f"{path}: cannot read: {exc.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigFileError(f"{path}: invalid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigFileError(f"{path}: expected a JSON object")
    fields = dict(raw)
    rules_raw = fields.pop("faults", [])
    unknown = sorted(set(fields) - set(EmulatorConfig.model_fields))
    if unknown:
        raise ConfigFileError(f"{path}: {unknown[0]}: not a config field")
    try:
        config = EmulatorConfig.model_validate(fields)
    except ValidationError as exc:
        raise ConfigFileError(f"{path}: {_problems(exc, prefix='')}") from None
    try:
        rules = _RULE_LIST.validate_python(rules_raw)
    except ValidationError as exc:
        raise ConfigFileError(f"{path}: {_problems(exc, prefix='faults')}") from None
    return config, rules


def _problems(exc: ValidationError, *, prefix: str) -> str:
    """Each problem as `field.path: reason`, without echoing the input (it may hold a key)."""
    parts = []
    for problem in exc.errors(include_input=False, include_url=False):
        where = ".".join(str(part) for part in (prefix, *problem["loc"]) if part != "")
        parts.append(f"{where or 'config'}: {problem['msg']}")
    return "; ".join(parts)


def build_app(args: argparse.Namespace, environ: Mapping[str, str]) -> EmulatorApp:
    """The app the arguments and environment describe.

    The accepted key comes from --api-key, else CLINIA_API_KEY, else CLINIA_API_KEY_FILE, else
    the config file, else the built-in default. Raises ConfigFileError or KeySourceError.
    """
    config, rules = (
        load_config_file(args.config) if args.config is not None else (EmulatorConfig(), [])
    )
    key = resolve_secret(
        flag=args.api_key,
        flag_name="--api-key",
        environ=environ,
        env=KEY_ENV,
        file_env=KEY_FILE_ENV,
    )
    if key is not None:
        config.api_key = key
    admin_token = resolve_secret(
        flag=None,
        flag_name="",
        environ=environ,
        env=ADMIN_TOKEN_ENV,
        file_env=ADMIN_TOKEN_FILE_ENV,
    )
    try:
        faults = FaultPlan(rules, seed=config.seed)
        return create_app(Registry(config), faults=faults, admin_token=admin_token)
    except ValueError as exc:
        where = f"{args.config}: " if args.config is not None else ""
        raise ConfigFileError(f"{where}{exc}") from None


def run_from_args(args: argparse.Namespace) -> int:
    """Serve the emulator in the foreground until interrupted; the process exit code."""
    try:
        app = build_app(args, os.environ)
    except (ConfigFileError, KeySourceError) as exc:
        sys.stderr.write(f"emulator: {exc}\n")
        return 2
    if not _is_loopback(args.host):
        sys.stderr.write(
            f"WARNING: listening on {args.host}: the admin API (/_emulator/) is reachable "
            "from other machines; it must never be exposed\n"
        )
    default_key = EmulatorConfig().api_key.get_secret_value()
    if app.context.config.api_key.get_secret_value() == default_key:
        sys.stderr.write("note: accepting the emulator's built-in default API key\n")
    freeze_after_full_collections()
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        lifespan="off",
        ws="none",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    return 0


class RunningServer:
    """uvicorn serving an app on a loopback port in a background thread; stop() ends it."""

    def __init__(
        self, server: uvicorn.Server, thread: threading.Thread, url: str, sock: socket.socket
    ) -> None:
        self._server = server
        self._thread = thread
        self.socket = sock
        """The listening socket (bound before uvicorn starts, so the port is known at once)."""
        self.url = url
        """The base URL, e.g. http://127.0.0.1:54321 (no trailing slash)."""

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Ask the server to exit, then force it after `timeout_s`; idempotent."""
        self._server.should_exit = True
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise RuntimeError(f"the emulator at {self.url} did not stop within {2 * timeout_s}s")

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve_in_thread(
    app: ASGIApp,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    start_timeout_s: float = START_TIMEOUT_S,
    log_level: str = "warning",
) -> RunningServer:
    """Start uvicorn on `host:port` (0: a free port) and return once it accepts connections.

    Raises RuntimeError when the server does not accept a connection within `start_timeout_s`.
    """
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on accepted sockets of that protocol, and
    # without it uvicorn's separate header and body writes stall ~40 ms on a kept-alive connection.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_host, bound_port = sock.getsockname()[:2]
    config = uvicorn.Config(
        app,
        log_level=log_level,
        lifespan="off",
        ws="none",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="emulator-server", daemon=True
    )
    thread.start()
    running = RunningServer(server, thread, f"http://{bound_host}:{bound_port}", sock)
    deadline = time.monotonic() + start_timeout_s
    while not _accepts(bound_host, bound_port):
        if not thread.is_alive() or time.monotonic() > deadline:
            running.stop()
            sock.close()
            raise RuntimeError(f"the emulator did not start on {running.url}")
        time.sleep(0.01)
    return running


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False

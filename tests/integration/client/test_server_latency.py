"""The emulator served by `serve_in_thread` answers a reused connection without a Nagle stall."""

from __future__ import annotations

import socket

import pytest

from emulator.app import create_app
from emulator.server import serve_in_thread

pytestmark = pytest.mark.integration


def test_serve_in_thread_listens_on_a_tcp_protocol_socket() -> None:
    # asyncio turns TCP_NODELAY on only for accepted sockets whose protocol is IPPROTO_TCP;
    # with protocol 0, every answer after the first on a kept-alive connection waits ~40 ms.
    with serve_in_thread(create_app()) as running:
        assert running.socket.proto == socket.IPPROTO_TCP

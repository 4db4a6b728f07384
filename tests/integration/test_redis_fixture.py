"""The private Redis fixtures: isolated, durable across a restart when AOF is on, and never
another process's server that took the port picked for them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests import redis_server as redis_server_module
from tests.redis_server import RedisServer, free_port
from worker import demo_stack

pytestmark = pytest.mark.integration


def test_redis_server_is_private_and_noeviction(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
    assert not redis_url.endswith(":6379/0")
    client.set("k", "v")
    assert client.get("k") == b"v"
    client.close()


def test_redis_url_is_flushed_between_tests(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    assert client.dbsize() == 0
    client.close()


def test_aof_redis_server_keeps_writes_across_a_kill(aof_redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(aof_redis_server.url)
    client.rpush("events", "a", "b")
    client.close()
    aof_redis_server.restart()
    client = redis.Redis.from_url(aof_redis_server.url)
    assert client.lrange("events", 0, -1) == [b"a", b"b"]
    client.close()


def _ports(first: int) -> Iterator[int]:
    """`free_port` as a race would give it: first a port another server already holds."""
    yield first
    while True:
        yield free_port()


def _server_pid(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return int(client.info("server")["process_id"])
    finally:
        client.close()


def test_a_taken_port_moves_the_test_server_to_another(
    redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ports = _ports(redis_server.port)
    monkeypatch.setattr(redis_server_module, "free_port", lambda: next(ports))
    other = RedisServer(tmp_path)
    try:
        other.start()
        assert other.port != redis_server.port
        assert other.process is not None
        assert _server_pid(other.url) == other.process.pid
    finally:
        other.stop()
    assert redis_server.process is not None
    assert _server_pid(redis_server.url) == redis_server.process.pid


def test_a_restart_refuses_a_port_taken_meanwhile(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    other = RedisServer(tmp_path)
    other.start()
    other.stop()
    other.port = redis_server.port  # as if another server took its port while it was down
    with pytest.raises(RuntimeError, match="was taken while redis-server was down"):
        other.restart()
    assert redis_server.process is not None
    assert _server_pid(redis_server.url) == redis_server.process.pid


def test_a_taken_port_moves_the_demo_redis_to_another(
    redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ports = _ports(redis_server.port)
    monkeypatch.setattr(demo_stack, "free_port", lambda: next(ports))
    private = demo_stack.PrivateRedis(tmp_path)
    try:
        assert private.port != redis_server.port
        assert _server_pid(private.url) == private.process.pid
    finally:
        private.stop()

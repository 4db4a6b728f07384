"""The private Redis fixtures: isolated, and durable across a restart when AOF is on."""

from __future__ import annotations

import pytest
import redis

from tests.redis_server import RedisServer

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

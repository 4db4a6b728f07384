"""Session-wide test setup: hypothesis profiles, and a private Redis server.

Hypothesis: `ci` (derandomized, bounded) under CI=true, `dev` (random, more examples) otherwise;
`HYPOTHESIS_PROFILE=<name>` picks one explicitly. Registered here, before any test module is
collected, so every property test runs under the same profile whatever the collection order.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest
import redis
from hypothesis import HealthCheck, settings

from tests.redis_server import RedisServer

CI_EXAMPLES: Final = 200
DEV_EXAMPLES: Final = 400

_SLOW_DRAWS: Final = [HealthCheck.too_slow, HealthCheck.data_too_large]

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    max_examples=CI_EXAMPLES,
    deadline=None,
    print_blob=True,
    suppress_health_check=_SLOW_DRAWS,
)
settings.register_profile(
    "dev",
    max_examples=DEV_EXAMPLES,
    deadline=None,
    print_blob=True,
    suppress_health_check=_SLOW_DRAWS,
)


def _hypothesis_profile() -> str:
    chosen = os.environ.get("HYPOTHESIS_PROFILE")
    if chosen:
        return chosen
    return "ci" if os.environ.get("CI", "").lower() == "true" else "dev"


settings.load_profile(_hypothesis_profile())

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _require_redis_binary() -> None:
    """Skip on a laptop without redis-server; under CI=true a missing server is a failure."""
    if shutil.which("redis-server") is None:
        if IN_CI:
            pytest.fail("redis-server is required under CI=true and was not found on PATH")
        pytest.skip("redis-server is not installed")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One private redis-server (persistence off) for the whole test session."""
    _require_redis_binary()
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The private server's URL, flushed before each test so tests never see each other's keys."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
def aof_redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server with AOF on (fsync always), for tests that restart Redis."""
    _require_redis_binary()
    server = RedisServer(tmp_path, appendonly=True)
    server.start()
    yield server
    server.stop()

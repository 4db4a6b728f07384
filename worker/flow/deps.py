"""What every step needs from the outside world, built once per process (after the fork)."""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
import redis

from api_client import RegistryClient
from worker.domain.bulk import BulkCaps
from worker.ids import IdSource
from worker.profile_reader import ProfileReader, RegistryProfileReader
from worker.settings import IngestSettings
from worker.store import Store

__all__ = ["Deps", "Nudge", "build_deps", "wall_clock_ms"]

Nudge = Callable[[str, str, list[str]], None]
"""Asks for work now rather than at the ticker's next look: (kind, source, ids), kind `flush`
(ids unused) or `recover` (bundle ids ready to send). A nudge is only timing: the schedules in
Redis hold the same work, so a lost one changes nothing else."""


def _no_nudge(kind: str, source: str, ids: list[str]) -> None:
    """Without Celery (tests, the inline driver), the schedules bring the work on the next run."""


def wall_clock_ms() -> int:
    """Milliseconds since the epoch: the clock every stored time uses."""
    return int(time.time() * 1000)


@dataclass
class Deps:
    """Settings, the Redis store, the Registry client, a clock, an id source and a jitter source.

    Nothing connects until it is used, so building one before a fork is harmless; build one per
    process anyway (redis-py and httpx pools must not be shared across a fork).
    """

    settings: IngestSettings
    store: Store
    client: RegistryClient
    now_ms: Callable[[], int] = wall_clock_ms
    new_id: Callable[[], str] = field(default_factory=IdSource)
    rng: random.Random = field(default_factory=random.Random)
    bulk_caps: BulkCaps = field(default_factory=BulkCaps)
    """Limits of one bulk request (a round reads at most `flush_read_limit` events anyway)."""
    nudge: Nudge = _no_nudge
    profiles: ProfileReader | None = None
    """Reads profiles for publish's pre-validation (one attempt, short); None: only what is
    cached in Redis is used."""

    _senders: ThreadPoolExecutor | None = field(default=None, init=False, repr=False)
    _senders_pid: int = field(default=0, init=False, repr=False)
    _senders_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __repr__(self) -> str:
        return f"Deps(base_url={self.settings.base_url!r})"

    def senders(self) -> ThreadPoolExecutor:
        """The threads that send bundles side by side (`send_concurrency`), made on first use in
        each process: threads do not survive a fork."""
        with self._senders_lock:
            if self._senders is None or self._senders_pid != os.getpid():
                self._senders = ThreadPoolExecutor(
                    max_workers=self.settings.send_concurrency, thread_name_prefix="ingest-send"
                )
                self._senders_pid = os.getpid()
            return self._senders

    def close(self) -> None:
        """Close the Registry clients' pools and the sending threads (the Redis client belongs to
        whoever gave it)."""
        with self._senders_lock:
            if self._senders is not None and self._senders_pid == os.getpid():
                self._senders.shutdown(wait=True)
            self._senders = None
        self.client.close()
        if self.profiles is not None:
            self.profiles.close()


def build_deps(
    settings: IngestSettings,
    *,
    redis: redis.Redis | None = None,
    transport: httpx.BaseTransport | None = None,
    nudge: Nudge = _no_nudge,
) -> Deps:
    """The production `Deps`: a Redis client from `settings.redis_url` (unless given), a
    `RegistryClient` whose HTTP pool opens on its first request, and one that reads profiles
    (one attempt within `profile_timeout_s`) for publish; `nudge` sends work now (the
    Celery app's messages) rather than at the ticker's next look.

    Raises:
        worker.settings.SettingsError: no API key is configured.
    """
    client = redis if redis is not None else _redis_client(settings)
    profiles = None
    if settings.profile_validation:
        reader_client = RegistryClient(settings.profile_client_config(), transport=transport)
        profiles = RegistryProfileReader(reader_client)
    return Deps(
        settings=settings,
        store=Store(client, settings),
        client=RegistryClient(settings.client_config(), transport=transport),
        bulk_caps=settings.bulk_caps(),
        nudge=nudge,
        profiles=profiles,
    )


def _redis_client(settings: IngestSettings) -> redis.Redis:
    import redis as redis_module

    return redis_module.Redis.from_url(
        settings.redis_url.get_secret_value(),
        decode_responses=True,
        socket_timeout=settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s,
    )

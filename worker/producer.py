"""What a producer in Python calls: `worker.publish(events)` and `worker.status(event_id)`.

Settings come from the environment on first use. Publishing and reading need Redis only, never
the Registry or its key. One Redis client per process, built again after a fork, since a
connection pool must not cross one.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from worker.publish_report import PublishReport
    from worker.results import EventStatus
    from worker.settings import IngestSettings
    from worker.store import Store

_lock = threading.Lock()
_cached: tuple[int, Store] | None = None


def open_store(settings: IngestSettings) -> Store:
    """A `Store` on `settings.redis_url`, with the settings' timeouts on every Redis call."""
    import redis

    from worker.store import Store

    client = redis.Redis.from_url(
        settings.redis_url.get_secret_value(),
        decode_responses=True,
        socket_timeout=settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s,
    )
    return Store(client, settings)


def default_store() -> Store:
    """This process's store, from the environment's settings; rebuilt in a forked child."""
    global _cached
    with _lock:
        if _cached is None or _cached[0] != os.getpid():
            from worker.settings import read_settings

            _cached = (os.getpid(), open_store(read_settings()))
        return _cached[1]


def publish(
    events: Iterable[Mapping[str, Any]],
    *,
    atomic: bool = False,
    mode: Literal["bundle", "bulk"] = "bundle",
    store: Store | None = None,
) -> PublishReport:
    """Publish change events (camelCase dicts, as in JSON Lines); see `worker.publisher.publish`.

    Returns once the valid events are durable in Redis (as durable as its persistence setting:
    see the README), with the ids assigned to CREATEs without one and a per-event error for each
    refused event.
    """
    from worker.publisher import publish as publish_to

    return publish_to(store or default_store(), events, atomic=atomic, mode=mode)


def status(event_id: str, *, store: Store | None = None) -> EventStatus:
    """What became of one event: pending, in flight, applied, coalesced, dead-lettered, stale or
    unknown (never seen, or its outcome expired)."""
    from worker.results import event_status

    return event_status(store or default_store(), event_id)

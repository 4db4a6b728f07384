"""A source's profiles and relationship definitions cached in Redis, as the Registry served them.

Two hashes per source (`keys.profile_versions_key`, `keys.profile_bodies_key`): the small one,
versions and read times, is what every publish call reads (one `HGETALL` per source, pipelined);
the bodies are read only by a process that has not compiled that version yet. Both expire twice
the profile TTL after their last write, so a source that stopped publishing leaves nothing behind.
No business rules here: what is fresh, what is refused, is `worker/publish_profiles.py`'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import redis

from worker.store import keys
from worker.store.codec import text

__all__ = ["ABSENT_VERSION", "UNREADABLE_FIELD", "CachedProfiles", "ProfileCache"]

ABSENT_VERSION = "-"
"""The version of a key the source does not have (the Registry answered 404 for it)."""
UNREADABLE_FIELD = "!"
"""The field that says the source's profiles could not be read: `<triedAtMs>:<reason>`."""


@dataclass(frozen=True)
class CachedProfiles:
    """One source's cached versions: field (`p:<key>`, `r:<key>`) -> (version, read at ms)."""

    versions: Mapping[str, tuple[str, int]] = field(default_factory=dict)
    unreadable: tuple[int, str] | None = None
    """When the last read failed and why, while the source's profiles cannot be read."""


def _decode(raw: Mapping[object, object]) -> CachedProfiles:
    versions: dict[str, tuple[str, int]] = {}
    unreadable: tuple[int, str] | None = None
    for name, value in raw.items():
        head, _, tail = text(value).partition(":")
        if text(name) == UNREADABLE_FIELD:
            unreadable = (int(head or 0), tail)
            continue
        try:
            versions[text(name)] = (head, int(tail))
        except ValueError:
            continue  # a field written by another version of the worker: read again
    return CachedProfiles(versions, unreadable)


class ProfileCache:
    """Reads and writes the cached profiles of sources; each method is one round trip."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def versions(self, sources: Sequence[str]) -> dict[str, CachedProfiles]:
        """Each source's cached versions and unreadable mark."""
        pipe = self.client.pipeline(transaction=False)
        for source in sources:
            pipe.hgetall(keys.profile_versions_key(source))
        return {s: _decode(raw) for s, raw in zip(sources, pipe.execute(), strict=True)}

    def bodies(self, wanted: Mapping[str, Sequence[str]]) -> dict[tuple[str, str], str]:
        """The cached bodies of these fields, per source; a body gone is left out."""
        pipe = self.client.pipeline(transaction=False)
        order = [(s, list(fields)) for s, fields in wanted.items() if fields]
        for source, fields in order:
            pipe.hmget(keys.profile_bodies_key(source), fields)
        found: dict[tuple[str, str], str] = {}
        for (source, fields), values in zip(order, pipe.execute(), strict=True):
            for name, value in zip(fields, values, strict=True):
                if value is not None:
                    found[(source, name)] = text(value)
        return found

    def write(
        self,
        read: Mapping[str, Mapping[str, tuple[str, str | None]]],
        unreadable: Mapping[str, str],
        now_ms: int,
        ttl_ms: int,
    ) -> None:
        """Store what was read, per source: field -> (version, body JSON, None when absent);
        mark the sources in `unreadable` with their reason (a source read well is unmarked)."""
        pipe = self.client.pipeline(transaction=False)
        for source in {*read, *unreadable}:
            versions, bodies = keys.profile_versions_key(source), keys.profile_bodies_key(source)
            entries = read.get(source, {})
            if entries:
                pipe.hset(versions, mapping={f: f"{v}:{now_ms}" for f, (v, _) in entries.items()})
                if any(body is not None for _, body in entries.values()):
                    pipe.hset(
                        bodies, mapping={f: b for f, (_, b) in entries.items() if b is not None}
                    )
                    pipe.pexpire(bodies, 2 * ttl_ms)
            if source in unreadable:
                pipe.hset(versions, UNREADABLE_FIELD, f"{now_ms}:{unreadable[source]}")
            else:
                pipe.hdel(versions, UNREADABLE_FIELD)
            pipe.pexpire(versions, 2 * ttl_ms)
        pipe.execute()

    def drop(self, source: str, fields: Iterable[str]) -> None:
        """Forget these cached versions: the next publish reads them again."""
        names = list(fields)
        if names:
            self.client.hdel(keys.profile_versions_key(source), *names)

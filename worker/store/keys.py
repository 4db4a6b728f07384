"""Every Redis key the worker uses, and which of them expire (docs/pipeline.md section 2).

A source's keys share the hash tag `{sourceKey}`, so every script touches one cluster slot. The Lua
scripts receive the prefix `ingest:{sk}:` as KEYS[1] and append the same suffixes as below (a
component test checks that both sides name the same keys). Event ids, refs, groups and bundle ids
match `events.LABEL_PATTERN` (a bulk group adds the `@bulk:` prefix) and entity keys use
`:`-separated id parts, so no key part can hold a brace or a space.

Only finished things expire, with the results TTL: an event's hash once its outcome is final, a
ref, a recorded bundle and a finished task. Buffers, records in flight, locks, schedules, counters
and dead letters never expire. A source's bundle-size state (`shrink_key`) expires when its cap is
back to the configured one: it holds no work, only a cap that no longer shrinks anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from api_client.ids import is_source_key

ROOT: Final = "ingest"
SOURCES: Final = f"{ROOT}:sources"
"""Set of the sources that hold state (for the ticker, status lookups and the backlog)."""
BACKLOG: Final = f"{ROOT}:backlog"
"""The autoscaling signal (an integer), refreshed with a short TTL."""
INVALID_SOURCE: Final = "_invalid"
"""The pseudo source whose dead-letter stream takes events with a missing or invalid source key."""

# suffixes after the source prefix; mirrored in lua/_lib.lua
SEQ: Final = "seq"
EVENT: Final = "ev:"
REF: Final = "ref:"
BUFFER: Final = "buf:"
GROUP_STATS: Final = "gstat"
WHERE: Final = "where"
WHERE_COUNT: Final = "wn"
TOUCH: Final = "touch:"
DUE: Final = "due"
BUNDLE: Final = "bd:"
TASK: Final = "task:"
XLOCK: Final = "xlock"
SLOCK: Final = "slock:"
CLAIMS: Final = "claims"
POLLS: Final = "polls"
PARKED: Final = "parked"
WAITING: Final = "waiting:"
STATS: Final = "stats"
DLQ: Final = "dlq"

BULK_GROUP_PREFIX: Final = "@bulk:"
"""Marks a buffer of events published in bulk mode; no named group can start with it (labels
start with a letter or digit)."""


def bulk_group(named: str) -> str:
    """The bulk-mode buffer of a named group."""
    return BULK_GROUP_PREFIX + named


def is_bulk_group(group: str) -> bool:
    """Whether a buffer holds events published in bulk mode (they leave in bulk requests)."""
    return group.startswith(BULK_GROUP_PREFIX)


def prefix(source: str) -> str:
    """`ingest:{source}:`, the start of every key of one source.

    Raises:
        ValueError: `source` is neither a source key nor the invalid-events pseudo source.
    """
    if source != INVALID_SOURCE and not is_source_key(source):
        raise ValueError("source: not a valid source key")
    return f"{ROOT}:{{{source}}}:"


@dataclass(frozen=True)
class SourceKeys:
    """The names of one source's keys."""

    source: str

    @property
    def prefix(self) -> str:
        """KEYS[1] of every script."""
        return prefix(self.source)

    def _key(self, suffix: str, part: str = "") -> str:
        return f"{self.prefix}{suffix}{part}"

    @property
    def seq(self) -> str:
        """The source's publish sequence (string counter)."""
        return self._key(SEQ)

    def event(self, event_id: str) -> str:
        """One event: body, status, seq, group, bundle, outcome, times (hash)."""
        return self._key(EVENT, event_id)

    def ref(self, ref: str) -> str:
        """A ref -> the id assigned to the resource it names (string, results TTL)."""
        return self._key(REF, ref)

    def buffer(self, group: str) -> str:
        """A group's pending event ids scored by seq (sorted set)."""
        return self._key(BUFFER, group)

    @property
    def group_stats(self) -> str:
        """Per group `n|g`, `b|g`, `t|g`: events, bytes, first-buffered time (hash)."""
        return self._key(GROUP_STATS)

    @property
    def where(self) -> str:
        """Entity key -> the group whose buffer holds its pending events (hash)."""
        return self._key(WHERE)

    @property
    def where_count(self) -> str:
        """Entity key -> how many of its events are pending (hash)."""
        return self._key(WHERE_COUNT)

    def touch(self, resource_key: str) -> str:
        """Group -> pending events that write or reference the resource (hash)."""
        return self._key(TOUCH, resource_key)

    @property
    def due(self) -> str:
        """Group -> due time in ms (sorted set)."""
        return self._key(DUE)

    def bundle(self, bundle_id: str) -> str:
        """A bundle record: state, fence, claim, events, layout, task, times (hash)."""
        return self._key(BUNDLE, bundle_id)

    def task(self, task_id: str) -> str:
        """An accepted task: its bundle, last status, polls, times (hash)."""
        return self._key(TASK, task_id)

    @property
    def xlock(self) -> str:
        """Entity key -> the bundle that writes it (hash; exclusive locks)."""
        return self._key(XLOCK)

    def slock(self, entity_key: str) -> str:
        """Bundles that reference the entity (set; shared locks)."""
        return self._key(SLOCK, entity_key)

    @property
    def claims(self) -> str:
        """Bundle id -> claim expiry or retry time in ms (sorted set)."""
        return self._key(CLAIMS)

    @property
    def polls(self) -> str:
        """Bundle id -> next poll time in ms (sorted set)."""
        return self._key(POLLS)

    @property
    def parked(self) -> str:
        """Bundle id -> when it was parked for the failure handling (sorted set)."""
        return self._key(PARKED)

    def waiting(self, bundle_id: str) -> str:
        """Groups to make due when the bundle is recorded (set)."""
        return self._key(WAITING, bundle_id)

    @property
    def stats(self) -> str:
        """Counters: buffered, inflight, bundles, stale, parked (hash)."""
        return self._key(STATS)

    @property
    def dlq(self) -> str:
        """The source's dead letters (stream)."""
        return self._key(DLQ)


INVALID_DLQ: Final = SourceKeys(INVALID_SOURCE).dlq
"""`ingest:{_invalid}:dlq`."""


REOPEN: Final = "reopen:"
"""Suffix of `reopen:<eventId>`: a replayed event's attempts and stage, kept only between
reopen.lua and reopened.lua inside one MULTI (never seen outside it)."""


def reopen_key(source: str, event_id: str) -> str:
    """`ingest:{source}:reopen:<eventId>` (see `REOPEN`)."""
    return f"{prefix(source)}{REOPEN}{event_id}"


PAUSE: Final = "pause"
"""Suffix of a source's shared pause (hash, see `worker/store/pauses.py`); no TTL."""


def pause_key(source: str) -> str:
    """The source's pause: kind, reason, until, since, strikes, probe (hash; pause.lua)."""
    return prefix(source) + PAUSE


SHRINK: Final = "shrink"
"""Suffix of a source's bundle-size state (string, see `worker/store/sizing.py`); it expires when
the cap is back to `max_bundle_ops`, since from then on it says nothing."""


def shrink_key(source: str) -> str:
    """The source's shrunk bundle cap and when it was shrunk, `cap:shrunkAtMs` (string)."""
    return prefix(source) + SHRINK

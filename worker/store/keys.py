"""Every Redis key the worker uses, and which of them expire (docs/pipeline.md section 2).

A source's keys share the hash tag `{sourceKey}`, so every script touches one cluster slot. The Lua
scripts receive the prefix `ingest:{sk}:` as KEYS[1] and append the same suffixes as below (a
component test checks that both sides name the same keys). Event ids, refs, groups and bundle ids
match `events.LABEL_PATTERN` and entity keys use `:`-separated id parts, so no key part can hold
a brace or a space.

Only finished things expire, with the results TTL: an event's hash once its outcome is final, a
ref, a recorded bundle and a finished task. The ready log, records in flight, holds, schedules,
counters and dead letters never expire. A source's bundle-size state (`shrink_key`) expires when
its cap is back to the configured one: it holds no work, only a cap that no longer shrinks
anything.
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
READY: Final = "ready"
DUE: Final = "due"
PLAN_DUE: Final = "*"
DUE_LEASE: Final = "dlease"
"""The one member of a source's `due` set: when its next planning round is due."""
PLAN_LOCK: Final = "plock"
HOLD_WRITER: Final = "hx"
LAST_ACTION: Final = "la"
HOLD_READERS: Final = "hs:"
HOLD_READER_COUNT: Final = "hsn"
DEPENDENTS: Final = "dep:"
SENT_BACK_EPOCH: Final = "sbepoch"
SENT_BACK_KEYS: Final = "sbk"
COMMIT_SEQ: Final = "cseq"
SLOW_KEYS: Final = "slowk"
BLOCKED: Final = "blk:"
VIRTUAL_COUNT: Final = "hvn"
VIRTUAL_HOLDERS: Final = "hvb:"
BUNDLE: Final = "bd:"
TASK: Final = "task:"
CLAIMS: Final = "claims"
POLLS: Final = "polls"
PARKED: Final = "parked"
STATS: Final = "stats"
DLQ: Final = "dlq"


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

    @property
    def ready(self) -> str:
        """Event ids waiting to be planned, scored by publish seq (sorted set)."""
        return self._key(READY)

    @property
    def due(self) -> str:
        """`*` -> when the source's next planning round is due, in ms (sorted set)."""
        return self._key(DUE)

    @property
    def due_lease(self) -> str:
        """`score/n`: the planning entry's last hand-out by a ticker and how many in a row
        (string, PX; take_due.lua)."""
        return self._key(DUE_LEASE)

    @property
    def plan_lock(self) -> str:
        """The planning lease: the token of the one planner of the source (string, PX)."""
        return self._key(PLAN_LOCK)

    @property
    def hold_writer(self) -> str:
        """Entity key -> the last unfinished bundle that writes it (hash)."""
        return self._key(HOLD_WRITER)

    @property
    def last_action(self) -> str:
        """Entity key -> the action of the operation its writer in `hold_writer` carries (hash)."""
        return self._key(LAST_ACTION)

    def hold_readers(self, entity_key: str) -> str:
        """The unfinished bundles that reference the entity since its last writer (set)."""
        return self._key(HOLD_READERS, entity_key)

    @property
    def hold_reader_count(self) -> str:
        """Entity key -> how many bundles `hold_readers` holds (hash)."""
        return self._key(HOLD_READER_COUNT)

    def dependents(self, bundle_id: str) -> str:
        """The waiting bundles that follow this one (set)."""
        return self._key(DEPENDENTS, bundle_id)

    @property
    def sent_back_epoch(self) -> str:
        """Incremented whenever events go back to the ready log (string counter)."""
        return self._key(SENT_BACK_EPOCH)

    @property
    def sent_back_keys(self) -> str:
        """Entity key -> the epoch its events last went back to the log (hash; cleared by reads)."""
        return self._key(SENT_BACK_KEYS)

    @property
    def commit_seq(self) -> str:
        """Counts commits; each bundle record keeps its number (`cseq`) (string counter)."""
        return self._key(COMMIT_SEQ)

    @property
    def slow_keys(self) -> str:
        """Entity key -> `x:` or `s:` + the slow (STALE, parked) bundle holding it (hash)."""
        return self._key(SLOW_KEYS)

    def blocked(self, bundle_id: str) -> str:
        """Events waiting behind a slow bundle, scored by seq (sorted set)."""
        return self._key(BLOCKED, bundle_id)

    @property
    def virtual_count(self) -> str:
        """Entity key -> how many blocked events touch it (hash)."""
        return self._key(VIRTUAL_COUNT)

    def virtual_holders(self, entity_key: str) -> str:
        """Slow bundle -> how many events blocked behind it touch the entity (hash)."""
        return self._key(VIRTUAL_HOLDERS, entity_key)

    def bundle(self, bundle_id: str) -> str:
        """A bundle record: state, fence, claim, events, layout, task, times (hash)."""
        return self._key(BUNDLE, bundle_id)

    def task(self, task_id: str) -> str:
        """An accepted task: its bundle, last status, polls, times (hash)."""
        return self._key(TASK, task_id)

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

    @property
    def stats(self) -> str:
        """Counters: buffered, inflight, bundles, stale, parked (hash)."""
        return self._key(STATS)

    @property
    def refusals(self) -> str:
        """The refusal rate and foresight's hits and misses (hash, `refusals_key`)."""
        return self._key(REFUSALS)

    @property
    def known(self) -> str:
        """What the source's answers said exists (hash, `worker/domain/foresight.py`)."""
        return self._key(KNOWN)

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


REFUSALS: Final = "refusals"
"""Suffix of a source's refusal rate (hash, see `worker/store/refusals.py`)."""


def refusals_key(source: str) -> str:
    """The source's weighted refusals and operations judged (hash `f`, `j`, `every`), and
    foresight's hits and misses (`kh`, `km`, `gh`, `gm`)."""
    return prefix(source) + REFUSALS


KNOWN: Final = "known"
"""Suffix of what a source's answers said exists (hash: entity key -> generation, or a
relationship's ends' generations; results TTL after its last write)."""


PROFILE_VERSIONS: Final = "pv"
"""Suffix of a source's cached profile versions (hash, see `worker/store/profiles.py`)."""
PROFILE_BODIES: Final = "pb"
"""Suffix of a source's cached profile bodies (hash, see `worker/store/profiles.py`)."""


def profile_versions_key(source: str) -> str:
    """`p:<key>` / `r:<key>` (profile / relationship definition) -> `<version>:<readAtMs>`, the
    version `-` for a key the source does not have; `!` -> `<triedAtMs>:<reason>` while the
    source's profiles cannot be read (hash; expires twice the profile TTL after its last write)."""
    return prefix(source) + PROFILE_VERSIONS


def profile_bodies_key(source: str) -> str:
    """`p:<key>` / `r:<key>` -> the body as the Registry served it, JSON (hash; same TTL)."""
    return prefix(source) + PROFILE_BODIES

"""Plain values crossing the store boundary: what the scripts take and what they answer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from worker.domain.foresight import ForesightCounts
from worker.domain.sizing import BundleSizing


@dataclass(frozen=True)
class PublishItem:
    """One validated, resolved event to append to the ready log."""

    event_id: str
    head: str
    """The event's JSON without `data` and `contained` (`ChangeEvent.stored_parts`)."""
    content: str
    """The JSON object of its `data` and `contained` ("{}" when it has neither)."""
    entity: str
    resources: tuple[str, ...]
    group: str
    size: int
    bulk: bool = False
    """Published in bulk mode: planned into bulk requests (unless in an atomic batch)."""
    assigned_id: str | None = None
    atomic_batch: str | None = None
    ref_defined: tuple[str, str] | None = None
    """(ref, id) when this event names a new resource."""
    refs_used: Mapping[str, str] = field(default_factory=dict)
    """ref -> the id it was resolved to; publish refuses the event if that changed meanwhile."""


@dataclass(frozen=True)
class PublishReply:
    """The script's answer for one event: appended, a duplicate, or refused."""

    kind: Literal["ok", "dup", "err"]
    group: str = ""
    seq: int = 0
    assigned_id: str = ""
    status: str = ""
    field: str = ""
    reason: str = ""


@dataclass(frozen=True)
class ReadEvent:
    """An event read from the head of the ready log, with what planning needs besides its body."""

    event_id: str
    seq: int
    body: Mapping[str, Any]
    """The stored event without `data` and `contained`, decoded once with the whole read."""
    content: str
    """Its `data` and `contained` as stored JSON, never decoded by planning."""
    entity: str
    resources: tuple[str, ...]
    group: str = ""
    no_merge: bool = False
    size: int = 0
    """Its stored bytes (both parts)."""


@dataclass(frozen=True)
class ReadRound:
    """What read.lua answered: the events (seq order) and what commit.lua needs back.

    `busy` is True when another planner holds the source's lease (nothing was read).
    """

    events: tuple[ReadEvent, ...] = ()
    busy: bool = False
    token: str = ""
    epoch: int = 0
    bulk: bool = False
    """Whether these events travel in bulk requests (a round plans one kind of request)."""
    more: bool = False
    """Whether the ready log holds events past these (the read was cut)."""
    seq: int = 0
    sizing: BundleSizing | None = None
    """The source's shrunk bundle cap, read with the rest (None: not shrunk)."""
    slow: Mapping[str, str] = field(default_factory=dict)
    """Keys read that a slow bundle (STALE, parked) holds: key -> `x:<bundle>` or `s:<bundle>`."""
    after_delete: frozenset[str] = frozenset()
    """Entities read whose last planned operation (still unsent) is a DELETE."""
    virtual: Mapping[str, Sequence[tuple[str, int]]] = field(default_factory=dict)
    """Keys read that events blocked behind a slow bundle touch: key -> (that bundle, the lowest
    seq it blocked there) per slow bundle; only events after that seq must wait."""
    held: Mapping[str, str] = field(default_factory=dict)
    """Keys read that an unfinished bundle writes -> its operation's action (read for
    foresight only)."""
    known: Mapping[str, str] = field(default_factory=dict)
    """Keys read -> what the source's answers said of them (`domain.foresight`)."""
    foresight_counts: ForesightCounts = field(default_factory=ForesightCounts)
    """The source's hits and misses per kind of expectation."""
    names_every_failure: bool = False
    """The source's Registry has named two failures in one refused bundle (`refusals`)."""


@dataclass(frozen=True)
class BlockedEvent:
    """An event read that must wait behind a slow bundle (it leaves the log for its list)."""

    event_id: str
    bundle_id: str


@dataclass(frozen=True)
class BundleToCommit:
    """A planned bundle for commit.lua: its events, keys, predecessors in its plan, layout."""

    bundle_id: str
    event_ids: tuple[str, ...]
    writes: tuple[str, ...]
    reads: tuple[str, ...]
    layout: str
    groups: tuple[str, ...]
    after: tuple[str, ...] = ()
    """Bundles of the same plan it must follow (it conflicts with them)."""
    size: int = 0
    """The stored bytes of its events (the ready log's byte count drops by it)."""
    actions: Mapping[str, str] = field(default_factory=dict)
    """Entity key -> the action of its operation there (`la`, for later rounds)."""
    claim: bool = False
    """Whether the planner sends it itself once ready (claimed at commit, fence 1)."""


@dataclass(frozen=True)
class RejectedEvent:
    """An event no bundle can carry, to dead-letter from the ready log."""

    event_id: str
    error: str


CommitStatus = Literal["ready", "waiting", "aborted"]
"""What commit.lua did with one bundle (see its header)."""


@dataclass(frozen=True)
class ClaimedRecord:
    """claim.lua's answer for one bundle record (`fence` is set when `code` is 'ok')."""

    code: Literal["ok", "busy", "gone", "sent", "skip", "wait", "early"]
    bundle_id: str
    fence: int | None
    state: str
    task_id: str
    issued_by: str
    sent_at: int
    polls: int
    stale: bool
    layout: str
    event_ids: tuple[str, ...]
    attempts: int
    sending_at: int = 0
    """When the record last went `sending` (ms), 0 if never."""
    recoveries: int = 0
    """Times in a row a claimant of this record (in the claim's mode) was found gone."""
    trimmed: bool = False
    """Its layout was rewritten by a trim (not by a checked plan): checked before sending."""


@dataclass(frozen=True)
class EventOutcomeRecord:
    """One event's outcome for record.lua (fates as `coalesce.Fate` values)."""

    event_id: str
    fate: str
    error: str | None = None
    reason: str | None = None
    bound_to: str | None = None
    resent: bool = False
    """Sent again after a read-back: its next refusal may mean "already applied"."""


@dataclass(frozen=True)
class RecordResult:
    """What record.lua did: `done` is False when the fence or the state refused it."""

    done: bool
    finals: int = 0
    rebuffered: int = 0
    dead_letters: int = 0
    ready: tuple[str, ...] = ()
    """Bundles that may be sent now: those that waited for this one, and its replacements."""
    replanned: int = 0
    """Events sent back and planned again in bundles that take this one's place."""


@dataclass(frozen=True)
class DueTaken:
    """What take_due.lua handed out for one source."""

    groups: tuple[str, ...] = ()
    polls: tuple[str, ...] = ()
    claims: tuple[str, ...] = ()


@dataclass(frozen=True)
class SourceCounters:
    """The counters of one source, kept exact by the scripts."""

    buffered: int = 0
    in_flight: int = 0
    bundles: int = 0
    stale: int = 0
    parked: int = 0
    due_polls: int = 0
    parked_events: int = 0
    """Events of parked bundles (not counted in `in_flight`)."""
    blocked: int = 0
    """Events out of the ready log, waiting behind a slow (STALE or parked) bundle."""

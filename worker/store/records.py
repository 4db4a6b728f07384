"""Plain values crossing the store boundary: what the scripts take and what they answer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from worker.domain.sizing import BundleSizing

Hint = Literal["now", "linger", "wait"]
"""When a group that still holds events after a flush is due again (see reserve.lua)."""


@dataclass(frozen=True)
class PublishItem:
    """One validated, resolved event to append to a buffer."""

    event_id: str
    body: str
    entity: str
    resources: tuple[str, ...]
    named_group: str
    size: int
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
class BufferedEvent:
    """An event read back from a buffer, with what the flush needs to place and lock it."""

    event_id: str
    seq: int
    group: str
    body: Mapping[str, Any]
    """The stored event, decoded once with the whole snapshot."""
    entity: str
    resources: tuple[str, ...]
    no_merge: bool = False


@dataclass(frozen=True)
class GroupRead:
    """How much of one buffer a snapshot read; `next_seq` is the first event it left."""

    group: str
    total: int
    read: int
    next_seq: int | None = None
    next_batch: str | None = None

    @property
    def partial(self) -> bool:
        """Whether events were left unread (the read limit)."""
        return self.read < self.total


@dataclass(frozen=True)
class LockState:
    """Who holds an entity: its writer (exclusive) and its readers (shared)."""

    writer: str | None = None
    readers: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Snapshot:
    """One atomic read of buffers, the groups touching their resources, and the locks."""

    seq: int
    groups: tuple[GroupRead, ...]
    events: tuple[BufferedEvent, ...]
    touch: Mapping[str, Mapping[str, int]]
    """resource key -> group -> pending events touching it."""
    locks: Mapping[str, LockState]
    sizing: BundleSizing | None = None
    """The source's shrunk bundle cap, read with the rest (None: not shrunk)."""


@dataclass(frozen=True)
class BundleToReserve:
    """A planned bundle for reserve.lua: its events, locks and the layout to rebuild it from."""

    bundle_id: str
    event_ids: tuple[str, ...]
    writes: tuple[str, ...]
    reads: tuple[str, ...]
    layout: str
    groups: tuple[str, ...]


@dataclass(frozen=True)
class RejectedEvent:
    """An event no bundle can carry, to dead-letter from its buffer."""

    event_id: str
    error: str


@dataclass(frozen=True)
class GroupDue:
    """What reserve.lua does with a group that still holds events."""

    group: str
    hint: Hint
    wait: tuple[str, ...] = ()


@dataclass(frozen=True)
class ClaimedRecord:
    """claim.lua's answer for one bundle record (`fence` is set when `code` is 'ok')."""

    code: Literal["ok", "busy", "gone", "sent", "skip"]
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
    """Times a claimant of this record (in the claim's mode) was found gone."""


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

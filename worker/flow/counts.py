"""What each step reports back: counts and ids, never payloads."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from worker.flow.layout import Sendable


@dataclass
class _Counts:
    def add(self, other: _Counts) -> None:
        """Add another report's counts into this one (a report of a narrower kind: its fields)."""
        for f in fields(other):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if isinstance(mine, int):
                setattr(self, f.name, mine + theirs)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: the counts (lists of ids stay out of logs)."""
        return {f.name: v for f in fields(self) if isinstance(v := getattr(self, f.name), int)}


@dataclass
class SubmitCounts(_Counts):
    """What became of submissions: recorded now, accepted as tasks, released, parked, lost."""

    recorded: int = 0
    """Answered with receipts (PERSISTED) and recorded."""
    accepted: int = 0
    """Answered ACCEPTED: now in the poll schedule."""
    released: int = 0
    """Certainly not processed (throttled, refused credentials, no connection): retried later."""
    parked: int = 0
    """Left for an operator (a contract error, a request refused without receipts)."""
    unknown: int = 0
    """Outcome unknown (timeout, lost answer): kept `sending`, read back later."""
    lost_claim: int = 0
    """Another worker took the record over meanwhile: nothing written."""
    events_final: int = 0
    """Events whose outcome became final."""
    events_rebuffered: int = 0
    """Events sent back to the ready log (sent again, but not planned again here)."""
    events_replanned: int = 0
    """Events sent again (CANCELLED, UNMERGED, RETRY), planned again where they were."""
    ready: list[str] = field(default_factory=list)
    """Bundles that may be sent now: they waited for one recorded here, or replace it."""
    replanned: dict[str, Sendable] = field(default_factory=dict)
    """The bundles that replace one recorded here, as planned (sent by the caller when ready)."""


@dataclass
class FlushResult(SubmitCounts):
    """One planning round: what it read, committed, left, dead-lettered and submitted."""

    groups: int = 0
    """Rounds planned (0 or 1)."""
    events_read: int = 0
    bundles_reserved: int = 0
    """Bundles committed (ready to send, or waiting for the bundles they follow)."""
    bundles_skipped: int = 0
    """Bundles aborted at commit (their events stay in the ready log)."""
    events_held: int = 0
    """Events of aborted bundles."""
    events_rejected: int = 0
    events_blocked: int = 0
    """Events that wait behind a slow (STALE or parked) bundle."""
    busy: int = 0
    """1 when another planner held the source's lease (nothing read)."""


@dataclass
class PollResult(SubmitCounts):
    """One poll round: tasks asked about, still pending, newly stale, finished."""

    polled: int = 0
    pending: int = 0
    stale: int = 0
    busy: int = 0
    """Records another worker held."""
    early: int = 0
    """Records whose next poll was not due (a repeated or late message): left alone."""
    errors: int = 0


@dataclass
class RecoverResult(SubmitCounts):
    """One recovery round over expired claims and due retries."""

    claimed: int = 0
    resubmitted: int = 0
    read_back: int = 0
    """Records whose outcome was unknown, resolved by reading their entities back."""
    busy: int = 0
    """Records another worker held."""
    early: int = 0
    """Records whose retry or read-back time had not come (a repeated or late message)."""


@dataclass(frozen=True)
class DueWork:
    """What the ticker's step handed out, per source: groups to flush, polls, recoveries."""

    flush: dict[str, list[str]] = field(default_factory=dict)
    poll: dict[str, list[str]] = field(default_factory=dict)
    recover: dict[str, list[str]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        """Whether nothing was due."""
        return not (self.flush or self.poll or self.recover)


@dataclass
class RunCounts(_Counts):
    """One `run_due`: how much of each kind of work it did."""

    groups: int = 0
    polls: int = 0
    recoveries: int = 0
    bundles_reserved: int = 0
    recorded: int = 0
    accepted: int = 0
    released: int = 0
    parked: int = 0
    stale: int = 0

    @property
    def idle(self) -> bool:
        """Whether nothing was due."""
        return not (self.groups or self.polls or self.recoveries)

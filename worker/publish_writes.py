"""Writing a publish call into Redis so that no event is lost, whatever Redis answers.

Redis can refuse a write for a while (out of memory under `maxmemory` + `noeviction`, busy with a
script, loading, read-only after a failover, unreachable) or for good, for one event (a script
error on it). Each part of a call (one source's publish.lua call, one dead letter) is judged on
its own answer:

- a transient refusal leaves the part *waiting*: nothing of it was written (a script refused for
  memory stops at its first write, and Redis refuses the first write of a script under
  `maxmemory`), and the caller publishes those events again later;
- any other error on a source's call is narrowed down: the call is split into its units (an
  event, or an atomic batch whole) and each is published alone, so a unit that fails alone is
  refused with the store's reason (then dead-lettered at the publish stage) and never blocks the
  others.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import redis
from redis.exceptions import (
    BusyLoadingError,
    ClusterDownError,
    OutOfMemoryError,
    ReadOnlyError,
    TryAgainError,
)

from worker.store import InvalidEntry, Store
from worker.store.records import PublishItem, PublishReply

__all__ = ["STORE_FIELD", "Written", "is_transient", "write_parts"]

TRANSIENT_CODES: Final = frozenset(
    {
        "OOM",  # used memory over maxmemory (noeviction): frees up as the pipeline drains
        "BUSY",  # a script or function runs past the busy threshold
        "LOADING",  # the dataset is loading after a restart
        "READONLY",  # a replica, during or after a failover
        "MASTERDOWN",  # a replica lost its primary
        "MISCONF",  # persistence failing: Redis refuses writes until it works again
        "TRYAGAIN",
        "CLUSTERDOWN",
        "NOREPLICAS",
        "NOPERM",  # an ACL that an operator must fix: never the fault of an event
    }
)
"""Redis error codes that say "not now" rather than "not this": the write is tried again."""

STORE_FIELD: Final = "event"
"""The field named when the store refused an event alone (its reason says what Redis said)."""


def is_transient(exc: BaseException) -> bool:
    """Whether a Redis error will likely pass: connection, timeout, or a code of TRANSIENT_CODES."""
    if isinstance(
        exc,
        (
            redis.ConnectionError,
            redis.TimeoutError,
            BusyLoadingError,
            OutOfMemoryError,
            ReadOnlyError,
            TryAgainError,
            ClusterDownError,
        ),
    ):
        return True
    if isinstance(exc, redis.ResponseError):
        return error_code(exc) in TRANSIENT_CODES
    return False


_STRIPPED_CODES: Final = (
    (OutOfMemoryError, "OOM"),
    (ReadOnlyError, "READONLY"),
    (BusyLoadingError, "LOADING"),
)
"""redis-py drops the code from the message of these: it is named by the class."""


def error_code(exc: BaseException) -> str:
    """The Redis error code of `exc` (`ERR`, `WRONGTYPE`...), or its class name when it has none.

    Only the code is ever repeated in a reason or a log line: a message may quote arguments.
    """
    for kind, code in _STRIPPED_CODES:
        if isinstance(exc, kind):
            return code
    first = str(exc).split(" ", 1)[0]
    if first.isupper() and first.isalpha():
        return first
    return type(exc).__name__


@dataclass
class Written:
    """What a write did, per source: each item's reply, or None while it waits (transient)."""

    replies: dict[str, list[PublishReply | None]] = field(default_factory=dict)
    letters_waiting: set[int] = field(default_factory=set)
    """Entry indices whose dead letter is not written yet."""
    refused: dict[str, set[int]] = field(default_factory=dict)
    """Positions (within each source's items) the store refused alone: to dead-letter."""
    errors: dict[str, str] = field(default_factory=dict)
    """Source -> the error code that left some of its events waiting."""


def write_parts(
    store: Store,
    items: Mapping[str, Sequence[PublishItem]],
    invalid: Sequence[InvalidEntry],
    now_ms: int,
) -> Written:
    """Publish `items` (one call per source) and write the dead letters `invalid`, part by part."""
    sources = list(items)
    parts = store.publish_parts([(s, items[s]) for s in sources], invalid, now_ms)
    written = Written(letters_waiting=set(parts.letters))
    by_index = {e.index: e.source for e in invalid}
    for index, exc in parts.letters.items():
        written.errors.setdefault(by_index[index], error_code(exc))
    narrow: list[str] = []
    for source, result in zip(sources, parts.calls, strict=True):
        if not isinstance(result, Exception):
            written.replies[source] = list(result)
        elif is_transient(result):
            written.replies[source] = [None] * len(items[source])
            written.errors.setdefault(source, error_code(result))
        else:
            narrow.append(source)
    if narrow:
        _one_unit_at_a_time(store, {s: items[s] for s in narrow}, now_ms, written)
    return written


def _units(batch: Sequence[PublishItem]) -> list[tuple[int, int]]:
    """(start, stop) of each unit: an event, or the contiguous members of an atomic batch."""
    units: list[tuple[int, int]] = []
    start = 0
    while start < len(batch):
        stop = start + 1
        batch_id = batch[start].atomic_batch
        while batch_id is not None and stop < len(batch) and batch[stop].atomic_batch == batch_id:
            stop += 1
        units.append((start, stop))
        start = stop
    return units


def _one_unit_at_a_time(
    store: Store, items: Mapping[str, Sequence[PublishItem]], now_ms: int, written: Written
) -> None:
    plan = [(s, a, b) for s, batch in items.items() for a, b in _units(batch)]
    parts = store.publish_parts([(s, items[s][a:b]) for s, a, b in plan], [], now_ms)
    for source, batch in items.items():
        written.replies[source] = [None] * len(batch)
    for (source, start, stop), result in zip(plan, parts.calls, strict=True):
        replies = written.replies[source]
        if not isinstance(result, Exception):
            replies[start:stop] = result
        elif is_transient(result):
            written.errors.setdefault(source, error_code(result))
        else:
            reason = f"the store refused it alone ({error_code(result)})"
            refusal = PublishReply("err", field=STORE_FIELD, reason=reason)
            replies[start:stop] = [refusal] * (stop - start)
            written.refused.setdefault(source, set()).update(range(start, stop))

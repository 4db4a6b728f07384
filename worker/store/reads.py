"""Plain reads of the worker's state (sources, events, bundles, counters) and the start check."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

from redis.exceptions import ResponseError

from worker.domain.events import join_stored
from worker.store import keys
from worker.store.base import StoreBase, to_int
from worker.store.codec import CONTENT_SEPARATOR, text
from worker.store.records import ReadEvent, SourceCounters

REQUIRED_POLICY: Final = "noeviction"
_EVENT_FIELDS: Final = (
    "st",
    "seq",
    "g",
    "ng",
    "aid",
    "bd",
    "task",
    "fate",
    "err",
    "reason",
    "bound",
    "att",
    "pub",
    "upd",
    "fin",
    "stage",
    "nm",
)


def read_events_from(rows: Any, contents: Any) -> list[ReadEvent]:
    """The events of a read.lua or events.lua reply: one JSON array of rows, and their stored
    contents joined by the record separator (`codec.CONTENT_SEPARATOR`)."""
    decoded = json.loads(text(rows))
    if not decoded:
        return []
    return [
        ReadEvent(
            event_id=eid,
            seq=int(seq),
            body=head,
            content=content,
            entity=entity,
            resources=tuple(resources.split()),
            group=group,
            no_merge=bool(no_merge),
            size=int(size),
        )
        for (eid, seq, head, no_merge, entity, resources, _batch, group, size), content in zip(
            decoded, text(contents).split(CONTENT_SEPARATOR), strict=True
        )
    ]


class EvictionPolicyError(RuntimeError):
    """Redis may evict keys: buffered events could vanish, so the worker refuses to start."""


class StoreReads(StoreBase):
    """Reads that change nothing (one round trip each)."""

    # -- start-up and discovery -----------------------------------------------------------------

    def check_noeviction(self) -> None:
        """Refuse to run unless Redis's `maxmemory-policy` is `noeviction` (invariant 8).

        Raises:
            EvictionPolicyError: another policy is set, or the server does not say which.
        """
        try:
            answer = self.client.config_get("maxmemory-policy")
        except ResponseError as exc:
            raise EvictionPolicyError(
                "cannot read Redis's maxmemory-policy (CONFIG GET refused: "
                f"{type(exc).__name__}); it must be noeviction"
            ) from None
        found = {text(k): text(v) for k, v in dict(answer).items()}.get("maxmemory-policy", "")
        if found != REQUIRED_POLICY:
            raise EvictionPolicyError(
                f"Redis maxmemory-policy is {found or 'unknown'!r}; it must be "
                f"{REQUIRED_POLICY!r}, or buffered events could be evicted"
            )

    def sources(self) -> list[str]:
        """Every source that has state, sorted."""
        return sorted(text(member) for member in self.client.smembers(keys.SOURCES))

    # -- reads ------------------------------------------------------------------------------------

    def event_bodies(self, source: str, event_ids: Sequence[str]) -> dict[str, str]:
        """The stored events' JSON (missing ones left out); one round trip."""
        names = keys.SourceKeys(source)
        pipe = self.client.pipeline(transaction=False)
        for event_id in event_ids:
            pipe.hmget(names.event(event_id), "h", "d")
        return {
            event_id: join_stored(text(head), text(content) or "{}")
            for event_id, (head, content) in zip(event_ids, pipe.execute(), strict=True)
            if head is not None
        }

    def read_events(
        self, source: str, event_ids: Sequence[str], *, in_flight_in: str | None = None
    ) -> list[ReadEvent]:
        """These events as a planning round reads them (data left as stored JSON), in seq order,
        missing ones left out: to plan again what a record sends again, or to rebuild a bundle
        from its layout. One call of events.lua.

        `in_flight_in`: leave out the events no longer in flight in that bundle. A record cut in
        calls (settle.lua) that a crash stopped leaves some events settled; recorded again after
        recovery, they must not be planned again."""
        if not event_ids:
            return []
        rows, contents = self._run(self._scripts.events, source, in_flight_in or "", *event_ids)
        events = read_events_from(rows, contents)
        events.sort(key=lambda e: e.seq)
        return events

    def event_attempts(self, source: str, event_ids: Sequence[str]) -> dict[str, int]:
        """How many times each of these events was submitted so far (0 when unknown)."""
        values = self._event_field(source, "att", event_ids)
        return {eid: to_int(v) for eid, v in zip(event_ids, values, strict=True)}

    def resent_events(self, source: str, event_ids: Sequence[str]) -> frozenset[str]:
        """Which of these events were sent again after a read-back (flag `amb`)."""
        values = self._event_field(source, "amb", event_ids)
        return frozenset(eid for eid, v in zip(event_ids, values, strict=True) if to_int(v) == 1)

    def _event_field(self, source: str, field: str, event_ids: Sequence[str]) -> list[Any]:
        """One field of each of these events, in order (None where missing); one call."""
        if not event_ids:
            return []
        return list(self._run(self._scripts.field, source, field, *event_ids))

    def find_event(self, event_id: str, sources: Sequence[str]) -> tuple[str, dict[str, str]]:
        """The first source holding `event_id` and its stored fields (no body); one round trip.

        Returns:
            (source, fields), or ("", {}) when no source holds it.
        """
        pipe = self.client.pipeline(transaction=False)
        for source in sources:
            pipe.hmget(keys.SourceKeys(source).event(event_id), *_EVENT_FIELDS)
        for source, values in zip(sources, pipe.execute(), strict=True):
            if values[0] is not None:
                fields = {
                    name: text(value)
                    for name, value in zip(_EVENT_FIELDS, values, strict=True)
                    if value is not None
                }
                return source, fields
        return "", {}

    def bundle_fields(self, source: str, bundle_id: str, *names: str) -> dict[str, str]:
        """Some fields of a bundle record (empty when it is gone)."""
        values = self.client.hmget(keys.SourceKeys(source).bundle(bundle_id), list(names))
        return {n: text(v) for n, v in zip(names, values, strict=True) if v is not None}

    def counters(self, sources: Sequence[str], now_ms: int) -> dict[str, SourceCounters]:
        """Each source's counters and due polls; one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for source in sources:
            names = keys.SourceKeys(source)
            pipe.hmget(
                names.stats, "buffered", "inflight", "bundles", "stale", "parked", "pev", "blocked"
            )
            pipe.zcount(names.polls, "-inf", now_ms)
        answers = pipe.execute()
        counters = {}
        for index, source in enumerate(sources):
            buffered, inflight, bundles, stale, parked, pev, blocked = answers[2 * index]
            parked_events = max(0, to_int(pev))  # a bundle parked before pev was kept: 0
            counters[source] = SourceCounters(
                buffered=to_int(buffered),
                in_flight=max(0, to_int(inflight) - parked_events),
                parked_events=parked_events,
                blocked=max(0, to_int(blocked)),
                bundles=to_int(bundles),
                stale=to_int(stale),
                parked=to_int(parked),
                due_polls=int(answers[2 * index + 1]),
            )
        return counters

    def set_backlog(self, total: int, ttl_ms: int) -> None:
        """Publish the autoscaling signal with a short TTL (a dead ticker's value fades)."""
        self.client.set(keys.BACKLOG, total, px=ttl_ms)

"""`Store`: the Redis side of the pipeline, as Python calls; no business rules live here.

Each method is one round trip (a script, a read, or a pipeline of them), so the pipeline's cost in
Redis round trips is visible at the call site. The rules are in the scripts (atomic steps, see
their headers) and in the pure core; this module only moves values in and out. `Store` gathers
the publish side (`publishing.py`), the reads (`reads.py`), records (`recording.py`) and, here,
planning rounds, claims and the ticker's step.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal, cast

from worker.store.base import to_int
from worker.store.codec import compact, json_list, text
from worker.store.publishing import InvalidEntry, StorePublish
from worker.store.reads import EvictionPolicyError, StoreReads, read_events_from
from worker.store.recording import StoreRecording, bundle_argument
from worker.store.records import (
    BlockedEvent,
    BundleToCommit,
    ClaimedRecord,
    CommitStatus,
    DueTaken,
    ReadEvent,
    ReadRound,
    RejectedEvent,
)
from worker.store.refusals import decode_foresight_counts
from worker.store.sizing import StoreSizing, decode_sizing

__all__ = ["EvictionPolicyError", "InvalidEntry", "Store"]

_CLAIM_ROW: Final = 15


class Store(StorePublish, StoreReads, StoreRecording, StoreSizing):
    """Python wrappers over the Lua scripts and plain reads of the worker's Redis state.

    Args:
        client: a redis-py client (responses decoded or not); it connects on first use.
        settings: TTLs, caps and durations the scripts are given.
    """

    # -- planning -------------------------------------------------------------------------------

    def read_ready(
        self,
        source: str,
        *,
        token: str,
        lease_ms: int,
        limit: int,
        max_bytes: int,
        chunk: int | None = None,
    ) -> ReadRound:
        """Take the source's planning lease and read the head of its ready log (read.lua), in
        calls of at most `chunk` events (the settings' `flush_chunk` unless given).

        Returns:
            The events (seq order), or `busy` when another planner holds the lease.
        """
        arguments: dict[str, Any] = {"token": token, "lease": lease_ms, "limit": limit,
                                     "max_bytes": max_bytes,
                                     "chunk": chunk or self.settings.flush_chunk,
                                     "foresee": self.settings.foresight}  # fmt: skip
        meta, events = self._read_call(source, arguments)
        if meta.get("busy"):
            return ReadRound(busy=True)
        slow = dict(meta.get("slow") or {})
        after_delete = set(meta.get("after_delete") or ())
        virtual = dict(meta.get("virtual") or {})
        held_keys = dict(meta.get("held") or {})
        known = dict(meta.get("known") or {})
        read_bytes = sum(e.size for e in events)
        while meta.get("chunk") and events:
            arguments.update(after=events[-1].seq, read=len(events), bulk=int(bool(meta["bulk"])),
                             bytes=read_bytes)  # fmt: skip
            more, read = self._read_call(source, arguments)
            read_bytes += sum(e.size for e in read)
            if more.get("busy"):  # the lease expired meanwhile: commit.lua will find it lost
                break
            events += read
            meta.update(more=more.get("more"), chunk=more.get("chunk"))
            slow.update(more.get("slow") or {})
            after_delete.update(more.get("after_delete") or ())
            virtual.update(more.get("virtual") or {})
            held_keys.update(more.get("held") or {})
            known.update(more.get("known") or {})
        return ReadRound(
            events=tuple(events),
            token=token,
            epoch=int(meta.get("epoch") or 0),
            bulk=bool(meta.get("bulk")),
            more=bool(meta.get("more")),
            seq=int(meta.get("seq") or 0),
            sizing=decode_sizing(meta.get("shrink") or None),
            slow=slow,
            after_delete=frozenset(after_delete),
            virtual={
                key: tuple((str(bid), int(first)) for bid, first in held)
                for key, held in virtual.items()
            },
            held=held_keys,
            known=known,
            foresight_counts=decode_foresight_counts(meta.get("fc")),
            names_every_failure=(meta.get("fc") or [None] * 5)[4:5] == ["1"],
        )

    def _read_call(
        self, source: str, arguments: Mapping[str, Any]
    ) -> tuple[dict[str, Any], list[ReadEvent]]:
        """One call of read.lua: its meta and the events it read."""
        reply = self._run(self._scripts.read, source, compact(arguments))
        meta: dict[str, Any] = json.loads(text(reply[0]))
        if meta.get("busy"):
            return meta, []
        events = read_events_from(reply[1], reply[2])
        return meta, events

    def commit(
        self,
        source: str,
        round_: ReadRound,
        *,
        bundles: Sequence[BundleToCommit],
        rejected: Sequence[RejectedEvent],
        now_ms: int,
        blocked: Sequence[BlockedEvent] = (),
    ) -> dict[str, tuple[CommitStatus, int]] | None:
        """Write a planning round's bundles into the scheduler and release the lease (commit.lua),
        in calls of whole bundles of at most `flush_chunk` events in all (a larger bundle alone);
        rejections, blocked events and the lease's release go with the last call.

        Returns:
            bundle id -> (status, fence); None when the lease was lost before anything was
            written. A lease lost after a call leaves the later bundles `aborted` (their events
            stay in the ready log).
        """
        settings = self.settings
        meta: dict[str, Any] = {
            "token": round_.token,
            "epoch": round_.epoch,
            "more": round_.more,
            "now": now_ms,
            "claim_ttl": settings.claim_ttl_ms,
            "ttl": settings.results_ttl_s,
            "linger": settings.linger_ms,
            "max_age": settings.max_age_ms,
        }
        calls = _in_calls(bundles, settings.flush_chunk)
        statuses: dict[str, tuple[CommitStatus, int]] = {}
        aborted: list[str] = []
        for index, part in enumerate(calls):
            last = index == len(calls) - 1
            meta.update(bundles=[bundle_argument(b) for b in part], aborted=aborted, final=last)
            if last:
                meta["rejects"] = [{"e": r.event_id, "err": r.error} for r in rejected]
                meta["blocked"] = [{"e": b.event_id, "bid": b.bundle_id} for b in blocked]
            reply = self._run(self._scripts.commit, source, compact(meta))
            if not isinstance(reply, list):
                if index == 0:
                    return None
                statuses.update((b.bundle_id, ("aborted", 0)) for c in calls[index:] for b in c)
                break
            values = [text(v) for v in reply]
            for i in range(0, len(values), 3):
                status = cast(CommitStatus, values[i + 1])
                statuses[values[i]] = (status, int(values[i + 2]))
                if status == "aborted":
                    aborted.append(values[i])
        return statuses

    # -- claims and state changes ---------------------------------------------------------------

    def claim(
        self,
        source: str,
        bundle_ids: Sequence[str],
        now_ms: int,
        mode: Literal["recover", "poll"],
        *,
        due_only: bool = True,
    ) -> list[ClaimedRecord]:
        """Claim records to recover them or to poll their task (claim.lua), one round trip.

        With `due_only` (always, but for an operator's abandon), a record whose entry in the
        mode's schedule is not due is left alone (code `early`).
        """
        if not bundle_ids:
            return []
        meta = {
            "now": now_ms,
            "claim_ttl": self.settings.claim_ttl_ms,
            "mode": mode,
            "ids": list(bundle_ids),
            "any_time": None if due_only else 1,
        }
        rows = [text(v) for v in self._run(self._scripts.claim, source, compact(meta))]
        claimed = []
        for i in range(0, len(rows), _CLAIM_ROW):
            row = rows[i : i + _CLAIM_ROW]
            claimed.append(
                ClaimedRecord(
                    code=row[0],  # type: ignore[arg-type]
                    bundle_id=row[1],
                    fence=int(row[2]) if row[2] else None,
                    state=row[3],
                    task_id=row[4],
                    issued_by=row[5],
                    sent_at=to_int(row[6]),
                    polls=to_int(row[7]),
                    stale=row[8] == "1",
                    layout=row[9],
                    event_ids=tuple(json_list(row[10])),
                    attempts=to_int(row[11]),
                    sending_at=to_int(row[12]),
                    recoveries=to_int(row[13]),
                    trimmed=row[14] == "1",
                )
            )
        return claimed

    def mark(self, source: str, items: Sequence[Mapping[str, Any]], now_ms: int) -> list[bool]:
        """Fenced state changes (mark.lua), one round trip for all items; True where done."""
        return [code == 1 for code in self._mark_codes(source, items, now_ms)]

    def _mark_codes(
        self, source: str, items: Sequence[Mapping[str, Any]], now_ms: int
    ) -> list[int]:
        """mark.lua's answer per item: 1 done, 0 refused, 2 held by a pause (a gated sending)."""
        if not items:
            return []
        meta = {"now": now_ms, "claim_ttl": self.settings.claim_ttl_ms, "items": list(items)}
        return [to_int(v) for v in self._run(self._scripts.mark, source, compact(meta))]

    def mark_sending(
        self, source: str, bundle_id: str, fence: int, now_ms: int, *, gate: bool = False
    ) -> bool | None:
        """planned -> sending, just before the request leaves; False when the claim was lost.

        With `gate`, only while the source has no pause (the common case, one round trip): None
        when it has one, and nothing changed (pause.lua's gate then says wait or probe)."""
        item = {"op": "sending", "id": bundle_id, "fence": fence, "gate": 1 if gate else None}
        (code,) = self._mark_codes(source, [item], now_ms)
        return None if code == 2 else code == 1

    def mark_sent(
        self,
        source: str,
        bundle_id: str,
        fence: int,
        *,
        task_id: str,
        issued_by: str,
        first_poll_ms: int,
        now_ms: int,
    ) -> bool:
        """sending -> sent: ACCEPTED as `task_id`; the first poll is at `first_poll_ms`."""
        item = {
            "op": "sent",
            "id": bundle_id,
            "fence": fence,
            "task": task_id,
            "iss": issued_by,
            "at": first_poll_ms,
        }
        return self.mark(source, [item], now_ms)[0]

    def release(
        self, source: str, bundle_id: str, fence: int, *, retry_at_ms: int, error: str, now_ms: int
    ) -> bool:
        """Back to planned (certainly not processed), to be submitted again at `retry_at_ms`."""
        item = {
            "op": "release",
            "id": bundle_id,
            "fence": fence,
            "at": retry_at_ms,
            "err": error,
        }
        return self.mark(source, [item], now_ms)[0]

    def release_claims(
        self, source: str, claims: Sequence[tuple[str, int]], now_ms: int
    ) -> list[bool]:
        """Give claimed bundles back unsent (`release`, due now, no error), one round trip for
        all: any worker may take them at once."""
        items = [
            {"op": "release", "id": bundle_id, "fence": fence, "at": now_ms, "err": ""}
            for bundle_id, fence in claims
        ]
        return self.mark(source, items, now_ms)

    def mark_unknown(
        self, source: str, bundle_id: str, fence: int, *, read_at_ms: int, error: str, now_ms: int
    ) -> bool:
        """Outcome unknown: stays `sending`, locks held, read back at `read_at_ms`."""
        item = {"op": "unknown", "id": bundle_id, "fence": fence, "at": read_at_ms, "err": error}
        return self.mark(source, [item], now_ms)[0]

    def park(self, source: str, bundle_id: str, fence: int, *, error: str, now_ms: int) -> bool:
        """Out of every schedule, locks kept, for the failure handling (counted in the backlog)."""
        item = {"op": "park", "id": bundle_id, "fence": fence, "err": error}
        return self.mark(source, [item], now_ms)[0]

    def renew(self, source: str, claims: Sequence[tuple[str, int]], now_ms: int) -> list[bool]:
        """Extend claims by the claim TTL; one round trip for all."""
        items = [{"op": "renew", "id": bundle_id, "fence": fence} for bundle_id, fence in claims]
        return self.mark(source, items, now_ms)

    # -- the ticker's step -------------------------------------------------------------------------

    def take_due(
        self, sources: Sequence[str], now_ms: int, *, groups: int, polls: int, claims: int
    ) -> dict[str, DueTaken]:
        """Due groups, due polls and expired claims of every source, each re-scored to now +
        the lease (doubled for each hand-out in a row nobody handled, up to the cap); one round
        trip for all sources."""
        meta = compact(
            {
                "now": now_ms,
                "lease": self.settings.due_lease_ms,
                "lease_cap": self.settings.due_lease_cap_ms,
                "due": groups,
                "polls": polls,
                "claims": claims,
            }
        )
        replies = self._run_many([(self._scripts.take_due, s, [meta]) for s in sources])
        taken = {}
        for source, reply in zip(sources, replies, strict=True):
            data = json.loads(text(reply[0]))
            taken[source] = DueTaken(
                groups=tuple(data.get("due") or ()),
                polls=tuple(data.get("polls") or ()),
                claims=tuple(data.get("claims") or ()),
            )
        return taken


def _in_calls(
    bundles: Sequence[BundleToCommit], events_per_call: int
) -> list[Sequence[BundleToCommit]]:
    """Whole bundles in plan order, cut into calls of at most `events_per_call` events (a larger
    bundle alone); one call, maybe empty, when there are none."""
    calls: list[Sequence[BundleToCommit]] = []
    start, events = 0, 0
    for index, bundle in enumerate(bundles):
        if index > start and events + len(bundle.event_ids) > events_per_call:
            calls.append(bundles[start:index])
            start, events = index, 0
        events += len(bundle.event_ids)
    calls.append(bundles[start:])
    return calls

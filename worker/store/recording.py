"""Recording a bundle's outcome in calls of bounded size (settle.lua, record.lua, release.lua).

Recording a bundle of 500 operations in one script call held Redis for tens of ms (every event
settled, a dead letter per failure, a thousand holds released). A record is now cut:

1. settle.lua settles the final outcomes (APPLIED, COALESCED, FAILED) `record_chunk` events per
   call, a dead letter counting as `_LETTER_WEIGHT` events (it copies the event into the stream);
2. record.lua, the last call, settles the last final outcomes, sends the other events again
   (their replacements take the bundle's place, or the ready log), releases the followers and
   makes the record `recorded`, as one atomic step;
3. release.lua releases the holds of a bundle with more keys than one call should release
   (`_KEYS_PER_EVENT` per event of `record_chunk`), a slice per call, after its record (a
   recorded holder delays nothing meanwhile).

A call refused (the claim lost) stops the record. Each call is final: an event settled by a call
is no longer in flight in the bundle, so a record done again after a crash (recovery's new claim)
neither counts nor dead-letters it again, nor sends it again (`read_events(in_flight_in=...)`);
the counters that record.lua answers include what earlier calls settled (the record's `sf`, `sl`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from redis.exceptions import RedisError

from worker.domain.refusals import RefusalState
from worker.store.base import StoreBase, to_int
from worker.store.codec import compact, text
from worker.store.records import BundleToCommit, EventOutcomeRecord, RecordResult
from worker.store.refusals import state_from_reply

__all__ = ["StoreRecording", "bundle_argument", "record_calls"]

_FINAL_FATES: Final = frozenset({"APPLIED", "COALESCED", "FAILED"})
_LETTER_WEIGHT: Final = 3
"""What a FAILED outcome costs a call, in events settled: it also writes a dead letter, a copy of
the event (measured: about three times an APPLIED one, small events)."""
_KEYS_PER_EVENT: Final = 2
"""Held keys released per call for each event a call settles: releasing a key costs about half
of settling an event (measured, 500-operation bundles)."""


class StoreRecording(StoreBase):
    """`record`: a bundle's outcome, once, in calls of bounded size."""

    def record(
        self,
        source: str,
        bundle_id: str,
        fence: int,
        outcomes: Sequence[EventOutcomeRecord],
        *,
        status: str,
        now_ms: int,
        replan: Sequence[BundleToCommit] = (),
        fold: Sequence[str] | None = None,
    ) -> RecordResult:
        """Record a bundle's outcome once; refused with another fence (see the module).

        Args:
            replan: the events it sends back, planned again (`planning.plan_events`): these
                bundles take its place, ahead of every bundle that waited for it.
            fold: refusals.lua's arguments for this answer (`store.refusals.fold_arguments`),
                run just before record.lua in the same round trip.
        """
        per_call = self.settings.record_chunk
        meta: dict[str, Any] = {
            "id": bundle_id,
            "fence": fence,
            "now": now_ms,
            "ttl": self.settings.results_ttl_s,
        }
        first, last = record_calls(outcomes, per_call)
        settled: list[str] = []
        for part in first:
            meta["outcomes"] = [_outcome_argument(o) for o in part]
            if not isinstance(self._run(self._scripts.settle, source, compact(meta)), list):
                return RecordResult(done=False)
            settled.extend(o.event_id for o in part)
        meta.update(
            status=status,
            outcomes=[_outcome_argument(o) for o in last],
            settled=settled or None,
            replan=[bundle_argument(b) for b in replan],
            keys=per_call * _KEYS_PER_EVENT,
        )
        if fold is None:
            reply = self._run(self._scripts.record, source, compact(meta))
        else:
            calls = [(self._scripts.refusals, source, fold),
                     (self._scripts.record, source, [compact(meta)])]  # fmt: skip
            reply = self._run_many(calls)[1]
        if not isinstance(reply, list):
            return RecordResult(done=False)
        if to_int(reply[0]) == 2:
            self._release_holds(source, bundle_id, fence, per_call * _KEYS_PER_EVENT)
        ready = tuple(text(v) for v in reply[5:])
        return RecordResult(
            True, to_int(reply[1]), to_int(reply[2]), to_int(reply[3]), ready, to_int(reply[4])
        )

    def fold_refusals(self, source: str, fold: Sequence[str]) -> RefusalState:
        """Fold one answer into the source's refusal rate and foresight now (refusals.lua), when
        what it sends again depends on the state after it; else `record` runs it."""
        return state_from_reply(self._run(self._scripts.refusals, source, *fold))

    def _release_holds(self, source: str, bundle_id: str, fence: int, per_call: int) -> None:
        """The holds of a recorded bundle, `per_call` keys per call (release.lua).

        A Redis error stops the release and is not raised: the record is done, and the holds
        left over delay nothing (a recorded holder counts as gone), whereas raising would hide
        from the caller the bundles the record made ready. The next call to Redis meets the
        trouble anyway."""
        meta: dict[str, Any] = {"id": bundle_id, "fence": fence, "n": per_call}
        start = 1
        while True:
            meta["from"] = start
            try:
                reply = self._run(self._scripts.release, source, compact(meta))
            except RedisError:
                return
            if not isinstance(reply, list) or to_int(reply[1]) == 1:
                return
            start += per_call


def record_calls(
    outcomes: Sequence[EventOutcomeRecord], per_call: int
) -> tuple[list[list[EventOutcomeRecord]], list[EventOutcomeRecord]]:
    """A record's outcomes cut in calls: final ones for settle.lua, at most `per_call` weighted
    events per call (a FAILED one weighs `_LETTER_WEIGHT`, a call holds at least one), and what
    record.lua takes: every outcome that is not final (it cannot be cut: see the module), and the
    last final ones, as many as fit beside them. The final ones keep their order, so dead letters
    do too; a record that fits in one call makes one call, as before."""
    finals = [o for o in outcomes if o.fate in _FINAL_FATES]
    others = [o for o in outcomes if o.fate not in _FINAL_FATES]
    room, kept = per_call - len(others), 0
    while kept < len(finals) and _weight(finals[-1 - kept]) <= room:
        room -= _weight(finals[-1 - kept])
        kept += 1
    calls: list[list[EventOutcomeRecord]] = []
    load = 0
    for outcome in finals[: len(finals) - kept]:
        if not calls or load + _weight(outcome) > per_call:
            calls.append([])
            load = 0
        calls[-1].append(outcome)
        load += _weight(outcome)
    return calls, finals[len(finals) - kept :] + others


def _weight(outcome: EventOutcomeRecord) -> int:
    return _LETTER_WEIGHT if outcome.fate == "FAILED" else 1


def _outcome_argument(outcome: EventOutcomeRecord) -> dict[str, Any]:
    """One event's outcome as settle.lua and record.lua take it."""
    return {
        "e": outcome.event_id,
        "f": outcome.fate,
        "err": outcome.error,
        "r": outcome.reason,
        "bt": outcome.bound_to,
        "rs": 1 if outcome.resent else None,
    }


def bundle_argument(bundle: BundleToCommit) -> dict[str, Any]:
    """A planned bundle as commit.lua and record.lua take it."""
    return {
        "id": bundle.bundle_id,
        "ev": list(bundle.event_ids),
        "bytes": bundle.size,
        "acts": dict(bundle.actions) or None,
        "x": list(bundle.writes),
        "s": list(bundle.reads),
        "pre": list(bundle.after),
        "layout": bundle.layout,
        "groups": list(bundle.groups),
        "claim": 1 if bundle.claim else 0,
    }

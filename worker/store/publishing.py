"""The publish side of `Store`: what is known of a call's ids and refs, and publish.lua."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import redis
from redis.exceptions import NoScriptError

from worker.store import keys
from worker.store.base import StoreBase
from worker.store.codec import compact, text
from worker.store.records import PublishItem, PublishReply

if TYPE_CHECKING:
    from redis.commands.core import Script

    from worker.settings import IngestSettings


class InvalidEntry:
    """A publish refusal found before any script ran: where to dead-letter it and why."""

    __slots__ = ("error", "event_id", "index", "mark", "payload", "source")

    def __init__(
        self,
        source: str,
        index: int,
        event_id: str | None,
        error: str,
        payload: str,
        *,
        mark: bool = True,
    ) -> None:
        self.source = source
        self.index = index
        self.event_id = event_id
        self.error = error
        self.payload = payload
        self.mark = mark
        """Whether the event's hash records the refusal too (its status then tells why)."""


class StorePublish(StoreBase):
    """Publishing: one pipelined read, then one pipeline of scripts and dead letters."""

    # -- publish --------------------------------------------------------------------------------

    def read_known(
        self, source: str, event_ids: Iterable[str], refs: Iterable[str]
    ) -> tuple[dict[str, str], dict[str, str]]:
        """Ids first assigned to these event ids, and the live refs among these; one round trip.

        Returns:
            (event id -> assigned id, for events that had one), (ref -> id, for live refs).
        """
        names = keys.SourceKeys(source)
        event_list, ref_list = list(dict.fromkeys(event_ids)), list(dict.fromkeys(refs))
        pipe = self.client.pipeline(transaction=False)
        for event_id in event_list:
            pipe.hmget(names.event(event_id), "aid", "st", "stage")
        for ref in ref_list:
            pipe.get(names.ref(ref))
        answers = pipe.execute()
        assigned: dict[str, str] = {}
        for event_id, (aid, status, stage) in zip(
            event_list, answers[: len(event_list)], strict=True
        ):
            refused_at_publish = text(status) == "dead_lettered" and text(stage) == "publish"
            if aid is not None and not refused_at_publish:
                assigned[event_id] = text(aid)
        live = {
            ref: text(value)
            for ref, value in zip(ref_list, answers[len(event_list) :], strict=True)
            if value is not None
        }
        return assigned, live

    def publish(
        self,
        items: Mapping[str, Sequence[PublishItem]],
        invalid: Sequence[InvalidEntry],
        now_ms: int,
    ) -> dict[str, list[PublishReply]]:
        """Append each source's events (one script call per source) and dead-letter the invalid.

        Everything goes in one pipelined round trip; the dead letters are written before this
        returns. Per source, the replies are in the order of its items.

        Raises:
            redis.RedisError: the first error Redis answered (what it did not refuse is written;
                `publish_parts` says which part went in).
        """
        sources = list(items)
        parts = self.publish_parts([(s, items[s]) for s in sources], invalid, now_ms)
        failures = [r for r in parts.calls if isinstance(r, Exception)]
        failures += list(parts.letters.values())
        if failures:
            raise failures[0]
        return {
            source: reply
            for source, reply in zip(sources, parts.calls, strict=True)
            if not isinstance(reply, Exception)
        }

    def publish_parts(
        self,
        calls: Sequence[tuple[str, Sequence[PublishItem]]],
        invalid: Sequence[InvalidEntry],
        now_ms: int,
    ) -> PublishParts:
        """`publish`, answering per part instead of raising: one round trip, every command run.

        A part is one publish.lua call (`calls`: a source and its items; a source may appear
        more than once) or one dead letter (`invalid`, by entry index). A part fails when one of
        its commands failed: its own, its source's registration in `ingest:sources`, or the
        status mark of refused events (`refused.lua`, for entries with `mark`).
        """
        settings = self.settings
        pipe = self.client.pipeline(transaction=False)
        owners: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
        scripted: dict[int, tuple[Script, str, Sequence[str]]] = {}
        named = [e for e in invalid if e.source != keys.INVALID_SOURCE]
        for source in dict.fromkeys([*(s for s, _ in calls), *(e.source for e in named)]):
            pipe.sadd(keys.SOURCES, source)
            owners.append(
                (
                    tuple(i for i, (s, _) in enumerate(calls) if s == source),
                    tuple(e.index for e in named if e.source == source),
                )
            )
        for entry in invalid:
            pipe.xadd(keys.SourceKeys(entry.source).dlq, _letter_fields(entry, now_ms))  # type: ignore[arg-type]
            owners.append(((), (entry.index,)))
        positions = []
        for index, (source, batch) in enumerate(calls):
            args = publish_args(settings, source, batch, now_ms)
            positions.append(len(owners))
            scripted[len(owners)] = (self._scripts.publish, source, args)
            owners.append(((index,), ()))
        refused: dict[str, list[InvalidEntry]] = {}
        for entry in named:
            if entry.event_id is not None and entry.mark:
                refused.setdefault(entry.source, []).append(entry)
        for source, entries in refused.items():
            events = [{"e": e.event_id, "err": e.error} for e in entries]
            meta = {"now": now_ms, "ttl": settings.results_ttl_s, "events": events}
            scripted[len(owners)] = (self._scripts.refused, source, [compact(meta)])
            owners.append(((), tuple(e.index for e in entries)))
        for script, source, argv in scripted.values():
            pipe.evalsha(script.sha, 1, keys.prefix(source), *argv)
        # the pipeline holds the plain commands first, then the script calls in `scripted` order
        order = [i for i in range(len(owners)) if i not in scripted] + list(scripted)
        results: list[Any] = [None] * len(owners)
        for position, answer in zip(order, pipe.execute(raise_on_error=False), strict=True):
            if isinstance(answer, NoScriptError):  # not loaded yet: it did nothing, run it alone
                script, source, argv = scripted[position]
                try:
                    answer = script(keys=[keys.prefix(source)], args=list(argv))
                except redis.RedisError as exc:
                    answer = exc
            results[position] = answer
        return _parts(results, owners, positions)


class PublishParts:
    """What `publish_parts` did per part: each call's replies or its error, and the dead
    letters that failed (entry index -> error)."""

    __slots__ = ("calls", "letters")

    def __init__(
        self, calls: list[list[PublishReply] | Exception], letters: dict[int, Exception]
    ) -> None:
        self.calls = calls
        self.letters = letters


def _parts(
    results: Sequence[Any],
    owners: Sequence[tuple[tuple[int, ...], tuple[int, ...]]],
    positions: Sequence[int],
) -> PublishParts:
    failed: dict[int, Exception] = {}
    letters: dict[int, Exception] = {}
    for result, (call_ids, letter_ids) in zip(results, owners, strict=True):
        if isinstance(result, Exception):
            for index in call_ids:
                failed.setdefault(index, result)
            for index in letter_ids:
                letters.setdefault(index, result)
    calls: list[list[PublishReply] | Exception] = [
        failed[index] if index in failed else _publish_replies(results[position])
        for index, position in enumerate(positions)
    ]
    return PublishParts(calls, letters)


def _letter_fields(entry: InvalidEntry, now_ms: int) -> dict[str, str]:
    fields = {
        "stage": "publish",
        "error": entry.error,
        "event": entry.payload,
        "failedAt": str(now_ms),
        "index": str(entry.index),
        "sourceKey": entry.source,
    }
    if entry.event_id is not None:
        fields["eventId"] = entry.event_id
    return fields


def publish_args(
    settings: IngestSettings, source: str, batch: Sequence[PublishItem], now_ms: int
) -> list[str]:
    """publish.lua's ARGV for one source: its settings and items, then each event's two stored
    parts (head, content)."""
    meta = {
        "source": source,
        "now": now_ms,
        "ttl": settings.results_ttl_s,
        "linger": settings.linger_ms,
        "max_age": settings.max_age_ms,
        "max_ops": settings.max_bundle_ops,
        "max_bytes": settings.max_bundle_bytes,
        "events": [_publish_item(item) for item in batch],
    }
    return [compact(meta), *(part for item in batch for part in (item.head, item.content))]


def _publish_item(item: PublishItem) -> dict[str, Any]:
    return {
        "e": item.event_id,
        "k": item.entity,
        "tr": list(item.resources),
        "g": item.group,
        "b": item.size,
        "bk": 1 if item.bulk else None,
        "aid": item.assigned_id,
        "ab": item.atomic_batch,
        "rdn": item.ref_defined[0] if item.ref_defined else None,
        "rd": {item.ref_defined[0]: item.ref_defined[1]} if item.ref_defined else None,
        "ru": dict(item.refs_used) or None,
    }


def _publish_replies(reply: Sequence[Any]) -> list[PublishReply]:
    values = [text(v) for v in reply]
    replies = []
    for i in range(0, len(values), 3):
        kind, first, second = values[i : i + 3]
        if kind == "ok":
            replies.append(PublishReply("ok", group=first, seq=int(second)))
        elif kind == "dup":
            replies.append(PublishReply("dup", assigned_id=first, status=second))
        else:
            replies.append(PublishReply("err", field=first, reason=second))
    return replies

"""The publish side of `Store`: what is known of a call's ids and refs, and publish.lua."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from worker.store import keys
from worker.store.base import StoreBase
from worker.store.codec import compact, text
from worker.store.records import PublishItem, PublishReply

if TYPE_CHECKING:
    from redis.client import Pipeline
    from redis.commands.core import Script

    from worker.settings import IngestSettings


class InvalidEntry:
    """A publish refusal found before any script ran: where to dead-letter it and why."""

    __slots__ = ("error", "event_id", "index", "payload", "source")

    def __init__(
        self, source: str, index: int, event_id: str | None, error: str, payload: str
    ) -> None:
        self.source = source
        self.index = index
        self.event_id = event_id
        self.error = error
        self.payload = payload


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
        """
        settings = self.settings

        def prelude(pipe: Pipeline) -> None:
            for source in {*items, *(e.source for e in invalid if e.source != keys.INVALID_SOURCE)}:
                pipe.sadd(keys.SOURCES, source)
            for entry in invalid:
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
                pipe.xadd(keys.SourceKeys(entry.source).dlq, fields)  # type: ignore[arg-type]

        calls: list[tuple[Script, str, Sequence[str]]] = [
            (self._scripts.publish, source, publish_args(settings, source, batch, now_ms))
            for source, batch in items.items()
        ]
        refused: dict[str, list[dict[str, str]]] = {}
        for entry in invalid:
            if entry.event_id is not None and entry.source != keys.INVALID_SOURCE:
                refused.setdefault(entry.source, []).append(
                    {"e": entry.event_id, "err": entry.error}
                )
        for source, events in refused.items():
            meta = {"now": now_ms, "ttl": settings.results_ttl_s, "events": events}
            calls.append((self._scripts.refused, source, [compact(meta)]))
        replies = self._run_many(calls, prelude)
        return {
            source: _publish_replies(reply)
            for source, reply in zip(items, replies[: len(items)], strict=True)
        }


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

"""Publishing that reopens dead-lettered events: a DLQ replay through the normal publish path.

Per source, one MULTI holds reopen.lua (only a dead-lettered event is let through), publish.lua
(validation already done by the publisher; refs, placement and dedupe as for any event) and
reopened.lua (the event keeps its attempts), so an applied or pending event is never reopened and
nothing can slip between the check and the publish (invariant 8).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from worker.store import keys
from worker.store.codec import compact, text
from worker.store.publishing import InvalidEntry, _publish_replies, publish_args
from worker.store.records import PublishItem, PublishReply
from worker.store.scripts import script_source

if TYPE_CHECKING:
    import redis
    from redis.commands.core import Script

    from worker.store import Store

__all__ = ["publish_reopening"]


def _scripts(client: redis.Redis) -> tuple[Script, Script, Script]:
    """reopen, publish and reopened on `client` (registering only hashes the text locally)."""
    return (
        client.register_script(script_source("reopen")),
        client.register_script(script_source("publish")),
        client.register_script(script_source("reopened")),
    )


def publish_reopening(
    store: Store,
    items: Mapping[str, Sequence[PublishItem]],
    invalid: Sequence[InvalidEntry],
    now_ms: int,
) -> dict[str, list[PublishReply]]:
    """`Store.publish`, but an event that is dead-lettered under its id is reopened, not a
    duplicate; one transaction per source. Same replies as `Store.publish`."""
    replies: dict[str, list[PublishReply]] = {}
    if invalid:
        store.publish({}, invalid, now_ms)  # the dead letters of events refused before Redis
    reopen, publish, reopened = _scripts(store.client)
    settings = store.settings
    for source, batch in items.items():
        if not batch:
            continue
        ids = compact({"ids": [i.event_id for i in batch], "now": now_ms})
        prefix = [keys.prefix(source)]
        store.client.sadd(keys.SOURCES, source)  # another slot: outside the transaction
        pipe = store.client.pipeline(transaction=True)
        reopen(keys=prefix, args=[ids], client=pipe)
        publish(keys=prefix, args=publish_args(settings, source, batch, now_ms), client=pipe)
        reopened(keys=prefix, args=[ids], client=pipe)
        answers = pipe.execute()
        replies[source] = _publish_replies([text(v) for v in answers[1]])
    return replies

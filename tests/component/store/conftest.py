"""The store and its Lua scripts against the private redis-server (`redis_url`, flushed per test).

Helpers build resolved events and the items publish.lua takes, and commit bundles through a
planning round (`read_ready` then `commit`), so each test reads as the script's contract: what goes
in, what the keys hold afterwards.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import pytest
import redis
from pydantic import SecretStr

from worker.domain.events import ChangeEvent
from worker.domain.grouping import named_group
from worker.domain.keys import key_of, resources_touched
from worker.settings import IngestSettings
from worker.store import Store
from worker.store.keys import SourceKeys
from worker.store.records import BundleToCommit, CommitStatus, PublishItem, RejectedEvent

SOURCE = "src-a"
NOW = 1_700_000_000_000
"""A fixed 'now' in ms: every script takes the time as an argument."""

_ids = itertools.count(1)


def fast_settings(**overrides: Any) -> IngestSettings:
    values: dict[str, Any] = {
        "api_key": SecretStr("component-key"),
        "linger_ms": 100,
        "max_age_ms": 1000,
        "claim_ttl_ms": 3000,
        "http_deadline_s": 2,
        "max_bundle_ops": 5,
        "max_bundle_bytes": 100_000,
        "results_ttl_s": 3600,
        "due_lease_ms": 500,
    }
    values.update(overrides)
    return IngestSettings(**values)


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url, decode_responses=True)
    yield connection
    connection.close()


@pytest.fixture
def store(client: redis.Redis) -> Store:
    return Store(client, fast_settings())


@pytest.fixture
def names() -> SourceKeys:
    return SourceKeys(SOURCE)


def resource(
    action: str = "UPSERT",
    type_: str = "provider",
    id_: str = "p1",
    *,
    eid: str | None = None,
    source: str = SOURCE,
    **extra: Any,
) -> ChangeEvent:
    raw: dict[str, Any] = {
        "eventId": eid or f"e{next(_ids)}",
        "sourceKey": source,
        "target": "resource",
        "action": action,
        "type": type_,
        "id": id_,
        **extra,
    }
    if action != "DELETE":
        raw.setdefault("data", {"name": raw["eventId"]})
    return ChangeEvent.model_validate(raw)


def link(
    action: str = "UPSERT",
    office: str = "o1",
    provider: str = "p1",
    *,
    eid: str | None = None,
    **extra: Any,
) -> ChangeEvent:
    raw: dict[str, Any] = {
        "eventId": eid or f"e{next(_ids)}",
        "sourceKey": SOURCE,
        "target": "relationship",
        "action": action,
        "type": "provider-office",
        "from": {"type": "office", "id": office},
        "to": {"type": "provider", "id": provider},
        **extra,
    }
    if action != "DELETE":
        raw["data"] = {"description": raw["eventId"]}
    return ChangeEvent.model_validate(raw)


def item(event: ChangeEvent, **overrides: Any) -> PublishItem:
    """The publish.lua item for a resolved event (as the publisher builds it)."""
    key = key_of(event)
    head, content = event.stored_parts()
    values: dict[str, Any] = {
        "event_id": event.event_id,
        "head": head,
        "content": content,
        "entity": str(key),
        "resources": tuple(str(r) for r in resources_touched(key)),
        "group": named_group(event),
        "size": len(head.encode()) + len(content.encode()),
        "atomic_batch": event.atomic_batch,
    }
    values.update(overrides)
    return PublishItem(**values)


def put(store: Store, *events: ChangeEvent | PublishItem, now: int = NOW) -> list[Any]:
    """Publish events (or ready items) of SOURCE; the script's replies."""
    items = [e if isinstance(e, PublishItem) else item(e) for e in events]
    return store.publish({SOURCE: items}, [], now)[SOURCE]


def letters(client: redis.Redis, stream: str) -> list[dict[str, str]]:
    """The fields of every entry of a dead-letter stream, oldest first."""
    entries: list[tuple[str, dict[str, str]]] = client.xrange(stream)  # type: ignore[assignment]
    return [fields for _, fields in entries]


def bundle(
    bid: str,
    *event_ids: str,
    writes: Iterable[str] = (),
    reads: Iterable[str] = (),
    after: Iterable[str] = (),
    groups: Iterable[str] = (),
    claim: bool = True,
) -> BundleToCommit:
    """A bundle as the planner commits it (claimed by the caller when ready, unless told): one
    operation per event (trimming reads each operation's keys from its event)."""
    ops = [["UPSERT", [[event_id, 0]]] for event_id in event_ids]
    return BundleToCommit(
        bundle_id=bid,
        event_ids=event_ids,
        writes=tuple(writes),
        reads=tuple(reads),
        layout=json.dumps({"r": ops, "l": []}, separators=(",", ":")),
        groups=tuple(groups),
        after=tuple(after),
        claim=claim,
    )


def commit_bundles(
    store: Store,
    bundles: Iterable[BundleToCommit],
    *,
    now: int = NOW,
    rejected: Iterable[RejectedEvent] = (),
    expect: Mapping[str, CommitStatus] | None = None,
    limit: int = 1000,
) -> dict[str, tuple[CommitStatus, int]]:
    """One planning round of SOURCE: `read_ready`, then `commit` of these bundles.

    Asserts the statuses commit.lua answers: `expect`, or every bundle `ready`.
    """
    planned = list(bundles)
    round_ = store.read_ready(
        SOURCE, token="planner", lease_ms=10_000, limit=limit, max_bytes=10_000_000
    )
    assert not round_.busy
    result = store.commit(SOURCE, round_, bundles=planned, rejected=list(rejected), now_ms=now)
    assert result is not None, "the planning lease was lost"
    wanted = dict(expect) if expect is not None else {b.bundle_id: "ready" for b in planned}
    assert {bid: status for bid, (status, _) in result.items()} == wanted
    return result

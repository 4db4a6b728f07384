"""A driver for the production scheduler: real scripts on the test session's Redis, the Registry
the emulator's pure state model, and an adversary choosing what happens next.

Events are published through publish.lua (in calls the adversary cuts), planned by the real
planning round (read.lua, `plan_round`, commit.lua), and sent through the real recovery path
(claim.lua, the layout rebuilt from Redis, `submit_claimed`, record.lua) in an order the adversary
picks among the bundles that are ready: several independent bundles are "in flight" at once, and
any of them may land first. Nothing here models the scripts.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import redis
from pydantic import SecretStr

from api_client.models import BundleReceipts, ErrorBody
from emulator.state import SourceState
from tests.property.oracle import SOURCE, units
from worker.domain.coalesce import CoalesceMode, Fate
from worker.domain.events import ChangeEvent
from worker.domain.keys import key_of, resources_touched
from worker.domain.outcomes import EventOutcome
from worker.domain.plan import PlanCaps
from worker.flow.counts import FlushResult
from worker.flow.deps import Deps
from worker.flow.flush import flush
from worker.flow.planning import plan_round
from worker.flow.recover import recover
from worker.settings import IngestSettings
from worker.store import Store
from worker.store.keys import SourceKeys
from worker.store.records import PublishItem


@dataclass
class FakeRegistry:
    """The client's bundle endpoint over `SourceState`: every bundle applied atomically."""

    state: SourceState
    requests: int = 0

    def submit_bundle_body(self, source: str, body: bytes) -> BundleReceipts:
        assert source == SOURCE
        self.requests += 1
        resources, relationships = self.state.apply_bundle(json.loads(body))
        return BundleReceipts.model_validate(
            {"resourceOperationReceipts": resources, "relationshipOperationReceipts": relationships}
        )


def settings_for(caps: PlanCaps, mode: CoalesceMode, read_limit: int, redis_url: str) -> Any:
    return IngestSettings(
        api_key=SecretStr("property-key"),
        redis_url=SecretStr(redis_url),
        max_bundle_ops=caps.max_operations,
        max_bundle_bytes=max(caps.max_bytes, 1000),
        coalesce_mode=mode,
        flush_read_limit=read_limit,
        record_chunk=2,  # records cut in calls (settle, record, release) under the adversary
        linger_ms=0,
        max_age_ms=0,
        claim_ttl_ms=60_000,
        http_deadline_s=2,
    )


def publish_item(event: ChangeEvent) -> PublishItem:
    """The publish.lua item of a resolved event, as the publisher builds it."""
    key = key_of(event)
    head, content = event.stored_parts()
    return PublishItem(
        event_id=event.event_id,
        head=head,
        content=content,
        entity=str(key),
        resources=tuple(str(r) for r in resources_touched(key)),
        group=event.group or "g",
        size=len(head.encode()) + len(content.encode()),
        assigned_id=event.id if event.generated_id else None,
        atomic_batch=event.atomic_batch,
    )


def calls_of(events: Sequence[ChangeEvent], cuts: Sequence[bool]) -> list[list[ChangeEvent]]:
    """Publish calls: consecutive units (an atomic batch never cut), a new call where `cuts` say."""
    calls: list[list[ChangeEvent]] = [[]]
    for unit, cut in zip(
        units(events), itertools.chain(cuts, itertools.repeat(False)), strict=False
    ):
        if cut and calls[-1]:
            calls.append([])
        calls[-1].extend(unit)
    return [call for call in calls if call]


@dataclass
class Scheduler:
    """The production scheduler of one source, driven step by step."""

    deps: Deps
    registry: FakeRegistry
    names: SourceKeys = field(default_factory=lambda: SourceKeys(SOURCE))

    @property
    def client(self) -> Any:
        """The store's client (decoded responses): typed loosely, as its replies are text."""
        return self.deps.store.client

    def publish(self, call: Sequence[ChangeEvent]) -> None:
        replies = self.deps.store.publish({SOURCE: [publish_item(e) for e in call]}, [], 0)
        assert all(r.kind == "ok" for r in replies[SOURCE]), replies

    def plan_only(self) -> int:
        """A planning round that commits without sending anything; the events it read."""
        round_ = self.deps.store.read_ready(
            SOURCE, token=self.deps.new_id(), lease_ms=60_000,
            limit=self.deps.settings.flush_read_limit,
            max_bytes=self.deps.settings.flush_read_bytes,
        )  # fmt: skip
        assert not round_.busy
        if not round_.events:
            return 0
        planned = plan_round(self.deps, SOURCE, round_)
        unclaimed = [replace(p.commit, claim=False) for p in planned.bundles]
        statuses = self.deps.store.commit(
            SOURCE,
            round_,
            bundles=unclaimed,
            rejected=planned.rejected,
            blocked=planned.blocked,
            now_ms=self.deps.now_ms(),
        )
        assert statuses is not None
        return len(round_.events)

    def flush(self) -> FlushResult:
        """A production round: plan, then send what it owns."""
        return flush(self.deps, SOURCE)

    def ready(self) -> list[str]:
        """Bundles ready to send (planned, in the claims schedule), in id order."""
        ids = sorted(self.client.zrange(self.names.claims, 0, -1))
        states = [self.client.hget(self.names.bundle(b), "st") for b in ids]
        return [b for b, st in zip(ids, states, strict=True) if st == "planned"]

    def send(self, bundle_id: str) -> None:
        # a recovery claims the record at once (as a nudge does): a ready bundle is due in
        # `claims` from its commit or from the record that made it ready
        recover(self.deps, SOURCE, [bundle_id])

    def unpark(self, bundle_id: str) -> None:
        """Put a parked bundle back in the claims schedule, due now (as an operator would)."""
        self.client.zadd(self.names.claims, {bundle_id: self.deps.now_ms()})

    def pending(self) -> int:
        return int(self.client.zcard(self.names.ready))

    def park(self, bundle_id: str) -> None:
        """Park a ready bundle, as a contract error would: it holds its entities for long."""
        (claimed,) = self.deps.store.claim(SOURCE, [bundle_id], self.deps.now_ms(), "recover")
        assert claimed.code == "ok", claimed
        assert claimed.fence is not None
        assert self.deps.store.park(
            SOURCE, bundle_id, claimed.fence, error="parked by the adversary",
            now_ms=self.deps.now_ms(),
        )  # fmt: skip

    def keys_of(self, bundle_id: str) -> tuple[set[str], set[str]]:
        record = self.client.hmget(self.names.bundle(bundle_id), "x", "s")
        return set(json.loads(record[0])), set(json.loads(record[1]))

    def events_of(self, bundle_id: str) -> set[str]:
        return set(json.loads(self.client.hget(self.names.bundle(bundle_id), "ev")))

    def not_final(self, events: Sequence[ChangeEvent]) -> set[str]:
        final = ("applied", "coalesced", "dead_lettered")
        return {
            e.event_id
            for e in events
            if self.client.hget(self.names.event(e.event_id), "st") not in final
        }

    def stats(self) -> dict[str, int]:
        return {k: int(v) for k, v in self.client.hgetall(self.names.stats).items()}

    def final_outcomes(self, events: Sequence[ChangeEvent]) -> dict[str, EventOutcome]:
        found: dict[str, EventOutcome] = {}
        for event in events:
            h = self.client.hgetall(self.names.event(event.event_id))
            assert h.get("st") in ("applied", "coalesced", "dead_lettered"), (event.event_id, h)
            error = ErrorBody.model_validate_json(h["err"]) if h.get("err") else None
            found[event.event_id] = EventOutcome(
                event.event_id, Fate(h["fate"]), error=error, bound_to=h.get("bound") or None
            )
        return found


def make_scheduler(
    client: redis.Redis, settings: IngestSettings, registry: FakeRegistry
) -> Scheduler:
    counter = itertools.count(1)
    deps = Deps(
        settings,
        Store(client, settings),
        registry,  # type: ignore[arg-type]
        new_id=lambda: f"B{next(counter):05d}",
    )
    return Scheduler(deps, registry)


Choose = Callable[[int], int]
"""The adversary: picks an index below the bound."""


def behind_parked(
    events: Sequence[ChangeEvent],
    pending: set[str],
    parked_writes: set[str],
    parked_reads: set[str],
) -> set[str]:
    """The pending events that must wait behind a parked bundle: those that write what it holds
    or reference what it writes, and, in publish order, those that touch what such an event
    touches (an atomic batch whole). A scheduler that delays anything else delays an unrelated
    event."""
    held: set[str] = set()
    behind: set[str] = set()
    for unit in units([e for e in events if e.event_id in pending]):
        keys = []
        for event in unit:
            key = key_of(event)
            ends = [str(r) for r in resources_touched(key) if str(r) != str(key)]
            keys.append((str(key), ends))
        waits = any(
            entity in held or entity in parked_writes or entity in parked_reads
            or any(end in held or end in parked_writes for end in ends)
            for entity, ends in keys
        )  # fmt: skip
        if waits:
            behind.update(e.event_id for e in unit)
            for entity, ends in keys:
                held.add(entity)
                held.update(ends)
    return behind

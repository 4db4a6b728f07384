"""The read-back glue with a fake client: what it reads, when it stops early, and that a long
read-back keeps its claim."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, cast

from api_client import NotFoundError, TransportError
from api_client.models import Action, Resource
from worker.domain.coalesce import Role
from worker.domain.events import ChangeEvent
from worker.domain.ops import PlannedEvent, PlannedOp, plan_op
from worker.domain.readback import Resolution
from worker.flow.deps import Deps
from worker.flow.isolation import half_bundle
from worker.flow.readback import ReadAgain, resolve_unknown
from worker.settings import IngestSettings

from .builders import resource


def op(event: ChangeEvent, seq: int) -> PlannedOp:
    return plan_op((PlannedEvent(event, seq, Role.CARRIER),), Action(event.action.value))


@dataclass
class Registry:
    """Answers resource GETs from a dict; counts them."""

    held: dict[str, dict[str, Any]] = field(default_factory=dict)
    reads: list[str] = field(default_factory=list)
    fail: bool = False

    def get_resource(self, source: str, type_: str, id_: str) -> Resource:
        self.reads.append(id_)
        if self.fail:
            raise TransportError("no route to the Registry")
        if id_ not in self.held:
            raise NotFoundError("gone", status=404)
        return Resource.model_validate({"type": type_, "id": id_, "data": self.held[id_]})


@dataclass
class Clock:
    now: int = 1_000_000
    step: int = 0

    def __call__(self) -> int:
        self.now += self.step
        return self.now


def deps_of(client: Registry, clock: Clock, **settings: Any) -> Deps:
    values = {"claim_ttl_ms": 3000, "http_deadline_s": 2, "readback_settle_ms": 10_000, **settings}
    return Deps(
        settings=IngestSettings(**values),
        store=cast(Any, None),
        client=cast(Any, client),
        now_ms=clock,
    )


def upserts(count: int) -> Any:
    events = [resource("UPSERT", id_=f"p{i}", data={"n": i}) for i in range(count)]
    return half_bundle(tuple(op(e, i) for i, e in enumerate(events)), isolated=False)


def test_readback_before_the_settle_time_stops_at_the_first_missing_operation():
    registry = Registry(held={"p0": {"n": 0}})
    deps = deps_of(registry, Clock())

    decided = resolve_unknown(deps, "src", upserts(5), sending_at_ms=1_000_000, give_up=None)

    assert isinstance(decided, ReadAgain)
    assert registry.reads == ["p0", "p1"]


def test_readback_after_the_settle_time_reads_everything_and_decides():
    registry = Registry(held={"p0": {"n": 0}, "p3": {"n": 3}})
    deps = deps_of(registry, Clock())

    decided = resolve_unknown(deps, "src", upserts(5), sending_at_ms=0, give_up=None)

    assert isinstance(decided, Resolution)
    assert registry.reads == ["p0", "p1", "p2", "p3", "p4"]
    fates = [o.fate.value for o in decided.outcomes.outcomes]
    assert fates == ["APPLIED", "RETRY", "RETRY", "APPLIED", "RETRY"]


def test_readback_that_cannot_read_is_tried_again_later_and_may_pause_the_source(monkeypatch):
    registry = Registry(fail=True)
    deps = deps_of(registry, Clock(), readback_interval_ms=700)
    errors: list[Exception] = []
    monkeypatch.setattr(
        "worker.flow.readback.pause_source", lambda deps, source, error: errors.append(error)
    )

    decided = resolve_unknown(deps, "src", upserts(2), sending_at_ms=0, give_up=None)

    assert isinstance(decided, ReadAgain)
    assert decided.delay_ms == 700
    assert "read-back failed" in decided.why
    assert [type(e) for e in errors] == [TransportError]


def test_a_long_readback_renews_its_claim_every_third_of_the_ttl():
    registry = Registry(held={f"p{i}": {"n": i} for i in range(10)})
    renewals: list[int] = []
    clock = Clock(step=500)  # every clock reading is half a second later
    deps = deps_of(registry, clock)

    decided = resolve_unknown(
        deps,
        "src",
        upserts(10),
        sending_at_ms=0,
        give_up=None,
        keep_claim=lambda: renewals.append(clock.now),
    )

    assert isinstance(decided, Resolution)
    assert len(renewals) >= 3  # ten reads over several claim TTLs' thirds
    gaps = [b - a for a, b in itertools.pairwise(renewals)]
    assert all(gap <= 3000 for gap in gaps)

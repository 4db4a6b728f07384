"""The bound a stream's chain depth puts on any design: events / longest chain.

When one entity's changes must go in successive bundles (delete then re-create, a relationship
between its ends' writes and their delete), no design sends the stream in fewer sequential
Registry round trips than its longest such chain. The project's own planner, given every event of
a source at once and caps that never bind, packs the stream into that minimum: its number of
bundles is the chain's length. Sources are independent (their bundles can travel at once), so the
stream's longest chain is the largest over its sources; planning per source is also what keeps
the call affordable on 100,000 events.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from bench.world import Event
from worker.domain.events import ChangeEvent, EventError, parse_events
from worker.domain.plan import PlanCaps, plan_bundles
from worker.ids import new_id

UNBOUNDED: Final = PlanCaps(
    max_operations=10**9,
    max_bytes=10**12,
    isolate_expected_failures=False,
    separate_merged_deletes=False,
)
"""Caps that never bind: the bundles the planner makes are then the chain's links only."""


@dataclass(frozen=True)
class ChainBound:
    """The longest chain of a stream and the bound it gives: events per sequential round trip."""

    events: int
    longest_chain: int
    source: str
    """The source whose chain is longest."""

    @property
    def events_per_round_trip(self) -> float:
        return self.events / self.longest_chain if self.longest_chain else 0.0


def chain_bound(events: Sequence[Event]) -> ChainBound:
    """Plan each source's events at once, caps unbounded; the longest chain over the sources.

    Events are raw, as published; a CREATE without an id is given one here, as the publisher
    would (`generated_id` set), which changes no chain.

    Raises:
        ValueError: an event the worker would refuse at publish.
    """
    by_source: dict[str, list[ChangeEvent]] = defaultdict(list)
    for event in _parsed(events):
        by_source[event.source_key].append(event)
    longest, where = 0, ""
    for source, source_events in sorted(by_source.items()):
        bundles = len(plan_bundles(source_events, caps=UNBOUNDED).bundles)
        if bundles > longest:
            longest, where = bundles, source
    return ChainBound(events=len(events), longest_chain=longest, source=where)


def _parsed(events: Sequence[Event]) -> list[ChangeEvent]:
    out: list[ChangeEvent] = []
    for raw, parsed in zip(events, parse_events(events, new_event_id=new_id), strict=True):
        if isinstance(parsed, EventError):
            problem = parsed.problems[0]
            raise ValueError(
                f"event {raw.get('eventId')} would be refused: {problem.field}: {problem.reason}"
            )
        if parsed.target == "resource" and parsed.id is None:
            parsed = parsed.model_copy(update={"id": new_id(), "generated_id": True})
        out.append(parsed)
    return out

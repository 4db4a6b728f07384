"""A source's refusal rate in Redis (`ingest:{sk}:refusals`): folded atomically, one round trip.

The counts are weighted (`domain.refusals`): refusals and operations judged, each older answer
weighing less as more operations are judged. refusals.lua applies the fold the pure rule
computes, so racing recorders lose nothing; the hash expires when the source goes quiet (it is
statistics, never work).
"""

from __future__ import annotations

from functools import cache, cached_property
from importlib import resources
from typing import TYPE_CHECKING

import redis

from worker.domain.refusals import Observation, RefusalState, decay_factor
from worker.store import keys
from worker.store.codec import text

if TYPE_CHECKING:
    from redis.commands.core import Script

__all__ = ["RefusalStats"]


@cache
def _script_source() -> str:
    return resources.files("worker.store").joinpath("lua", "refusals.lua").read_text("utf-8")


def _number(raw: object) -> float:
    try:
        return max(0.0, float(text(raw)))
    except ValueError:
        return 0.0  # an unreadable count must never stop recording: start again from zero


class RefusalStats:
    """The refusal rate of every source, on one client."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    @cached_property
    def _script(self) -> Script:
        return self.client.register_script(_script_source())

    def fold(
        self, source: str, seen: Observation, *, halflife_ops: float, ttl_ms: int
    ) -> RefusalState:
        """Fold one answer's counts into the source's state; the state after it."""
        args = [
            str(seen.failures),
            str(seen.judged),
            repr(decay_factor(seen.judged, halflife_ops)),
            "1" if seen.every else "0",
            str(max(1, ttl_ms)),
        ]
        reply = self._script(keys=[keys.prefix(source)], args=args)
        return RefusalState(_number(reply[0]), _number(reply[1]), text(reply[2]) == "1")

    def state(self, source: str) -> RefusalState:
        """The source's state as stored (zero when none)."""
        f, j, every = self.client.hmget(keys.refusals_key(source), ["f", "j", "every"])
        return RefusalState(_number(f or 0), _number(j or 0), text(every or "") == "1")

"""A source's shared pause in Redis: one hash per source (`ingest:{sk}:pause`), changed by
pause.lua so that every worker of the source sees one pause and only one of them probes.

The hash holds the pause's kind, a reason safe to log, its end time, when it started and how many
pauses came since the Registry last accepted a submission (the backoff's strikes). It has no TTL:
it is deleted when a probe gets through, and an ended pause that nobody probed is inactive.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

import redis

from worker.store import keys
from worker.store.base import to_int
from worker.store.codec import text

__all__ = ["Gate", "Pause", "PauseStore"]

Gate = Literal["open", "paused", "probe"]
"""What `PauseStore.gate` answers a submission that is about to leave."""


@cache
def _script_source() -> str:
    return resources.files("worker.store").joinpath("lua", "pause.lua").read_text("utf-8")


@dataclass(frozen=True)
class Pause:
    """One source's pause as stored."""

    kind: str
    reason: str
    until_ms: int
    since_ms: int = 0
    strikes: int = 0
    probing: bool = False

    def active(self, now_ms: int) -> bool:
        """Whether the pause still holds work back at `now_ms`."""
        return now_ms < self.until_ms


@dataclass(frozen=True)
class GateAnswer:
    """The gate's answer, the pause's end (or the probe window's) and its strikes."""

    gate: Gate
    until_ms: int
    strikes: int
    kind: str


class PauseStore:
    """The pause keys of every source, over one redis-py client.

    Args:
        client: a redis-py client (responses decoded or not); it connects on first use.
    """

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._script = client.register_script(_script_source())

    def __repr__(self) -> str:
        return "PauseStore()"

    def _run(self, source: str, **arguments: Any) -> list[Any]:
        reply = self._script(keys=[keys.prefix(source)], args=[json.dumps(arguments)])
        return list(reply)

    def get(self, source: str) -> Pause | None:
        """The source's pause, ended or not; None when there is none."""
        return self.get_many([source]).get(source)

    def get_many(self, sources: Sequence[str]) -> dict[str, Pause]:
        """The pauses of these sources (those that have one); one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for source in sources:
            pipe.hgetall(keys.pause_key(source))
        found = {}
        for source, raw in zip(sources, pipe.execute(), strict=True):
            fields = {text(k): text(v) for k, v in raw.items()}
            if not fields.get("until"):
                continue
            found[source] = Pause(
                kind=fields.get("kind", ""),
                reason=fields.get("reason", ""),
                until_ms=to_int(fields.get("until")),
                since_ms=to_int(fields.get("since")),
                strikes=to_int(fields.get("strikes")),
                probing=fields.get("probe") == "1",
            )
        return found

    def extend(self, source: str, *, kind: str, reason: str, until_ms: int, now_ms: int) -> Pause:
        """Pause the source until at least `until_ms` (a failed probe's pause replaces the
        probe window); counts one more strike and one more pause in the source's stats."""
        reply = self._run(source, op="extend", now=now_ms, kind=kind, reason=reason, until=until_ms)
        return Pause(kind, reason, to_int(reply[1]), strikes=to_int(reply[2]))

    def gate(self, source: str, *, now_ms: int, window_ms: int) -> GateAnswer:
        """May a submission of the source leave now: `open`, `paused`, or `probe` (the pause
        ended and this caller is the one to try; the others wait up to `window_ms`)."""
        reply = self._run(source, op="gate", now=now_ms, window=window_ms)
        gate = text(reply[0])
        if gate not in ("open", "paused", "probe"):
            raise ValueError(f"pause.lua: unexpected gate answer {gate!r}")
        answer: Gate = "open" if gate == "open" else "paused" if gate == "paused" else "probe"
        return GateAnswer(answer, to_int(reply[1]), to_int(reply[2]), text(reply[3]))

    def clear(self, source: str, *, now_ms: int) -> bool:
        """End the source's pause (the Registry accepted again); whether there was one."""
        reply = self._run(source, op="clear", now=now_ms)
        return text(reply[0]) == "cleared"

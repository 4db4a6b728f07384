"""Source pauses in the flow: record one when the Registry refuses the source's configuration or
throttles it, hold submissions back while it lasts, and end it when a probe gets through.

The decision (which error pauses what, for how long) is `worker.pauses`; the shared state is
`worker.store.pauses`. Here: the glue, and the loud log line, which names the source, the kind,
the reason and the end, never a key.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final

import structlog

from api_client import RegistryError
from worker.flow.deps import Deps
from worker.pauses import PauseKind, PausePolicy, decide_pause
from worker.store.pauses import Gate, GateAnswer, Pause, PauseStore

__all__ = [
    "active_pauses",
    "hold_until_ms",
    "pause_gate",
    "pause_source",
    "poll_gate",
    "resume_source",
]

_log = structlog.get_logger("worker.pipeline")


def _pauses(deps: Deps) -> PauseStore:
    return PauseStore(deps.store.client)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


def active_pauses(deps: Deps, sources: Sequence[str], now_ms: int) -> dict[str, Pause]:
    """The sources paused at `now_ms` (a probe in flight counts as paused); one round trip."""
    if not sources:
        return {}
    found = _pauses(deps).get_many(sources)
    return {source: p for source, p in found.items() if p.active(now_ms)}


def poll_gate(deps: Deps, source: str) -> Gate:
    """Whether polls of the source's accepted tasks may go: `paused` while an auth pause holds;
    `probe` once it has ended, for one caller only (`pause_gate`): its first request tries the
    key, as a submission would, and every other poller waits for the answer; else `open`."""
    pause = _pauses(deps).get(source)
    if pause is None or pause.kind != PauseKind.AUTH.value:
        return "open"
    if pause.active(deps.now_ms()):
        return "paused"
    return pause_gate(deps, source).gate


OPEN_GATE: Final = GateAnswer("open", 0, 0, "")
"""The gate's answer for a source without a pause (the mark that sends checks it: mark.lua)."""


def pause_gate(deps: Deps, source: str) -> GateAnswer:
    """Whether a submission of the source may leave now (`open`, `paused`, or `probe`); a
    probe's answer is awaited up to the claim TTL, which outlives any one request."""
    return _pauses(deps).gate(source, now_ms=deps.now_ms(), window_ms=deps.settings.claim_ttl_ms)


def hold_until_ms(deps: Deps, gate: GateAnswer) -> int:
    """When to try again a submission the pause held back: the pause's end, or sooner while a
    probe is out (the ticker dispatches nothing of a paused source before the end anyway)."""
    return min(gate.until_ms, deps.now_ms() + deps.settings.pause_base_ms)


def pause_source(
    deps: Deps, source: str, error: RegistryError, *, write: bool = False
) -> Pause | None:
    """Pause the source if this error calls for it (`worker.pauses`; `write`: the request was a
    submission), and say so loudly."""
    store = _pauses(deps)
    current = store.get(source)
    settings = deps.settings
    decision = decide_pause(
        error,
        strikes=0 if current is None else current.strikes,
        policy=PausePolicy(settings.pause_base_ms, settings.pause_cap_ms),
        rng=deps.rng,
        write=write,
    )
    if decision is None:
        return None
    now = deps.now_ms()
    pause = store.extend(
        source,
        kind=decision.kind.value,
        reason=decision.reason,
        until_ms=now + decision.duration_ms,
        now_ms=now,
    )
    _log.error(
        "source.paused",
        source=source,
        kind=decision.kind.value,
        reason=decision.reason,
        until=_iso(pause.until_ms),
        strikes=pause.strikes,
    )
    return pause


def resume_source(deps: Deps, source: str) -> bool:
    """End the source's pause: the Registry answered a probe; whether a pause was ended."""
    ended = _pauses(deps).clear(source, now_ms=deps.now_ms())
    if ended:
        _log.warning("source.resumed", source=source)
    return ended

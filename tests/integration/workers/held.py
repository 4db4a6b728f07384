"""Requests the emulator holds while a test kills the worker that sent them, and the bundle
records such a kill leaves behind."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tests.integration.workers.conftest import Emulator, Workers
from tests.waiting import wait_for
from worker.pipeline import Deps
from worker.store.keys import SourceKeys

HELD_TIMEOUT_S = 20.0
RULE = "hold"
"""The id of the latency rule that holds requests."""


def hold_rule(route: str, seconds: float, times: int = 1) -> dict[str, Any]:
    """An emulator fault rule that holds the first `times` requests of `route` `seconds` each
    (the request still applies once the latency ends, whether or not its sender waits)."""
    return {
        "id": RULE,
        "route": route,
        "times": times,
        "effect": {"kind": "latency", "seconds": seconds},
    }


def fired(emulator: Emulator, rule_id: str) -> int:
    rules = emulator.admin("GET", "/faults")
    return sum(rule["fired"] for rule in rules if rule["id"] == rule_id)


def logged_with_fault(emulator: Emulator, rule_id: str) -> list[dict[str, Any]]:
    """Requests the emulator has answered (the log is written when a request ends) that the
    rule fired on."""
    return [r for r in emulator.admin("GET", "/requests") if rule_id in r["faults"]]


def wait_held(emulator: Emulator, workers: Workers, count: int = 1) -> None:
    """Wait until the emulator holds the first `count` requests the `hold` rule matches."""
    try:
        wait_for(lambda: fired(emulator, RULE) == count, timeout_s=HELD_TIMEOUT_S)
    except AssertionError:
        found = fired(emulator, RULE)
        raise AssertionError(f"{found} of {count} requests held\n{workers.logs()}") from None


def polls_in_flight(emulator: Emulator) -> set[str]:
    """The task ids whose GET the emulator is handling now."""
    return set(emulator.admin("GET", "/concurrency")["current"])


@dataclass(frozen=True)
class Held:
    """A bundle record as the killed worker left it."""

    source: str
    bundle_id: str
    fence: int
    claim_expiry_ms: int


def records(deps: Deps, sources: Sequence[str], state: str) -> list[Held]:
    """Every bundle record of the sources in this state, with its fence and claim expiry."""
    found = []
    for source in sources:
        pattern = SourceKeys(source).bundle("*")
        for key in deps.store.client.scan_iter(match=pattern, count=1000):
            bundle_id = str(key).rpartition(":bd:")[2]
            fields = deps.store.bundle_fields(source, bundle_id, "st", "fence", "cexp")
            if fields.get("st") == state:
                found.append(
                    Held(source, bundle_id, int(fields["fence"]), int(fields.get("cexp") or 0))
                )
    return found


def left_records(deps: Deps, sources: Sequence[str]) -> str:
    """The bundle records still planned, sending or sent (what a drain timeout left)."""
    alive = {state: records(deps, sources, state) for state in ("planned", "sending", "sent")}
    return f"records: {alive}"


def taken_over(deps: Deps, held: Held) -> bool:
    """Whether another claim (recovery or a poll) has replaced the dead worker's."""
    fence = deps.store.bundle_fields(held.source, held.bundle_id, "fence").get("fence")
    return int(fence or 0) > held.fence

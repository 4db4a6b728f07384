"""SIGKILL of a worker mid-request: nothing lost, nothing applied twice, recovered within the TTL.

Each test publishes a stream (CREATEs, UPSERTs, DELETEs and relationships over a few groups) and
starts real `celery worker` processes. An emulator latency holds one request (a bundle, or a
task's GET) in flight; once the emulator has it, the test SIGKILLs the worker's main process (its
pool children die with it, so nothing is answered to anyone, and the messages it held wait for the
30 s visibility timeout) or its only pool child (the main process lives on). The claim on the
record is all that is left: once it expires, a ticker hands the record to recovery, well before
any redelivery. Then the stream drains, and every event must have a final outcome, the Registry
must equal the one-by-one oracle, nothing may be dead-lettered (every event of the stream succeeds
alone) and no operation may be applied twice.

A held bundle either still applies once its latency ends, after the worker is gone (`applied`),
or never does (`lost`: the latency ends in a 500 that applies nothing). Both are what a request in
flight may become when its sender dies; the read-back must resolve either without a double write.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest

from tests.integration.workers.checks import check_outcome, wait_drained
from tests.integration.workers.conftest import (
    Emulator,
    WorkerProcess,
    Workers,
    kill_main,
    kill_pool_child,
)
from tests.integration.workers.held import (
    Held,
    hold_rule,
    left_records,
    logged_with_fault,
    polls_in_flight,
    records,
    taken_over,
    wait_held,
)
from tests.integration.workers.stream import make_stream
from tests.waiting import wait_for
from worker.pipeline import Deps
from worker.publisher import publish
from worker.results import backlog
from worker.settings import IngestSettings

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(120)]

SOURCES = ["hospital-a", "hospital-b"]
GROUPS = 6
EVENTS = 240
HOLD_S = 2.0
"""How long the emulator holds the chosen request: far longer than the kill takes, shorter than
the claim TTL (so a request applied after the kill is in the Registry before the read-back)."""
READBACK: dict[str, Any] = {"readback_settle_ms": 1500, "readback_interval_ms": 200}
RECOVERY_TIMEOUT_S = 25.0
RECOVERY_SLACK_MS = 5000
"""Scheduling slack above claim TTL + tick + settle (worker start, a loaded machine)."""
DRAIN_TIMEOUT_S = 40.0

Kill = Callable[[WorkerProcess], object]
KILLS: dict[str, Kill] = {"main": kill_main, "child": kill_pool_child}


# -- the stream ----------------------------------------------------------------------------------


def publish_stream(deps: Deps, seed: int) -> list[dict[str, Any]]:
    events = make_stream(sources=SOURCES, groups=GROUPS, events=EVENTS, seed=seed)
    kinds = {(e["target"], e["action"]) for e in events}
    assert {("resource", a) for a in ("CREATE", "UPSERT", "DELETE")} <= kinds
    assert {("relationship", a) for a in ("CREATE", "UPSERT", "DELETE")} <= kinds
    report = publish(deps, events)
    assert report.errors == [], report.errors[:3]
    assert backlog(deps).total > 0
    return events


# -- the held request and the records it leaves ---------------------------------------------------


def held_poll(emulator: Emulator, before: set[str]) -> set[str] | None:
    """The one poll of `before` still in flight, once it is the only one."""
    left = before & polls_in_flight(emulator)
    return left if len(left) == 1 else None


def task_of(deps: Deps, held: Held) -> str | None:
    return deps.store.bundle_fields(held.source, held.bundle_id, "task").get("task")


def record_of(deps: Deps, held: Held) -> dict[str, str]:
    fields = deps.store.bundle_fields(held.source, held.bundle_id, "st", "fence", "park", "err")
    return {k: v for k, v in fields.items() if v is not None}


def wait_records(
    deps: Deps, workers: Workers, held: Sequence[Held], what: str, done: Callable[[Held], bool]
) -> int:
    """Wait until `done` holds for every held record; the wall-clock ms when it did."""
    try:
        wait_for(lambda: all(done(h) for h in held), timeout_s=RECOVERY_TIMEOUT_S)
    except AssertionError:
        left = {h.bundle_id: record_of(deps, h) for h in held if not done(h)}
        raise AssertionError(
            f"not {what} within {RECOVERY_TIMEOUT_S} s of the kill: {left}\n{workers.logs()}"
        ) from None
    return deps.now_ms()


def left_sending(deps: Deps, held: Held) -> bool:
    return deps.store.bundle_fields(held.source, held.bundle_id, "st").get("st") != "sending"


def check_recovery_bound(
    settings: IngestSettings, held: Sequence[Held], killed_ms: int, taken_ms: int
) -> None:
    """Taken over once the claim expired, not before, and long before any redelivery."""
    assert taken_ms >= max(h.claim_expiry_ms for h in held)
    assert taken_ms - killed_ms < settings.visibility_timeout_s * 1000


# -- the tests ------------------------------------------------------------------------------------


def hold_first_bundle(emulator: Emulator, held: str) -> None:
    """Hold the first bundle request HOLD_S; `lost`: then answer 500 without applying it."""
    rules = [hold_rule("bundle", HOLD_S)]
    if held == "lost":
        rules.append(
            {
                "id": "lose",
                "route": "bundle",
                "calls": [1],
                "effect": {"kind": "status", "status": 500},
            }
        )
    emulator.admin("POST", "/faults", json=rules)


def kill_while_a_bundle_is_sent(
    deps: Deps,
    emulator: Emulator,
    workers: Workers,
    *,
    held: str,
    kill: str,
    seed: int,
    record_property: Callable[[str, object], None],
) -> None:
    settings = deps.settings
    # Given a stream, and the first bundle request held by the emulator ...
    hold_first_bundle(emulator, held)
    events = publish_stream(deps, seed)
    [first] = workers.start(1, concurrency=2 if kill == "main" else 1, **READBACK)
    wait_held(emulator, workers)

    # ... when the worker that sends it is killed while the emulator holds it ...
    before = records(deps, SOURCES, "sending")
    KILLS[kill](first)
    killed_ms = deps.now_ms()
    assert logged_with_fault(emulator, "hold") == [], "answered before the kill"
    # What the dead worker left: in `sending` at the kill, and untouched since (not a bundle
    # that was about to be answered, nor one a surviving main process's new child sends).
    sending = [h for h in records(deps, SOURCES, "sending") if h in before]
    assert sending, "no bundle record left in `sending`"
    if kill == "main":
        workers.start(1, concurrency=2, **READBACK)

    # ... its claim expires and a ticker hands the record to recovery, which resolves it ...
    taken_ms = wait_records(deps, workers, sending, "taken over", lambda h: taken_over(deps, h))
    check_recovery_bound(settings, sending, killed_ms, taken_ms)
    resolved_ms = wait_records(
        deps, workers, sending, "out of `sending`", lambda h: left_sending(deps, h)
    )
    recovery_ms = resolved_ms - killed_ms
    assert recovery_ms < settings.visibility_timeout_s * 1000
    bound_ms = settings.claim_ttl_ms + settings.tick_interval_ms + READBACK["readback_settle_ms"]
    assert recovery_ms < bound_ms + RECOVERY_SLACK_MS, recovery_ms
    record_property("recovery_ms", recovery_ms)
    print(
        f"kill={kill} held={held}: taken over {taken_ms - killed_ms} ms, out of `sending` "
        f"{recovery_ms} ms after the kill (claim TTL {settings.claim_ttl_ms} ms, visibility "
        f"timeout {settings.visibility_timeout_s:.0f} s); {len(sending)} record(s) in `sending`"
    )

    # ... and the stream drains: nothing lost, nothing applied twice, the Registry right.
    wait_drained(deps, workers, DRAIN_TIMEOUT_S, detail=lambda: left_records(deps, SOURCES))
    check_outcome(deps, emulator, events, SOURCES)
    [request] = logged_with_fault(emulator, "hold")
    assert request["status"] == (200 if held == "applied" else 500)


@pytest.mark.parametrize("held", ["applied", "lost"])
def test_main_process_killed_while_a_bundle_is_sent(
    deps: Deps,
    emulator: Emulator,
    workers: Workers,
    held: str,
    record_property: Callable[[str, object], None],
) -> None:
    kill_while_a_bundle_is_sent(
        deps, emulator, workers, held=held, kill="main", seed=41, record_property=record_property
    )


@pytest.mark.parametrize("held", ["applied", "lost"])
def test_pool_child_killed_while_a_bundle_is_sent(
    deps: Deps,
    emulator: Emulator,
    workers: Workers,
    held: str,
    record_property: Callable[[str, object], None],
) -> None:
    kill_while_a_bundle_is_sent(
        deps, emulator, workers, held=held, kill="child", seed=43, record_property=record_property
    )


@pytest.mark.parametrize("kill", ["main", "child"])
def test_worker_killed_while_a_task_is_polled(
    deps: Deps,
    emulator: Emulator,
    workers: Workers,
    kill: str,
    record_property: Callable[[str, object], None],
) -> None:
    settings = deps.settings
    # Given an asynchronous Registry whose tasks stay PENDING a few polls, the first GET held ...
    emulator.admin("PATCH", "/config", json={"mode": "async"})
    emulator.admin(
        "POST",
        "/faults",
        json=[
            {"id": "review", "route": "bundle", "effect": {"kind": "pending", "polls": 2}},
            hold_rule("task_status", HOLD_S),
        ],
    )
    events = publish_stream(deps, seed=47)
    # READBACK too: the main process's death also ends its other pool process, which may be
    # sending a bundle; that bundle is read back, and must settle within the drain's deadline.
    [first] = workers.start(1, concurrency=2 if kill == "main" else 1, **READBACK)
    wait_held(emulator, workers)
    before = polls_in_flight(emulator)

    # ... when the worker polling it is killed while the emulator holds the GET ...
    KILLS[kill](first)
    killed_ms = deps.now_ms()
    assert logged_with_fault(emulator, "hold") == [], "answered before the kill"
    # The dead worker's other polls end at once; the held GET is the one left in flight.
    [task_id] = wait_for(lambda: held_poll(emulator, before), timeout_s=HOLD_S / 2)
    [polled] = [h for h in records(deps, SOURCES, "sent") if task_of(deps, h) == task_id]
    if kill == "main":
        workers.start(1, concurrency=2, **READBACK)

    # ... the poll is taken over once the claim expires, not before ...
    taken_ms = wait_records(deps, workers, [polled], "taken over", lambda h: taken_over(deps, h))
    check_recovery_bound(settings, [polled], killed_ms, taken_ms)
    record_property("takeover_ms", taken_ms - killed_ms)
    print(f"kill={kill}: poll taken over {taken_ms - killed_ms} ms after the kill")

    # ... and the stream drains: every task polled to its end, nothing lost or applied twice.
    wait_drained(deps, workers, DRAIN_TIMEOUT_S, detail=lambda: left_records(deps, SOURCES))
    check_outcome(deps, emulator, events, SOURCES)
    assert deps.store.bundle_fields(polled.source, polled.bundle_id, "st") == {"st": "recorded"}

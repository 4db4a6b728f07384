"""Two real worker processes drain the benchmark's wide and hot streams into the oracle's state.

The streams are `bench.shapes`' own, at a size that drains in seconds: `wide` (many entities,
CREATEs with and without ids, UPSERTs, DELETEs of relationships and of providers created again
later, events naming several groups) and `hot` (40 providers and 5 offices, each changed many
times, delete-then-recreate chains, relationships to a few offices). Each is drained by two
`celery worker` processes (one pool process each, as in the benchmark) against the emulator
answering at once (`sync`) or with tasks to poll (`async`). Every event must end applied or
coalesced, nothing may be dead-lettered (every event of these streams succeeds alone), the
Registry must equal the one-by-one oracle, and no operation may be applied twice.

The kill cases hold the first two requests of a route in the emulator (bundles while sending,
task GETs while polling) shorter than the client's read timeout: a worker with one pool process
has one request in flight at a time, so two held at once means each worker has one. The test
SIGKILLs the first worker's main process while both are held (its pool child dies with it), starts
a replacement, and the stream still drains by claim expiry and recovery, before any message could
be redelivered.

`STREAM_SEED` in the environment replays one seed (a failure prints the one it ran).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

import pytest

from bench.shapes import make_stream
from bench.stream import with_ids
from tests.integration.workers import held
from tests.integration.workers.checks import check_outcome, publish_all, wait_drained
from tests.integration.workers.conftest import Emulator, Workers, kill_main
from worker.pipeline import Deps
from worker.results import EventStatus, backlog
from worker.settings import IngestSettings
from worker.store.keys import SourceKeys

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(120)]

EVENTS = {"wide": 1500, "hot": 1000}
"""Wide: 60 providers, 6 offices, ~180 entities; hot: every entity changed ~10 to 30 times."""
SEED = int(os.environ.get("STREAM_SEED", "7"))
PUBLISH_BATCH = 250
"""Small calls, so the stream arrives while the workers plan and send."""
POOL_PROCESSES = 1
KILL_PROFILE: dict[str, Any] = {
    "readback_settle_ms": 1500,
    "readback_interval_ms": 200,
    "http_deadline_s": 4.0,
    "http_read_timeout_s": 2.0,
    "claim_ttl_ms": 6000,
}
"""The kill cases: a held bundle applies after its sender died, and the read-back waits this long
before it looks; a longer read timeout (and the claim TTL above the HTTP deadline) lets the
requests be held long enough for the kill on a loaded machine."""
HOLD_SHARE = 0.75
"""How long a request is held, as a share of the client's read timeout (see `hold_s`)."""
KILLED_WHILE = {"sending": ("bundle", "sync"), "polling": ("task_status", "async")}
"""What the killed worker is doing: the route the emulator holds, and its answer mode."""


@dataclass(frozen=True)
class Rig:
    """What each test drives: its own dependencies, the emulator, and the worker processes."""

    deps: Deps
    emulator: Emulator
    workers: Workers


@pytest.fixture
def rig(deps: Deps, emulator: Emulator, workers: Workers) -> Rig:
    return Rig(deps, emulator, workers)


@pytest.fixture(params=["wide", "hot"])
def shape(request: pytest.FixtureRequest) -> str:
    shape: str = request.param
    return shape


def publish_stream(deps: Deps, shape: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Publish the stream; its events with the ids assigned at publish, and its sources."""
    stream = make_stream(shape, tag=shape, events=EVENTS[shape], seed=SEED)
    assigned = publish_all(deps, stream.events, batch=PUBLISH_BATCH)
    assert backlog(deps).total > 0
    return with_ids(stream.events, assigned), stream.sources


def hold_s(settings: IngestSettings) -> float:
    """Long enough to kill the sender, short enough that the sender is still waiting when the
    emulator answers: a worker's one pool process cannot have a second request held meanwhile."""
    return HOLD_SHARE * settings.client_config().read_timeout_s


def answered_ms(request: dict[str, Any]) -> float:
    """When the emulator answered a logged request (wall clock, ms)."""
    arrived = datetime.fromisoformat(request["at"].replace("Z", "+00:00"))
    return arrived.timestamp() * 1000 + float(request["durationMs"])


def drain_timeout_s(deps: Deps) -> float:
    """The visibility timeout: a drain that took longer may have waited for a redelivery."""
    return deps.settings.visibility_timeout_s


def task_record(deps: Deps, sources: Sequence[str], task_id: str) -> dict[str, str]:
    """The pipeline's record of an accepted task (bundle `bd`, `status`, finish time `fin`),
    with the source it was found in."""
    for source in sources:
        found = deps.store.client.hgetall(SourceKeys(source).task(task_id))
        if found:
            return {str(k): str(v) for k, v in found.items()} | {"source": source}
    raise AssertionError(f"no record of task {task_id}")


def check_answer_mode(emulator: Emulator, mode: str) -> None:
    """Every write went in as the mode says: inside a task (async) or at once (sync)."""
    writes = emulator.admin("GET", "/writes")
    assert writes
    in_tasks = {w["taskId"] is not None for w in writes}
    assert in_tasks == {mode == "async"}, in_tasks


def check_both_worked(workers: Workers) -> None:
    """Each worker ran tasks: the stream was shared, not drained by one process."""
    idle = [w.name for w in workers.running if " succeeded in " not in w.log()]
    assert idle == [], f"workers that ran no task: {idle}"


def drain(rig: Rig, events: Sequence[dict[str, Any]], sources: Sequence[str]) -> list[EventStatus]:
    """Wait until the backlog is 0, then check every outcome; the events' statuses."""
    left = partial(held.left_records, rig.deps, sources)
    wait_drained(rig.deps, rig.workers, drain_timeout_s(rig.deps), detail=left)
    return check_outcome(rig.deps, rig.emulator, events, sources)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_two_workers_drain_a_stream_shape(rig: Rig, shape: str, mode: str) -> None:
    deps, emulator, workers = rig.deps, rig.emulator, rig.workers
    # Given two running workers and a Registry answering in `mode` ...
    emulator.admin("PATCH", "/config", json={"mode": mode})
    workers.start(2, concurrency=POOL_PROCESSES)

    # ... when the stream is published while they run ...
    started_ms = deps.now_ms()
    events, sources = publish_stream(deps, shape)

    # ... it drains into the oracle's Registry, every event final, nothing written twice.
    drain(rig, events, sources)
    print(f"shape={shape} mode={mode} seed={SEED}: drained in {deps.now_ms() - started_ms} ms")
    check_answer_mode(emulator, mode)
    check_both_worked(workers)


@pytest.mark.parametrize("doing", ["sending", "polling"])
def test_two_workers_drain_a_stream_shape_past_a_kill(rig: Rig, shape: str, doing: str) -> None:
    deps, emulator, workers = rig.deps, rig.emulator, rig.workers
    route, mode = KILLED_WHILE[doing]
    # Given a Registry answering in `mode` that holds the first two requests of the route ...
    emulator.admin("PATCH", "/config", json={"mode": mode})
    settings = deps.settings.model_copy(update=KILL_PROFILE)
    emulator.admin("POST", "/faults", json=[held.hold_rule(route, hold_s(settings), times=2)])
    first, _ = workers.start(2, concurrency=POOL_PROCESSES, **KILL_PROFILE)
    print(f"shape={shape} killed while {doing} seed={SEED}")
    events, sources = publish_stream(deps, shape)
    held.wait_held(emulator, workers, count=2)

    # ... when the first worker dies while both are held (one of them is its request) ...
    sending = held.records(deps, sources, "sending")
    polled = held.polls_in_flight(emulator)
    killed_ms = deps.now_ms()
    kill_main(first)
    workers.start(1, concurrency=POOL_PROCESSES, **KILL_PROFILE)

    # ... the stream drains into the oracle's Registry, nothing written twice ...
    statuses = drain(rig, events, sources)
    drained_ms = deps.now_ms() - killed_ms
    assert drained_ms < drain_timeout_s(deps) * 1000, "drained only after a redelivery could come"
    check_answer_mode(emulator, mode)

    # ... and both held requests were answered after the kill: the dead worker's went in (or was
    # refused with receipts, as a bundle of these streams may be) after it died.
    answered = held.logged_with_fault(emulator, held.RULE)
    assert len(answered) == 2, answered
    assert all(r["status"] in {200, 400} for r in answered), answered
    assert all(answered_ms(r) > killed_ms for r in answered), (killed_ms, answered)
    recovered = [h for h in sending if held.taken_over(deps, h)]
    print(
        f"drained {drained_ms} ms after the kill; {len(sending)} record(s) sending at the kill, "
        f"{len(recovered)} taken over; polls held: {sorted(polled)}"
    )
    if doing == "sending":
        # One bundle of each worker was in flight; recovery claimed the dead worker's once its
        # claim expired.
        assert len(sending) == 2, sending
        assert recovered, sending
    else:
        # One poll of each worker was in flight; both tasks were polled to their end and
        # recorded, and a task that succeeded carried its events (none was sent again).
        assert len(polled) == 2, polled
        ended = {task_id: task_record(deps, sources, task_id) for task_id in polled}
        assert all(record.get("fin") for record in ended.values()), ended
        for record in ended.values():
            bundle = deps.store.bundle_fields(record["source"], record["bd"], "st")
            assert bundle == {"st": "recorded"}, record
        succeeded = {task_id for task_id, r in ended.items() if r["status"] == "SUCCESS"}
        assert succeeded <= {s.task_id for s in statuses}, ended

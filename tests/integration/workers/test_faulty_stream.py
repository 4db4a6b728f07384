"""Two real worker processes drain the benchmark's faulty stream: exactly the events that fail
one by one are dead-lettered, each at its stage with its own error, and the rest lands.

The stream is `bench.shapes.faulty` at a size that drains in seconds: the wide stream with 2.5% of
its events failing on their own, of every kind (data off the source's profile, a CREATE of an id
that exists, a DELETE of a missing id, a relationship to a missing end). Two `celery worker`
processes drain it against the emulator answering at once (`sync`) or with tasks to poll
(`async`), with refused bundles reporting their first failing operation or every one. Foresight
sets most failures apart as it learns; whatever it misses is refused and its neighbours sent
again: either way the outcomes are the one-by-one ones.
"""

from __future__ import annotations

from typing import Any

import pytest

from bench.shapes import make_stream
from bench.stream import with_ids
from tests.integration.workers.checks import check_registry_matches_oracle, wait_drained
from tests.integration.workers.conftest import Emulator, Workers
from tests.integration.workers.test_stream_shapes import POOL_PROCESSES, SEED
from worker.deadletters import list_dead_letters
from worker.pipeline import Deps
from worker.publisher import publish
from worker.results import event_status

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(120)]

EVENTS = 1600
"""About 40 failing events over two sources."""


def _expected(event: dict[str, Any]) -> tuple[str, set[str]]:
    """The stage and the error types a failing event may meet, from its kind
    (`bench.shapes.Faults`): a CREATE of a relationship is either one that exists or one to a
    missing end."""
    data = event.get("data") or {}
    if "unknownProperty" in data or data.get("active") == "yes":
        return "publish", {"INVALID_EVENT"}
    if event["action"] == "DELETE":
        return "record", {"NOT_FOUND"}
    if event["target"] == "resource":
        return "record", {"ALREADY_EXISTS"}
    if event["action"] == "UPSERT":
        return "record", {"FAILED_PRECONDITION"}
    return "record", {"ALREADY_EXISTS", "FAILED_PRECONDITION"}


@pytest.mark.parametrize("failures", ["first", "all"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_two_workers_dead_letter_exactly_the_events_that_fail_alone(
    deps: Deps, emulator: Emulator, workers: Workers, mode: str, failures: str
) -> None:
    emulator.admin("PATCH", "/config", json={"mode": mode, "bundle_failures": failures})
    workers.start(2, concurrency=POOL_PROCESSES)
    stream = make_stream("faulty", tag="faulty", events=EVENTS, seed=SEED)
    assigned: dict[str, str] = {}
    refused: dict[str, str] = {}
    for start in range(0, len(stream.events), 250):
        report = publish(deps, stream.events[start : start + 250])
        refused.update((str(e.event_id), e.field) for e in report.errors)
        assigned.update(report.assigned_ids)
    assert set(refused) <= stream.failing  # off their profile, refused at publish
    assert set(refused.values()) <= {"data.unknownProperty", "data.active"}
    events = with_ids(stream.events, assigned)

    wait_drained(deps, workers, deps.settings.visibility_timeout_s)

    letters = {str(letter.event_id): letter for letter in list_dead_letters(deps)}
    assert sorted(letters) == sorted(stream.failing)
    by_id = {event["eventId"]: event for event in events}
    for event_id, letter in letters.items():
        stage, errors = _expected(by_id[event_id])
        assert (letter.stage, letter.error_type in errors) == (stage, True), (event_id, letter)
        if stage == "publish":  # the field at fault is named
            assert refused[event_id].removeprefix("data.") in letter.message, letter.message
    for event in events:
        status = event_status(deps, event["eventId"]).status
        failing = event["eventId"] in stream.failing
        assert status in ({"dead_lettered"} if failing else {"applied", "coalesced"}), event
    kept = [e for e in events if e["eventId"] not in stream.failing]
    check_registry_matches_oracle(emulator, kept, stream.sources)

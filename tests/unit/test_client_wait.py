"""wait_for_task: status-only polls with growing waits, one read with receipts, a deadline."""

from __future__ import annotations

import random

import httpx
import pytest

from api_client.errors import RegistryError, TaskStillPendingError
from api_client.models import ReceiptStatus, TaskState, TaskStatus
from api_client.tasks import IssuedBy, TaskRef
from api_client.waiting import PollPolicy, poll_wait_s, wait_for_task
from tests.unit.test_client_fakes import SOURCE, FakeTime, Script, json_response, make_client

EXACT = PollPolicy(first_wait_s=1.0, multiplier=2.0, cap_s=5.0, jitter=0.0)
PENDING = {"status": "PENDING", "taskId": "bd_1"}


def _receipts_flags(script: Script) -> list[str | None]:
    return [request.url.params.get("withReceipts") for request in script.requests]


def test_wait_for_task_polls_without_receipts_then_reads_them_once() -> None:
    time = FakeTime()
    done = {"status": "SUCCESS", "taskId": "bd_1"}
    with_receipts = {**done, "receipts": [{"status": "SUCCESS", "id": "p-17", "type": "provider"}]}
    script = Script(
        *[json_response(200, PENDING) for _ in range(4)],
        json_response(200, done),
        json_response(200, with_receipts),
    )
    client = make_client(script, time=time)
    state = client.wait_for_task(TaskRef(SOURCE, "bd_1"), deadline_s=600.0, policy=EXACT)
    assert state.status is TaskStatus.SUCCESS
    assert state.receipts is not None
    assert [r.status for r in state.receipts] == [ReceiptStatus.SUCCESS]
    assert _receipts_flags(script) == ["false"] * 5 + ["true"]
    assert {request.url.path for request in script.requests} == {
        "/sources/hospital-a/v1/tasks/bd_1"
    }
    assert time.waits == [1.0, 2.0, 4.0, 5.0]  # growing, then capped


def test_wait_for_task_raises_still_pending_at_the_deadline() -> None:
    time = FakeTime()
    script = Script(*[json_response(200, PENDING) for _ in range(20)])
    ref = TaskRef(SOURCE, "bd_1")
    with pytest.raises(TaskStillPendingError) as caught:
        make_client(script, time=time).wait_for_task(ref, deadline_s=10.0, policy=EXACT)
    pending = caught.value
    assert not isinstance(pending, RegistryError)
    assert pending.ref == ref
    assert pending.last_status == "PENDING"
    assert time.waits == [1.0, 2.0, 4.0, 3.0]  # the last wait is cut to land on the deadline
    assert pending.polls == 5
    assert pending.elapsed_s == 10.0
    assert _receipts_flags(script) == ["false"] * 5


def test_wait_for_task_polls_a_bare_bulk_id_on_the_bulk_route() -> None:
    time = FakeTime()
    script = Script(
        json_response(200, {"status": "PENDING"}),
        json_response(200, {"status": "FAILURE"}),
        json_response(200, {"status": "FAILURE", "receipts": []}),
    )
    ref = TaskRef.from_submission(SOURCE, "2wil2vg5uqi08", issued_by=IssuedBy.RELATIONSHIPS_BULK)
    state = make_client(script, time=time).wait_for_task(ref, deadline_s=60.0, policy=EXACT)
    assert state.status is TaskStatus.FAILURE
    assert {request.url.path for request in script.requests} == {
        "/sources/hospital-a/v1/relationships/bulk/2wil2vg5uqi08"
    }
    assert _receipts_flags(script) == ["false", "false", "true"]


def test_wait_for_task_polls_a_legacy_purge_on_the_purge_route_without_receipts() -> None:
    time = FakeTime()
    script = Script(
        json_response(200, {"taskId": "purge:abc", "status": "PENDING"}),
        json_response(200, {"taskId": "purge:abc", "status": "SUCCESS", "deletedCount": 2}),
    )
    ref = TaskRef(SOURCE, "purge:abc")
    state = make_client(script, time=time).wait_for_task(ref, deadline_s=60.0, policy=EXACT)
    assert state.status is TaskStatus.SUCCESS
    assert state.task_id == "purge:abc"
    assert [request.url.path for request in script.requests] == [
        "/sources/hospital-a/v1/purge/abc"
    ] * 2


def test_wait_for_task_returns_at_once_for_a_finished_task() -> None:
    time = FakeTime()
    script = Script(
        json_response(200, {"status": "CANCELLED"}),
        json_response(200, {"status": "CANCELLED", "receipts": []}),
    )
    state = make_client(script, time=time).wait_for_task(TaskRef(SOURCE, "s_1"), deadline_s=0.0)
    assert state.status is TaskStatus.CANCELLED
    assert time.waits == []


def test_wait_for_task_keeps_polling_through_an_unknown_status() -> None:
    time = FakeTime()
    script = Script(
        json_response(200, {"status": "IN_REVIEW_SOMEHOW"}),
        json_response(200, {"status": "SUCCESS"}),
        json_response(200, {"status": "SUCCESS", "receipts": []}),
    )
    make_client(script, time=time).wait_for_task(TaskRef(SOURCE, "bd_1"), deadline_s=9.0)
    assert len(time.waits) == 1


class FakeSource:
    """A task-state source without HTTP: a list of statuses, then the final state with receipts."""

    def __init__(self, *statuses: str) -> None:
        self.statuses = list(statuses)
        self.asked: list[bool] = []

    def get_task_state(self, ref: TaskRef, *, with_receipts: bool = False) -> TaskState:
        self.asked.append(with_receipts)
        if with_receipts:
            return TaskState(status=TaskStatus.SUCCESS, task_id=ref.task_id, receipts=[])
        return TaskState(status=self.statuses.pop(0), task_id=ref.task_id)


def test_wait_for_task_works_on_any_task_state_source_with_jittered_waits() -> None:
    time = FakeTime()
    source = FakeSource("PENDING", "PENDING", "SUCCESS")
    policy = PollPolicy(first_wait_s=2.0, multiplier=3.0, cap_s=100.0, jitter=0.5)
    state = wait_for_task(
        source,
        TaskRef(SOURCE, "bk_1"),
        deadline_s=100.0,
        policy=policy,
        clock=time.monotonic,
        sleep=time.sleep,
        rng=random.Random(5),
    )
    assert state.receipts == []
    assert source.asked == [False, False, False, True]
    reference = random.Random(5)
    assert time.waits == [c - reference.uniform(0, c * 0.5) for c in (2.0, 6.0)]


def test_wait_for_task_refuses_a_negative_deadline() -> None:
    with pytest.raises(ValueError, match="deadline_s"):
        wait_for_task(FakeSource(), TaskRef(SOURCE, "bd_1"), deadline_s=-1.0)


def test_poll_wait_s_stays_within_its_jitter_band_and_cap() -> None:
    policy = PollPolicy(first_wait_s=1.0, multiplier=10.0, cap_s=30.0, jitter=0.2)
    rng = random.Random(1)
    waits = [poll_wait_s(poll, policy, rng) for poll in range(400)]
    ceilings = [min(30.0, 10.0 ** min(poll, 64)) for poll in range(400)]
    assert all(0.8 * c <= w <= c for w, c in zip(waits, ceilings, strict=True))


def test_wait_for_task_propagates_a_failed_poll() -> None:
    script = Script(httpx.Response(404, json={"code": 404, "type": "NOT_FOUND", "message": "gone"}))
    with pytest.raises(RegistryError):
        make_client(script).wait_for_task(TaskRef(SOURCE, "bd_1"), deadline_s=5.0)

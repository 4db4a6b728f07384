"""RegistryClient's retries end to end: throttles, unknown outcomes, backoff, deadlines."""

from __future__ import annotations

import random

import httpx
import pytest
import structlog

from api_client import errors
from api_client.models import (
    TaskAccepted,
    TaskStatus,
    dump_json,
)
from api_client.retry import RetryPolicy
from tests.unit.test_client_fakes import (
    API_KEY,
    BUNDLE,
    SOURCE,
    FakeTime,
    Script,
    TopOfRange,
    assert_no_secret,
    json_response,
    make_client,
)

# -- throttles ------------------------------------------------------------------------------------


def test_client_sleeps_as_retry_after_seconds_says_then_succeeds() -> None:
    time = FakeTime()
    script = Script(
        httpx.Response(429, headers={"Retry-After": "3"}),
        json_response(202, {"taskId": "bd_1", "status": "ACCEPTED"}),
    )
    answer = make_client(script, time=time).submit_bundle(SOURCE, BUNDLE)
    assert isinstance(answer, TaskAccepted)
    assert time.waits == [3.0]
    assert script.requests[0].content == script.requests[1].content == dump_json(BUNDLE)


def test_client_reads_a_retry_after_http_date_against_the_injected_clock() -> None:
    time = FakeTime()
    time.now_s = 100.0  # the wall clock reads EPOCH_S + 100
    script = Script(
        httpx.Response(429, headers={"Retry-After": "Tue, 14 Nov 2023 22:15:12 GMT"}),
        json_response(200, {"status": "SUCCESS"}),
    )
    make_client(script, time=time).get_task(SOURCE, "bd_1")
    assert time.waits == [12.0]  # 22:15:12 is EPOCH_S + 112


def test_client_caps_retry_after() -> None:
    time = FakeTime()
    policy = RetryPolicy(retry_after_cap_s=5.0, deadline_s=100.0)
    script = Script(
        httpx.Response(503, headers={"Retry-After": "3600"}),
        json_response(200, {"status": "PENDING"}),
    )
    make_client(script, time=time, policy=policy).get_task(SOURCE, "bd_1")
    assert time.waits == [5.0]


@pytest.mark.parametrize(
    ("status", "expected"), [(429, errors.RateLimitedError), (503, errors.ServiceUnavailableError)]
)
def test_client_in_return_mode_raises_a_throttle_at_once(
    status: int, expected: type[errors.RateLimitedError]
) -> None:
    time = FakeTime()
    script = Script(httpx.Response(status, headers={"Retry-After": "9"}))
    client = make_client(script, time=time, policy=RetryPolicy(on_throttle="return"))
    with pytest.raises(errors.RateLimitedError) as caught:
        client.submit_bundle(SOURCE, BUNDLE)
    assert type(caught.value) is expected
    assert caught.value.retry_after_s == 9.0
    assert caught.value.retryable
    assert time.waits == []
    assert len(script.requests) == 1


# -- maybe applied --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(500, json={"code": 500, "type": "INTERNAL", "message": "oops"}),
        httpx.Response(502),
        httpx.Response(504),
        httpx.ReadTimeout("slow"),
        httpx.RemoteProtocolError("dropped"),
    ],
    ids=["500", "502", "504", "read-timeout", "dropped"],
)
def test_client_raises_outcome_unknown_for_a_write_that_may_have_been_applied(
    failure: httpx.Response | Exception,
) -> None:
    time = FakeTime()
    script = Script(failure)
    with pytest.raises(errors.OutcomeUnknownError) as caught:
        make_client(script, time=time).submit_bundle(SOURCE, BUNDLE)
    error = caught.value
    assert error.sent.method == "POST"
    assert error.sent.path == "/sources/hospital-a/v1/bundle"
    assert error.sent.body == dump_json(BUNDLE)
    assert error.sent.model == BUNDLE
    assert isinstance(error.__cause__, errors.RegistryError)
    assert "Jane Roe" not in str(error)
    assert "Jane Roe" not in repr(error)
    assert len(script.requests) == 1  # never resent blindly
    assert time.waits == []
    assert_no_secret(error)


@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(500),
        httpx.Response(502),
        httpx.Response(503),
        httpx.Response(504),
        httpx.ReadTimeout("slow"),
    ],
    ids=["500", "502", "503", "504", "read-timeout"],
)
def test_client_retries_a_read_that_failed(failure: httpx.Response | Exception) -> None:
    time = FakeTime()
    script = Script(failure, json_response(200, {"status": "SUCCESS", "taskId": "bd_1"}))
    state = make_client(script, time=time).get_task(SOURCE, "bd_1")
    assert state.status is TaskStatus.SUCCESS
    assert len(script.requests) == 2
    assert len(time.waits) == 1


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ConnectError("refused"),
        httpx.ConnectTimeout("slow"),
        httpx.PoolTimeout("busy"),
        httpx.Response(503),
    ],
    ids=["connect-refused", "connect-timeout", "pool-timeout", "503"],
)
def test_client_retries_a_write_that_was_certainly_not_processed(
    failure: httpx.Response | Exception,
) -> None:
    time = FakeTime()
    script = Script(failure, json_response(202, {"taskId": "bd_1", "status": "ACCEPTED"}))
    answer = make_client(script, time=time).submit_bundle(SOURCE, BUNDLE)
    assert isinstance(answer, TaskAccepted)
    assert len(script.requests) == 2
    assert len(time.waits) == 1


# -- backoff sequences, attempts and deadline ------------------------------------------------------


def test_client_backs_off_with_the_exact_seeded_full_jitter_sequence() -> None:
    time = FakeTime()
    policy = RetryPolicy(base_s=0.5, cap_s=3.0, max_attempts=6, deadline_s=100.0)
    script = Script(
        *[httpx.ConnectError("refused") for _ in range(5)],
        json_response(200, {"status": "SUCCESS"}),
    )
    client = make_client(script, time=time, policy=policy, rng=random.Random(11))
    assert client.get_task(SOURCE, "bd_1").status is TaskStatus.SUCCESS
    reference = random.Random(11)
    expected = [reference.uniform(0, ceiling) for ceiling in (0.5, 1.0, 2.0, 3.0, 3.0)]
    assert time.waits == expected
    assert len(script.requests) == 6


def test_client_raises_the_last_failure_after_max_attempts() -> None:
    time = FakeTime()
    policy = RetryPolicy(max_attempts=3, deadline_s=100.0)
    script = Script(*[httpx.ConnectTimeout("slow") for _ in range(3)])
    with pytest.raises(errors.RequestTimeoutError) as caught:
        make_client(script, time=time, policy=policy).submit_bundle(SOURCE, BUNDLE)
    assert caught.value.retryable
    assert not caught.value.maybe_applied
    assert len(script.requests) == 3
    assert len(time.waits) == 2
    assert_no_secret(caught.value)


def test_client_stops_retrying_when_a_wait_would_pass_the_deadline() -> None:
    time = FakeTime()
    # every wait is the ceiling: 1, 2, 4, 8 ... and the deadline is 5 s
    policy = RetryPolicy(base_s=1.0, cap_s=100.0, max_attempts=50, deadline_s=5.0)
    script = Script(*[httpx.Response(503) for _ in range(10)])
    with pytest.raises(errors.ServiceUnavailableError):
        make_client(script, time=time, policy=policy, rng=TopOfRange()).get_task(SOURCE, "bd_1")
    assert time.waits == [1.0, 2.0]  # 1 + 2 = 3; a wait of 4 would end at 7 > 5
    assert len(script.requests) == 3
    assert time.now_s <= policy.deadline_s


def test_client_gives_up_on_a_retry_after_longer_than_the_deadline() -> None:
    time = FakeTime()
    policy = RetryPolicy(deadline_s=10.0, retry_after_cap_s=60.0)
    script = Script(httpx.Response(429, headers={"Retry-After": "30"}))
    with pytest.raises(errors.RateLimitedError) as caught:
        make_client(script, time=time, policy=policy).submit_bundle(SOURCE, BUNDLE)
    assert caught.value.retry_after_s == 30.0
    assert time.waits == []


def test_client_ignores_a_garbage_retry_after_and_backs_off() -> None:
    time = FakeTime()
    script = Script(
        httpx.Response(429, headers={"Retry-After": "later please"}),
        json_response(200, {"status": "PENDING"}),
    )
    make_client(script, time=time, rng=TopOfRange()).get_task(SOURCE, "bd_1")
    assert time.waits == [0.5]  # the first backoff ceiling of the test policy


def test_client_logs_each_retry_without_the_body_or_the_key(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with structlog.testing.capture_logs() as logs:
        script = Script(
            httpx.Response(503), json_response(202, {"taskId": "bd_1", "status": "ACCEPTED"})
        )
        make_client(script, rng=TopOfRange()).submit_bundle(SOURCE, BUNDLE)
    (entry,) = logs
    assert entry["event"] == "registry.retry"
    assert entry["log_level"] == "debug"
    assert (entry["method"], entry["path"], entry["status"], entry["attempt"]) == (
        "POST",
        "/sources/hospital-a/v1/bundle",
        503,
        1,
    )
    assert entry["wait_s"] == 0.5
    text = repr(logs) + capsys.readouterr().out
    assert "Jane Roe" not in text
    assert API_KEY not in text

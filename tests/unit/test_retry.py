"""The retry decision as a table, the exact backoff sequence, and both Retry-After forms."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import pydantic
import pytest

from api_client import errors
from api_client._http import Call, error_for_httpx, error_for_status
from api_client.retry import (
    RetryPolicy,
    Verdict,
    backoff_s,
    decide,
    parse_retry_after,
)

CALL = Call("POST", "/sources/hospital-a/v1/bundle", body=b"{}")
NOW_S = 1_700_000_000.0


class TopOfRange:
    """A jitter source that always draws the top of the range, so waits equal their ceilings."""

    def __init__(self) -> None:
        self.ranges: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        self.ranges.append((a, b))
        return b


def _transport(exc_class: type[httpx.TransportError]) -> Callable[[], errors.RegistryError]:
    return lambda: error_for_httpx(exc_class("boom"), CALL)


def _status(status: int, retry_after: str | None = None) -> Callable[[], errors.RegistryError]:
    headers = {} if retry_after is None else {"Retry-After": retry_after}
    return lambda: error_for_status(httpx.Response(status, headers=headers), None, CALL, now_s=0.0)


def _contract() -> errors.RegistryError:
    return errors.ContractError("garbage", status=200, maybe_applied=True)


BACKOFF = "backoff"  # retry after the first backoff: 0.5 s with TopOfRange and base_s=0.5
UNKNOWN = "outcome unknown"
RAISE = "raise"

# failure -> expected for (read, sleep), (write, sleep), (read, return), (write, return)
TABLE: dict[
    str, tuple[Callable[[], errors.RegistryError], tuple[object, object, object, object]]
] = {
    "connect refused": (_transport(httpx.ConnectError), (BACKOFF, BACKOFF, BACKOFF, BACKOFF)),
    "connect timeout": (_transport(httpx.ConnectTimeout), (BACKOFF, BACKOFF, BACKOFF, BACKOFF)),
    "pool timeout": (_transport(httpx.PoolTimeout), (BACKOFF, BACKOFF, BACKOFF, BACKOFF)),
    "read timeout": (_transport(httpx.ReadTimeout), (BACKOFF, UNKNOWN, BACKOFF, UNKNOWN)),
    "write timeout": (_transport(httpx.WriteTimeout), (BACKOFF, UNKNOWN, BACKOFF, UNKNOWN)),
    "dropped connection": (
        _transport(httpx.RemoteProtocolError),
        (BACKOFF, UNKNOWN, BACKOFF, UNKNOWN),
    ),
    "read error": (_transport(httpx.ReadError), (BACKOFF, UNKNOWN, BACKOFF, UNKNOWN)),
    "write error": (_transport(httpx.WriteError), (BACKOFF, UNKNOWN, BACKOFF, UNKNOWN)),
    "unsupported scheme": (_transport(httpx.UnsupportedProtocol), (RAISE, RAISE, RAISE, RAISE)),
    "429 Retry-After: 3": (_status(429, "3"), (3.0, 3.0, RAISE, RAISE)),
    "429 without hint": (_status(429), (BACKOFF, BACKOFF, RAISE, RAISE)),
    "429 garbage hint": (_status(429, "soon"), (BACKOFF, BACKOFF, RAISE, RAISE)),
    "503 Retry-After: 7": (_status(503, "7"), (7.0, 7.0, RAISE, RAISE)),
    "503 without hint": (_status(503), (BACKOFF, BACKOFF, RAISE, RAISE)),
    "500": (_status(500), (BACKOFF, UNKNOWN, BACKOFF, UNKNOWN)),
    "502": (_status(502), (BACKOFF, UNKNOWN, BACKOFF, UNKNOWN)),
    "504": (_status(504), (BACKOFF, UNKNOWN, BACKOFF, UNKNOWN)),
    "501": (_status(501), (RAISE, RAISE, RAISE, RAISE)),
    "400": (_status(400), (RAISE, RAISE, RAISE, RAISE)),
    "401": (_status(401), (RAISE, RAISE, RAISE, RAISE)),
    "403": (_status(403), (RAISE, RAISE, RAISE, RAISE)),
    "404": (_status(404), (RAISE, RAISE, RAISE, RAISE)),
    "409": (_status(409), (RAISE, RAISE, RAISE, RAISE)),
    "413": (_status(413), (RAISE, RAISE, RAISE, RAISE)),
    "2xx unreadable": (_contract, (RAISE, RAISE, RAISE, RAISE)),
}

MODES = list(itertools.product(["sleep", "return"], [False, True]))  # (on_throttle, is_write)


def _cases() -> list[tuple[str, str, bool, object]]:
    cases = []
    for name, (_, expected) in TABLE.items():
        by_mode = {
            ("sleep", False): expected[0],
            ("sleep", True): expected[1],
            ("return", False): expected[2],
            ("return", True): expected[3],
        }
        for on_throttle, is_write in MODES:
            cases.append((name, on_throttle, is_write, by_mode[(on_throttle, is_write)]))
    return cases


@pytest.mark.parametrize(("name", "on_throttle", "is_write", "expected"), _cases())
def test_decide_follows_the_table(
    name: str, on_throttle: str, is_write: bool, expected: object
) -> None:
    failure = TABLE[name][0]()
    policy = RetryPolicy.model_validate({"base_s": 0.5, "on_throttle": on_throttle})
    decision = decide(
        failure, is_write=is_write, attempt=0, elapsed_s=0.0, policy=policy, rng=TopOfRange()
    )
    if expected == RAISE:
        assert decision.verdict is Verdict.RAISE
    elif expected == UNKNOWN:
        assert decision.verdict is Verdict.OUTCOME_UNKNOWN
    elif expected == BACKOFF:
        assert (decision.verdict, decision.wait_s) == (Verdict.RETRY, 0.5)
    else:
        assert (decision.verdict, decision.wait_s) == (Verdict.RETRY, expected)
    assert decision.reason


def test_backoff_s_ceilings_double_up_to_the_cap() -> None:
    rng = TopOfRange()
    policy = RetryPolicy(base_s=0.5, cap_s=5.0)
    waits = [backoff_s(attempt, policy, rng) for attempt in range(7)]
    assert waits == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    assert all(low == 0.0 for low, _ in rng.ranges)  # full jitter: from zero


def test_backoff_s_with_a_seeded_generator_gives_the_exact_sequence() -> None:
    policy = RetryPolicy(base_s=0.25, cap_s=3.0)
    rng = random.Random(7)
    waits = [backoff_s(attempt, policy, rng) for attempt in range(6)]
    reference = random.Random(7)
    expected = [reference.uniform(0, ceiling) for ceiling in (0.25, 0.5, 1.0, 2.0, 3.0, 3.0)]
    assert waits == expected
    assert all(0 <= wait <= 3.0 for wait in waits)


def test_backoff_s_stays_finite_for_a_huge_attempt() -> None:
    assert backoff_s(100_000, RetryPolicy(cap_s=9.0), TopOfRange()) == 9.0


def test_backoff_s_refuses_a_negative_attempt() -> None:
    with pytest.raises(ValueError, match="attempt"):
        backoff_s(-1, RetryPolicy(), TopOfRange())


def test_decide_gives_up_after_max_attempts() -> None:
    policy = RetryPolicy(max_attempts=3)
    failure = TABLE["connect refused"][0]()
    verdicts = [
        decide(failure, is_write=True, attempt=n, elapsed_s=0.0, policy=policy, rng=TopOfRange())
        for n in range(3)
    ]
    assert [v.verdict for v in verdicts] == [Verdict.RETRY, Verdict.RETRY, Verdict.RAISE]


def test_decide_gives_up_when_the_wait_would_end_past_the_deadline() -> None:
    policy = RetryPolicy(base_s=1.0, deadline_s=10.0)
    failure = TABLE["connect refused"][0]()
    inside = decide(
        failure, is_write=False, attempt=0, elapsed_s=9.0, policy=policy, rng=TopOfRange()
    )
    past = decide(
        failure, is_write=False, attempt=0, elapsed_s=9.5, policy=policy, rng=TopOfRange()
    )
    assert (inside.verdict, inside.wait_s) == (Verdict.RETRY, 1.0)
    assert past.verdict is Verdict.RAISE


def test_decide_counts_a_retry_after_wait_against_the_deadline() -> None:
    policy = RetryPolicy(deadline_s=60.0, retry_after_cap_s=120.0)
    failure = _status(429, "30")()
    decision = decide(
        failure, is_write=True, attempt=0, elapsed_s=40.0, policy=policy, rng=TopOfRange()
    )
    assert decision.verdict is Verdict.RAISE


def test_decide_caps_retry_after() -> None:
    policy = RetryPolicy(retry_after_cap_s=10.0, deadline_s=100.0)
    failure = _status(429, "600")()
    decision = decide(
        failure, is_write=True, attempt=0, elapsed_s=0.0, policy=policy, rng=TopOfRange()
    )
    assert (decision.verdict, decision.wait_s) == (Verdict.RETRY, 10.0)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("3", 3.0),
        (" 3 ", 3.0),
        ("0", 0.0),
        ("1.5", 1.5),
        (format_datetime(datetime.fromtimestamp(NOW_S + 42, UTC), usegmt=True), 42.0),
        ("Tue, 14 Nov 2023 22:14:02 -0000", 42.0),  # naive form, read as GMT
        (format_datetime(datetime.fromtimestamp(NOW_S - 3600, UTC), usegmt=True), 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("-1", None),
        ("inf", None),
        ("nan", None),
        ("3 seconds", None),
        ("Tue, 99 Foo 2023 25:61:00 GMT", None),
    ],
)
def test_parse_retry_after_reads_both_forms_and_ignores_garbage(
    header: str | None, expected: float | None
) -> None:
    assert parse_retry_after(header, now_s=NOW_S) == expected


def test_retry_policy_is_frozen() -> None:
    policy = RetryPolicy()
    with pytest.raises(pydantic.ValidationError):
        policy.base_s = 2.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("base_s", 0),
        ("cap_s", -1),
        ("max_attempts", 0),
        ("deadline_s", float("inf")),
        ("retry_after_cap_s", -0.5),
        ("on_throttle", "pause"),
    ],
)
def test_retry_policy_names_the_field_it_refuses(field: str, value: object) -> None:
    with pytest.raises(pydantic.ValidationError, match=field):
        RetryPolicy.model_validate({field: value})

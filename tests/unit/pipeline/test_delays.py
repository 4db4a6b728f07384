"""Poll and retry waits: backoff with jitter, caps, the slow cap once STALE, server hints."""

from __future__ import annotations

import random
from typing import Any

from pydantic import SecretStr

from worker.flow.deps import Deps
from worker.flow.poll import next_poll_delay_ms
from worker.flow.submit import retry_delay_ms
from worker.settings import IngestSettings


def deps(**settings) -> Deps:
    values = {"api_key": SecretStr("k"), "poll_first_ms": 100, "poll_multiplier": 2.0,
              "poll_cap_ms": 1000, "poll_slow_cap_ms": 60_000, "retry_base_ms": 100,
              "retry_cap_ms": 5000, **settings}  # fmt: skip
    unused: Any = object()  # the store and the client: these computations must not touch them
    return Deps(IngestSettings(**values), unused, unused, rng=random.Random(7))


def test_poll_delay_grows_within_its_jittered_ceiling_up_to_the_cap():
    d = deps()
    for polls, ceiling in [(0, 100), (1, 200), (2, 400), (3, 800), (4, 1000), (30, 1000)]:
        for _ in range(50):
            assert ceiling / 2 <= next_poll_delay_ms(d, polls, stale=False) <= ceiling


def test_a_bulk_task_is_polled_from_its_own_first_wait_with_the_same_backoff():
    d = deps(bulk_poll_first_ms=20)
    for polls, ceiling in [(0, 20), (1, 40), (2, 80), (6, 1000)]:
        for _ in range(50):
            assert ceiling / 2 <= next_poll_delay_ms(d, polls, stale=False, bulk=True) <= ceiling


def test_a_bulk_task_first_wait_stays_within_the_poll_cap():
    d = deps(bulk_poll_first_ms=5000)  # the cap is 1000
    assert d.settings.first_poll_ms(bulk=True) == 1000
    assert d.settings.first_poll_ms(bulk=False) == 100
    assert next_poll_delay_ms(d, 0, stale=False, bulk=True) <= 1000


def test_poll_delay_of_a_stale_task_is_the_slow_cap():
    assert next_poll_delay_ms(deps(), 3, stale=True) == 60_000


def test_retry_delay_takes_the_server_hint_capped():
    d = deps()
    assert retry_delay_ms(d, 0, 2.0) == 2000
    assert retry_delay_ms(d, 0, 3600.0) == 5000


def test_retry_delay_backs_off_with_jitter_up_to_the_cap():
    d = deps()
    assert all(50 <= retry_delay_ms(d, 0) <= 100 for _ in range(50))
    assert all(2500 <= retry_delay_ms(d, 20) <= 5000 for _ in range(50))

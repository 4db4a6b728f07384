"""Three tickers on one Redis, ticking at once: each source's due planning is dispatched once.

The tickers are the real `Ticker` (the code the bootstep runs), each with its own Redis client,
driven from three threads; sending is recorded instead of going to a broker, and no worker runs,
so nothing plans the sources: only the lease taken by `claim_due` keeps a second ticker from
dispatching a source's planning again. A planning nobody handles is dispatched again once its
lease ends, then after a lease twice as long each time, up to `due_lease_cap_ms`.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from typing import Any

import pytest
import redis
from pydantic import SecretStr

from tests.integration.workers.stream import make_stream
from tests.waiting import POLL_INTERVAL_S, wait_for
from worker.pipeline import Deps, build_deps
from worker.publisher import publish
from worker.settings import IngestSettings
from worker.tasks import FLUSH
from worker.ticker import Ticker

pytestmark = pytest.mark.integration

TICKERS = 3
GROUPS = 120
TICK_FOR_S = 1.5
"""How long the tickers tick: long enough for every source to be due and taken, shorter than the
lease, so that a source taken twice can only mean two tickers took it."""


def test_three_tickers_dispatch_each_due_planning_once(redis_url: str) -> None:
    settings = IngestSettings(
        redis_url=SecretStr(redis_url),
        api_key=SecretStr("unused"),
        linger_ms=20,
        max_age_ms=100,
        due_lease_ms=30_000,
        tick_batch=7,
    )
    publisher = build_deps(settings)
    events = make_stream(
        sources=["hospital-a", "hospital-b"], groups=GROUPS, events=GROUPS * 3, deletes=False
    )
    report = publish(publisher, events)
    assert report.errors == []

    # Given three tickers, each with its own Redis client, recording what they send ...
    sent: list[tuple[str, str, str]] = []
    lock = threading.Lock()

    def recorder(name: str, *, args: Any, retry: bool) -> None:
        source, ids = args
        with lock:
            sent.extend((name, source, group) for group in ids)

    tickers = [
        Ticker(
            build_deps(settings, redis=redis.Redis.from_url(redis_url, decode_responses=True)),
            recorder,
            batch=settings.tick_batch,
            backlog_every=1000,
        )
        for _ in range(TICKERS)
    ]
    failed: list[bool] = []
    start = threading.Barrier(TICKERS)

    def run(ticker: Ticker) -> None:
        start.wait()
        until = time.monotonic() + TICK_FOR_S
        while time.monotonic() < until:
            failed.append(ticker.tick().failed)

    # ... when they tick at once, for less than the lease ...
    threads = [threading.Thread(target=run, args=(t,)) for t in tickers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TICK_FOR_S + 10)

    # ... every source's planning was dispatched, each exactly once (one ready log per source,
    # whatever the groups its events name).
    dispatched = Counter((source, group) for name, source, group in sent if name == FLUSH)
    expected = {(e["sourceKey"], "*") for e in events}
    assert set(dispatched) == expected
    assert set(dispatched.values()) == {1}
    assert not any(failed)
    assert len(failed) > 3 * TICKERS  # each ticker ticked many times
    for ticker in tickers:
        ticker.close()
    publisher.close()
    publisher.store.client.close()


def planning_never_handled(redis_url: str, **settings: Any) -> Deps:
    """A source whose planning is due at once and that no worker will ever plan."""
    deps = build_deps(
        IngestSettings(
            redis_url=SecretStr(redis_url),
            api_key=SecretStr("unused"),
            linger_ms=0,
            max_age_ms=0,
            **settings,
        )
    )
    events = make_stream(sources=["hospital-a"], groups=1, events=3, deletes=False)
    assert publish(deps, events).errors == []
    return deps


def test_ticker_dispatches_a_planning_again_once_its_lease_ends(redis_url: str) -> None:
    # Given a source's planning taken by one ticker whose message was lost (no worker ran it) ...
    deps = planning_never_handled(redis_url, due_lease_ms=300)
    sent: list[list[Any]] = []
    ticker = Ticker(
        deps, lambda name, *, args, retry: sent.append(args), batch=10, backlog_every=1000
    )

    first = wait_for(lambda: ticker.tick().sent, timeout_s=5.0)
    assert first == {FLUSH: 1}
    taken_at = time.monotonic()

    # ... the same planning is dispatched again after the lease, and not before.
    wait_for(lambda: ticker.tick().sent, timeout_s=5.0)
    assert time.monotonic() - taken_at >= 0.25
    assert sent == [["hospital-a", ["*"]], ["hospital-a", ["*"]]]
    deps.close()
    deps.store.client.close()


LEASE_MS = 100
CAP_MS = 400
REPEAT_FOR_S = 2.0


def test_ticker_repeats_an_unhandled_planning_with_a_doubling_lease(redis_url: str) -> None:
    # Given a planning nobody handles (its messages lost, or queued behind a backlog) ...
    deps = planning_never_handled(redis_url, due_lease_ms=LEASE_MS, due_lease_cap_ms=CAP_MS)
    sent_at: list[float] = []
    ticker = Ticker(
        deps,
        lambda name, *, args, retry: sent_at.append(time.monotonic()),
        batch=10,
        backlog_every=1000,
    )

    # ... when the ticker ticks for a while ...
    end = time.monotonic() + REPEAT_FOR_S
    while time.monotonic() < end:
        ticker.tick()
        time.sleep(POLL_INTERVAL_S)

    # ... it is sent again, ever less often (up to the cap): not once per lease (20 times).
    gaps_ms = [(b - a) * 1000 for a, b in itertools.pairwise(sent_at)]
    assert 4 <= len(sent_at) <= 8, gaps_ms
    assert all(gap >= LEASE_MS * 0.9 for gap in gaps_ms), gaps_ms
    assert gaps_ms[2] >= 3.5 * LEASE_MS, gaps_ms
    assert deps.store.client.hget("ingest:{hospital-a}:stats", "rehanded") == str(len(sent_at) - 1)
    deps.close()
    deps.store.client.close()

"""Pausing the benchmark's workers leaves no blocking pop that could take what is enqueued next."""

from __future__ import annotations

import threading

import pytest
import redis

from bench.consuming import unblock_pops
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

QUEUE = "bench-consuming-test"


def test_a_pop_waiting_when_the_workers_pause_ends_at_once_and_takes_nothing_enqueued_after(
    redis_url: str,
) -> None:
    client = redis.Redis.from_url(redis_url)
    waiting = redis.Redis.from_url(redis_url)
    client.delete(QUEUE)
    answers: list[object] = []
    popped = threading.Event()

    def pop() -> None:
        answers.append(waiting.brpop([QUEUE], timeout=30))
        popped.set()

    thread = threading.Thread(target=pop, daemon=True)
    thread.start()
    try:
        # Given a client blocked in BRPOP on the queue (a worker that was consuming it)
        wait_for(lambda: any(str(c.get("cmd")) == "brpop" for c in client.client_list()))

        # When the pops are unblocked
        assert unblock_pops(client) >= 1

        # Then it answers nothing at once, and what is enqueued next stays in the queue, in order
        assert popped.wait(5)
        assert answers == [None]
        client.lpush(QUEUE, "first", "second")
        assert client.lrange(QUEUE, 0, -1) == [b"second", b"first"]
    finally:
        client.delete(QUEUE)
        thread.join(5)
        waiting.close()
        client.close()

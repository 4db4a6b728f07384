"""Stopping and resuming the workers' consuming, so both designs start the clock warm.

A worker's start-up (imports, forking its pool, connecting) is not throughput, and counting it
would blur the comparison on short runs. So each design's workers are started and warmed first,
then told to stop consuming their queues (Celery's `cancel_consumer` remote control), the whole
measured stream is published or enqueued, the clock starts, and they are told to consume again
(`add_consumer`). Both designs go through the same steps.

A worker on Redis waits for messages in a `BRPOP` of up to a second, and `cancel_consumer` does
not end one already waiting: a message enqueued meanwhile was taken by it, found no consumer, and
went back to the far end of the queue (kombu requeues a rejected message leftmost), so one task
per event ran it after the later events of its entity (a relationship before the CREATE of its
office, failing: the benchmark's rare "failed writes that apply one by one"). So `pause` then
unblocks every client waiting in a blocking pop (`CLIENT UNBLOCK`: the pop answers nothing at
once), and each worker's next pop names only the queues it still consumes.

Verified with our workers: after `cancel_consumer` their `active_queues` are empty and nothing
is taken from the queue; our ticker (a Consumer bootstep) keeps running and keeps sending nudge
messages for the groups that fall due, which wait in the queue and are harmless (a nudge whose
work is gone does nothing). Each call is checked: every worker must answer, and `active_queues`
must show the change, or the benchmark stops (`ConsumingError`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Final

import redis
from celery import Celery

REPLY_TIMEOUT_S: Final = 5.0
CHECK_DEADLINE_S: Final = 30.0
CHECK_PAUSE_S: Final = 0.2
BLOCKING_POPS: Final = frozenset({"brpop", "blpop", "brpoplpush", "blmove", "bzpopmin", "bzpopmax"})


class ConsumingError(RuntimeError):
    """A worker did not stop or resume consuming when told to."""


class Consumers:
    """Tells named workers to stop and resume consuming their queues: worker name -> queue."""

    def __init__(self, broker_url: str, queues: Mapping[str, str]) -> None:
        self._app = Celery("bench-consuming", broker=broker_url, set_as_current=False)
        self._broker = redis.Redis.from_url(broker_url)
        self._queues = dict(queues)

    def pause(self) -> None:
        """Every worker stops consuming its queue (what it runs now it finishes), and no pop
        begun before that can take what is enqueued next (see the module docstring)."""
        for name, queue in self._queues.items():
            replies = self._app.control.cancel_consumer(
                queue, destination=[name], reply=True, timeout=REPLY_TIMEOUT_S
            )
            _check_replied(replies, name, "stop consuming")
        self._check(consuming=False)
        unblock_pops(self._broker)

    def resume(self) -> None:
        """Every worker consumes its queue again."""
        for name, queue in self._queues.items():
            replies = self._app.control.add_consumer(
                queue, destination=[name], reply=True, timeout=REPLY_TIMEOUT_S
            )
            _check_replied(replies, name, "consume again")
        self._check(consuming=True)

    def _check(self, *, consuming: bool) -> None:
        """Every worker's `active_queues` shows the change, asked again until CHECK_DEADLINE_S
        (a worker busy with a long task answers late, or not within one inspection)."""
        deadline = time.monotonic() + CHECK_DEADLINE_S
        while True:
            wrong = self._not_yet(consuming=consuming)
            if not wrong:
                return
            if time.monotonic() > deadline:
                raise ConsumingError(wrong[0])
            time.sleep(CHECK_PAUSE_S)  # the next inspection; bounded by the deadline above

    def _not_yet(self, *, consuming: bool) -> list[str]:
        inspect = self._app.control.inspect(destination=list(self._queues), timeout=REPLY_TIMEOUT_S)
        active = inspect.active_queues() or {}
        wrong = []
        for name, queue in self._queues.items():
            names = {q.get("name") for q in active.get(name) or []}
            if (queue in names) != consuming:
                state = "consuming" if queue in names else "not consuming"
                wrong.append(f"worker {name} is {state} {queue}, against what it was told")
        return wrong

    def close(self) -> None:
        self._app.close()
        self._broker.close()


def unblock_pops(client: redis.Redis) -> int:
    """End at once every blocking pop waiting on this Redis (it answers nothing, as on its
    timeout); how many were waiting."""
    ended = 0
    for entry in client.client_list():
        if str(entry.get("cmd", "")).lower() in BLOCKING_POPS:
            ended += int(client.client_unblock(int(entry["id"])))
    return ended


def _check_replied(replies: object, name: str, what: str) -> None:
    answered = replies if isinstance(replies, list) else []
    if not any(isinstance(reply, dict) and name in reply for reply in answered):
        raise ConsumingError(f"worker {name} did not answer when told to {what}")

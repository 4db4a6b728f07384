"""The one-task-per-event design, for comparison only: what the benchmark measures us against.

A tiny Celery app on the same Redis whose one task takes ONE event and sends it to the Registry as
one single write with `api_client.RegistryClient`: a resource CREATE (POST), UPSERT (PUT) or
DELETE, a relationship CREATE (POST) or DELETE. The API has no single-write UPSERT of a
relationship, so that one goes as a bundle of one operation: still one request for one event.
The producer gives a CREATE without an id its id before sending (`worker.ids.new_id`).

Its Celery settings are ours (`worker.celery_app.celery_config`: late acks, prefetch 1, results
off, JSON), minus the task events, which would cost the baseline a few messages per task. Each
worker consumes its own queue, and all the events that touch one entity go to the same queue
(`queues_by_component`): with one pool process per worker, an entity's events then run in
publish order, which any one-task-per-event design needs to end in the right state. Each task
counts itself in Redis (done, or failed with the event id, the error's type and the start of
its message), so the benchmark waits on a count, not on a guess.

Start a worker with `celery -A bench.baseline worker -Q bench-baseline-0 -c 1`; settings come from
the environment, as for ours.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from celery import Celery

from worker.collector import connect_collector_tuning

if TYPE_CHECKING:
    import redis

    from api_client import RegistryClient
    from worker.settings import IngestSettings

TASK_NAME: Final = "bench.baseline.apply_event"
QUEUE_PREFIX: Final = "bench-baseline-"
DONE_KEY: Final = "bench:baseline:done"
FAILED_KEY: Final = "bench:baseline:failed"


class WriteRefusedError(Exception):
    """The Registry refused the one operation of a bundle, or answered with a task to poll."""


def queue_name(index: int) -> str:
    """The queue that baseline worker `index` (0-based) consumes."""
    return f"{QUEUE_PREFIX}{index}"


def baseline_config(settings: IngestSettings) -> dict[str, Any]:
    """Our Celery settings for `settings`, without task events; queue 0 by default."""
    from worker.celery_app import celery_config

    config = celery_config(settings)
    config.update(
        task_default_queue=queue_name(0),
        worker_send_task_events=False,
        task_send_sent_event=False,
    )
    return config


def create_app(settings: IngestSettings | None = None) -> Celery:
    """The baseline app; None reads the settings from the environment when Celery needs them."""
    app = Celery("bench-baseline", set_as_current=False)

    def config() -> dict[str, Any]:
        if settings is not None:
            return baseline_config(settings)
        from worker.settings import read_settings

        return baseline_config(read_settings())

    app.add_defaults(config)
    app.task(name=TASK_NAME)(apply_event)
    # the same collector tuning as our workers, so the comparison measures the designs only
    connect_collector_tuning()
    return app


@dataclass
class _ProcessDeps:
    pid: int
    client: RegistryClient
    redis: redis.Redis


_deps: _ProcessDeps | None = None


def _process_deps() -> _ProcessDeps:
    """This process's client and Redis connection, built after the fork (never shared across)."""
    global _deps
    if _deps is None or _deps.pid != os.getpid():
        import redis

        from api_client import RegistryClient
        from worker.settings import read_settings

        settings = read_settings()
        client = RegistryClient(settings.client_config())
        store = redis.Redis.from_url(
            settings.redis_url.get_secret_value(),
            socket_timeout=settings.redis_timeout_s,
            socket_connect_timeout=settings.redis_timeout_s,
        )
        _deps = _ProcessDeps(os.getpid(), client, store)
    return _deps


def apply_event(event: dict[str, Any]) -> None:
    """Send one event as one single write, then count it done (or failed, with its error type)."""
    deps = _process_deps()
    try:
        write_one(deps.client, event)
    except Exception as exc:  # every failure is counted: the benchmark waits on the counts
        kind = getattr(exc, "error_type", None) or type(exc).__name__
        # the message's start, so that a write that should not have failed says why
        why = str(getattr(exc, "message", None) or exc)[:120]
        deps.redis.rpush(FAILED_KEY, f"{event.get('eventId')}: {kind} {why}")
    else:
        deps.redis.incr(DONE_KEY)


def write_one(client: RegistryClient, event: dict[str, Any]) -> None:
    """The one Registry request that applies `event` alone (its id given when it is a CREATE)."""
    from api_client.models import (
        BundleReceipts,
        BundleRequest,
        RelationshipCreateRequest,
        RelationshipOperation,
        RelationshipPayload,
        ResourcePayload,
    )

    source, action, type_ = event["sourceKey"], event["action"], event["type"]
    if event["target"] == "resource":
        if action == "DELETE":
            client.delete_resource(source, type_, event["id"])
            return
        payload = ResourcePayload.model_validate(
            {"type": type_, "id": event["id"], "data": event.get("data") or {}}
        )
        if action == "CREATE":
            client.create_resource(source, payload)
        else:
            client.upsert_resource(source, payload)
        return
    ends = {"from": event["from"], "to": event["to"]}
    if action == "DELETE":
        rel_id = f"{ends['from']['id']}.{ends['to']['id']}"  # the documented {fromId}.{toId}
        client.delete_relationship(source, type_, rel_id)
    elif action == "CREATE":
        body = RelationshipCreateRequest.model_validate({**ends, "data": event.get("data") or {}})
        client.create_relationship(source, type_, body)
    else:
        upsert = RelationshipPayload.model_validate(
            {"type": type_, **ends, "data": event.get("data") or {}}
        )
        answer = client.submit_bundle(
            source,
            BundleRequest(relationship_operations=[RelationshipOperation.for_upsert(upsert)]),
        )
        if not isinstance(answer, BundleReceipts):
            raise WriteRefusedError("the Registry answered with a task; the benchmark runs it sync")
        for receipt in answer.relationship_operation_receipts:
            if receipt.status != "SUCCESS":
                raise WriteRefusedError(f"receipt {receipt.status}")


def queues_by_component(events: Sequence[dict[str, Any]], workers: int) -> list[str]:
    """Each event's queue, so that any two events touching one entity share a queue.

    One task per event keeps an entity's order only if its events run one after the other: on
    one queue, consumed by one worker with one pool process. A relationship joins its two ends,
    so the queues are the stream's connected components (per source), dealt largest first to
    the least loaded queue. Groups say nothing here: producers name them loosely, and the same
    entity under two groups on two queues would run out of order. A stream that is one
    component (every relationship to one office) runs on one queue: what order demands.
    """
    parent: dict[tuple[str, ...], tuple[str, ...]] = {}

    def find(key: tuple[str, ...]) -> tuple[str, ...]:
        root = key
        while parent.setdefault(root, root) != root:
            root = parent[root]
        while parent[key] != root:
            parent[key], key = root, parent[key]
        return root

    roots: list[tuple[str, ...]] = []
    for index, event in enumerate(events):
        source = event["sourceKey"]
        if event["target"] == "resource":
            # a CREATE without an id names a new entity that nothing else touches
            key = (source, event["type"], event.get("id") or f"#{index}")
            roots.append(find(key))
            continue
        ends = [(source, event[side]["type"], event[side]["id"]) for side in ("from", "to")]
        first, second = find(ends[0]), find(ends[1])
        parent[second] = first
        roots.append(first)
    sizes = Counter(find(root) for root in roots)
    loads = [0] * workers
    queue_of: dict[tuple[str, ...], int] = {}
    for root, size in sorted(sizes.items(), key=lambda item: (-item[1], item[0])):
        queue_of[root] = min(range(workers), key=loads.__getitem__)
        loads[queue_of[root]] += size
    return [queue_name(queue_of[find(root)]) for root in roots]


def enqueue(app: Celery, events: Sequence[dict[str, Any]], workers: int) -> dict[str, str]:
    """Send one task per event, in order, to its component's queue; the ids given to id-less
    CREATEs.

    `workers` is how many baseline workers (so queues) run.
    """
    from worker.ids import new_id

    queues = queues_by_component(events, workers)
    assigned: dict[str, str] = {}
    with app.producer_or_acquire() as producer:
        for event, queue in zip(events, queues, strict=True):
            if event["target"] == "resource" and "id" not in event:
                assigned[event["eventId"]] = new_id()
                event = {**event, "id": assigned[event["eventId"]]}
            app.send_task(
                TASK_NAME,
                args=[event],
                queue=queue,
                producer=producer,
                argsrepr=repr(event["eventId"]),
            )
    return assigned


app = create_app()
"""The app that `celery -A bench.baseline worker` runs."""

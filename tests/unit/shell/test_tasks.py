"""The tasks: stable names, late acks, ids-only reprs, thin calls into the core, publish retries."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any
from unittest.mock import MagicMock

import pytest
import redis
from celery.exceptions import Retry

from worker.celery_app import IngestCelery, create_app
from worker.settings import IngestSettings
from worker.tasks import (
    FLUSH,
    POLL,
    PUBLISH,
    PUBLISH_MAX_RETRIES,
    RECOVER,
    REPR_MAX_IDS,
    TASK_NAMES,
    PublishFailedError,
    publish_argsrepr,
    retry_delay_s,
    send_publish,
)

HEALTH_DATA = {"name": "Jane Roe", "diagnosis": "very private"}


@pytest.fixture
def app() -> IngestCelery:
    return create_app(IngestSettings(redis_url="redis://127.0.0.1:6390/0"))


def test_task_names_are_stable() -> None:
    assert TASK_NAMES == ("ingest.flush", "ingest.poll", "ingest.recover", "ingest.publish")


def test_tasks_are_registered_with_late_acks_and_no_results(app: IngestCelery) -> None:
    for name in TASK_NAMES:
        task = app.tasks[name]
        assert task.acks_late is True, name
        assert task.ignore_result is True, name


def test_send_publish_shows_event_ids_only_in_the_message_and_the_sent_event(
    app: IngestCelery,
) -> None:
    producer = MagicMock()
    events = [
        {"eventId": "e-1", "sourceKey": "hospital-a", "data": HEALTH_DATA},
        {"eventId": "e-2", "sourceKey": "hospital-a", "data": HEALTH_DATA},
    ]

    task_id = send_publish(app, events, producer=producer)

    message_call, event_call = producer.publish.call_args_list
    headers = message_call.kwargs["headers"]
    assert headers["task"] == PUBLISH
    assert headers["id"] == task_id
    assert headers["argsrepr"] == "([e-1, e-2],)"
    assert headers["kwargsrepr"] == "{'atomic': False, 'mode': 'bundle'}"
    sent_event = event_call.args[0]
    assert sent_event["type"] == "task-sent"
    assert "Jane Roe" not in repr(sent_event)
    assert "e-1" in sent_event["args"]
    # The body still carries the events: the worker needs them.
    assert message_call.args[0][0] == [events]


def test_publish_argsrepr_caps_the_ids_and_hides_odd_ones() -> None:
    many = [{"eventId": f"e-{n}"} for n in range(REPR_MAX_IDS + 5)]

    assert publish_argsrepr(many).endswith(", ... 5 more],)")
    odd = [{"data": HEALTH_DATA}, {"eventId": 42}, {"eventId": "x" * 100}, "not an event"]
    shown = publish_argsrepr(odd)
    assert shown.count("<no id>") == 3
    assert "x" * 65 not in shown
    assert "Jane" not in shown


def test_flush_poll_recover_call_the_core_with_ids(
    app: IngestCelery, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, Any, str, list[str]]] = []
    deps = object()
    monkeypatch.setattr(app, "deps", lambda: deps)

    def fake(name: str) -> Any:
        def step(d: Any, source: str, ids: list[str]) -> Any:
            calls.append((name, d, source, ids))
            return SimpleNamespace(to_dict=lambda: {"recorded": len(ids)})

        return step

    for name in ("flush", "poll", "recover"):
        monkeypatch.setattr(f"worker.pipeline.{name}", fake(name))

    app.tasks[FLUSH].run("hospital-a", ["g-1", "g-2"])
    app.tasks[POLL].run("hospital-a", ["b-1"])
    app.tasks[RECOVER].run("hospital-b", ["b-2"])

    assert calls == [
        ("flush", deps, "hospital-a", ["g-1", "g-2"]),
        ("poll", deps, "hospital-a", ["b-1"]),
        ("recover", deps, "hospital-b", ["b-2"]),
    ]


def _fail_publish(*args: Any, **kwargs: Any) -> Any:
    raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6390. Connection refused.")


def test_publish_retry_passes_the_reprs_again(
    app: IngestCelery, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(app, "deps", lambda: object())
    monkeypatch.setattr("worker.publisher.publish", _fail_publish)

    def fake_send_task(*args: Any, **kwargs: Any) -> SimpleNamespace:
        sent.append(kwargs)
        return SimpleNamespace(id="t-1-retry")

    monkeypatch.setattr(app, "send_task", fake_send_task)
    task = app.tasks[PUBLISH]
    events = [{"eventId": "e-1", "data": HEALTH_DATA}]
    task.push_request(
        id="t-1",
        args=[events],
        kwargs={},
        retries=2,
        argsrepr="([e-1],)",
        kwargsrepr="{'atomic': False, 'mode': 'bundle'}",
        called_directly=False,
    )
    try:
        with pytest.raises(Retry):
            task.run(events)
    finally:
        task.pop_request()

    (options,) = sent
    assert options["argsrepr"] == "([e-1],)"
    assert options["kwargsrepr"] == "{'atomic': False, 'mode': 'bundle'}"
    assert options["countdown"] == retry_delay_s(2)
    assert options["retries"] == 3
    assert "Jane Roe" not in options["argsrepr"]


def test_publish_gives_up_without_naming_the_events(
    app: IngestCelery, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app, "deps", lambda: object())
    monkeypatch.setattr("worker.publisher.publish", _fail_publish)
    task = app.tasks[PUBLISH]
    task.push_request(id="t-9", retries=PUBLISH_MAX_RETRIES, called_directly=False)
    try:
        with pytest.raises(PublishFailedError) as raised:
            task.run([{"eventId": "e-1", "data": HEALTH_DATA}])
    finally:
        task.pop_request()

    assert "t-9" in str(raised.value)
    assert "1 events" in str(raised.value)
    assert "Jane" not in str(raised.value)


def test_retry_delay_doubles_up_to_the_cap() -> None:
    delays = [retry_delay_s(n) for n in range(10)]

    assert delays[:4] == [0.5, 1.0, 2.0, 4.0]
    assert max(delays) == 4.0, "a Celery countdown stays a few seconds"
    assert delays == sorted(delays)

"""The tasks: stable names, late acks, ids-only reprs, thin calls into the core, publish retries."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any
from unittest.mock import MagicMock

import pytest
import redis
from celery.exceptions import Reject, Retry
from redis.exceptions import OutOfMemoryError

from worker.celery_app import IngestCelery, create_app
from worker.settings import IngestSettings
from worker.tasks import (
    FLUSH,
    POLL,
    PUBLISH,
    RECOVER,
    REPR_MAX_IDS,
    TASK_NAMES,
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
    assert options["countdown"] == retry_delay_s(app.ingest_settings, 2)
    assert options["retries"] == 3
    assert "Jane Roe" not in options["argsrepr"]


@pytest.fixture
def sent(app: IngestCelery, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What the publish task asks the broker to send (name, args, kwargs, options)."""
    messages: list[dict[str, Any]] = []

    def send_task(name: str, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        messages.append({"name": name, "args": args, "kwargs": kwargs, **options})
        return SimpleNamespace(id=f"{name}-retry")

    monkeypatch.setattr(app, "deps", lambda: object())
    monkeypatch.setattr(app, "send_task", send_task)
    return messages


def _run_publish(
    app: IngestCelery, events: list[dict[str, Any]], expected: type[Exception], **request: Any
) -> Exception:
    """Run ingest.publish as a worker would (not called directly); the exception it raised."""
    task = app.tasks[PUBLISH]
    task.push_request(args=[events], called_directly=False, **request)
    try:
        with pytest.raises(expected) as raised:
            task.run(events, atomic=False, mode="bulk")
    finally:
        task.pop_request()
    return raised.value


def test_publish_never_gives_up_and_never_names_the_events(
    app: IngestCelery, monkeypatch: pytest.MonkeyPatch, sent: list[dict[str, Any]]
) -> None:
    monkeypatch.setattr("worker.publisher.publish", _fail_publish)
    assert app.tasks[PUBLISH].max_retries is None

    raised = _run_publish(
        app, [{"eventId": "e-1", "data": HEALTH_DATA}], Retry, id="t-9", retries=10_000
    )

    (options,) = sent
    assert options["retries"] == 10_001
    assert options["countdown"] == app.ingest_settings.publish_retry_cap_ms / 1000
    assert "t-9" in str(raised)
    assert "ConnectionError" in str(raised)
    assert "Jane" not in str(raised)
    assert "Jane" not in options["argsrepr"]


def _incomplete(*args: Any, **kwargs: Any) -> Any:
    from worker.publish_report import PublishIncompleteError, PublishReport

    waiting = [{"eventId": "e-2", "sourceKey": "hospital-b", "data": HEALTH_DATA}]
    raise PublishIncompleteError(PublishReport(), waiting, {"hospital-b": 1}, {"hospital-b": "OOM"})


def test_publish_sends_again_only_the_events_that_wait(
    app: IngestCelery, monkeypatch: pytest.MonkeyPatch, sent: list[dict[str, Any]]
) -> None:
    monkeypatch.setattr("worker.publisher.publish", _incomplete)
    events = [
        {"eventId": "e-1", "sourceKey": "hospital-a", "data": HEALTH_DATA},
        {"eventId": "e-2", "sourceKey": "hospital-b", "data": HEALTH_DATA},
    ]

    raised = _run_publish(app, events, Retry, id="t-3", retries=0)

    (options,) = sent
    assert [e["eventId"] for e in options["args"][0]] == ["e-2"]
    assert options["kwargs"] == {"atomic": False, "mode": "bulk"}
    assert options["argsrepr"] == "([e-2],)"
    assert "hospital-b: 0 accepted, 0 duplicates, 0 refused, 1 waiting (OOM)" in str(raised)
    assert "Jane" not in str(raised)


def test_publish_hands_its_message_back_when_the_broker_refuses_the_retry(
    app: IngestCelery, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Celery rejects the message without requeueing it when it cannot send the retry (the same
    Redis out of memory): the events would be dropped. The task asks for a requeue instead."""
    monkeypatch.setattr(app, "deps", lambda: object())
    monkeypatch.setattr("worker.publisher.publish", _incomplete)

    def broker_full(*args: Any, **kwargs: Any) -> Any:
        raise OutOfMemoryError("command not allowed when used memory > 'maxmemory'.")

    monkeypatch.setattr(app, "send_task", broker_full)

    raised = _run_publish(
        app, [{"eventId": "e-2", "data": HEALTH_DATA}], Reject, id="t-4", retries=2
    )

    assert isinstance(raised, Reject)
    assert raised.requeue is True  # type: ignore[attr-defined]
    assert "Jane" not in repr(raised.reason)  # type: ignore[attr-defined]


def test_publish_retries_what_it_does_not_know_instead_of_failing(
    app: IngestCelery, monkeypatch: pytest.MonkeyPatch, sent: list[dict[str, Any]]
) -> None:
    def script_bug(*args: Any, **kwargs: Any) -> Any:
        raise redis.ResponseError("ERR user_script:40: attempt to index a nil value")

    monkeypatch.setattr("worker.publisher.publish", script_bug)
    events = [{"eventId": "e-1", "data": HEALTH_DATA}]

    _run_publish(app, events, Retry, id="t-5", retries=0)

    (options,) = sent
    assert options["args"][0] == events
    assert options["countdown"] == app.ingest_settings.publish_retry_base_ms / 1000


def test_retry_delay_doubles_from_the_settings_base_up_to_its_cap() -> None:
    settings = IngestSettings(publish_retry_base_ms=100, publish_retry_cap_ms=700)
    delays = [retry_delay_s(settings, n) for n in range(10)]

    assert delays[:4] == [0.1, 0.2, 0.4, 0.7]
    assert max(delays) == 0.7
    assert delays == sorted(delays)
    assert retry_delay_s(settings, 10**6) == 0.7

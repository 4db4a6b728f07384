"""The ticker: one message per source and kind, batches capped, every failure swallowed."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis

from worker.settings import IngestSettings
from worker.tasks import FLUSH, POLL, RECOVER
from worker.ticker import Ticker, TickerStep, backlog_every, chunks


@dataclass
class FakeDue:
    flush: dict[str, list[str]] = field(default_factory=dict)
    poll: dict[str, list[str]] = field(default_factory=dict)
    recover: dict[str, list[str]] = field(default_factory=dict)


class Recorder:
    """Fakes of send, claim_due and refresh_backlog that remember their calls."""

    def __init__(self, dues: list[FakeDue | Exception]) -> None:
        self.dues = dues
        self.sent: list[tuple[str, Sequence[Any], bool]] = []
        self.claims: list[int] = []
        self.refreshes = 0
        self.refresh_error: Exception | None = None
        self.send_error: Exception | None = None

    def send(self, name: str, *, args: Sequence[Any], retry: bool) -> None:
        if self.send_error is not None:
            raise self.send_error
        self.sent.append((name, args, retry))

    def claim_due(self, deps: Any, *, limit: int) -> FakeDue:
        self.claims.append(limit)
        due = self.dues.pop(0) if self.dues else FakeDue()
        if isinstance(due, Exception):
            raise due
        return due

    def refresh_backlog(self, deps: Any) -> None:
        self.refreshes += 1
        if self.refresh_error is not None:
            raise self.refresh_error


def make_ticker(
    recorder: Recorder,
    *,
    batch: int = 3,
    backlog_every: int = 4,
    clock: Callable[[], float] = lambda: 0.0,
) -> Ticker:
    return Ticker(
        deps=object(),  # type: ignore[arg-type]
        send=recorder.send,
        batch=batch,
        backlog_every=backlog_every,
        claim_due=recorder.claim_due,
        refresh_backlog=recorder.refresh_backlog,
        clock=clock,
    )


def test_tick_sends_one_message_per_source_and_kind() -> None:
    due = FakeDue(
        flush={"hospital-a": ["g-1", "g-2"], "hospital-b": ["g-9"]},
        poll={"hospital-a": ["b-1"]},
        recover={"hospital-b": ["b-7", "b-8"]},
    )
    recorder = Recorder([due])

    report = make_ticker(recorder).tick()

    assert recorder.claims == [3]
    assert sorted(recorder.sent) == sorted(
        [
            (FLUSH, ["hospital-a", ["g-1", "g-2"]], False),
            (FLUSH, ["hospital-b", ["g-9"]], False),
            (POLL, ["hospital-a", ["b-1"]], False),
            (RECOVER, ["hospital-b", ["b-7", "b-8"]], False),
        ]
    )
    assert report.sent == {FLUSH: 2, POLL: 1, RECOVER: 1}
    assert report.ids == {FLUSH: 3, POLL: 1, RECOVER: 2}
    assert not report.failed


def test_tick_splits_more_ids_than_a_batch_into_several_messages() -> None:
    recorder = Recorder([FakeDue(poll={"hospital-a": [f"b-{n}" for n in range(7)]})])

    make_ticker(recorder, batch=3).tick()

    assert [args[1] for _, args, _ in recorder.sent] == [
        ["b-0", "b-1", "b-2"],
        ["b-3", "b-4", "b-5"],
        ["b-6"],
    ]


def test_tick_with_nothing_due_sends_nothing() -> None:
    recorder = Recorder([FakeDue()])

    report = make_ticker(recorder).tick()

    assert recorder.sent == []
    assert report.sent == {}


@pytest.mark.parametrize(
    "error",
    [
        redis.ConnectionError("Error 111 connecting to 127.0.0.1:6390."),
        redis.TimeoutError("Timeout reading from socket"),
        OSError("network unreachable"),
        RuntimeError("a bug"),
    ],
    ids=["connection", "timeout", "os", "bug"],
)
def test_tick_swallows_every_exception_of_claim_due(error: Exception) -> None:
    recorder = Recorder([error, FakeDue(flush={"hospital-a": ["g-1"]})])
    ticker = make_ticker(recorder)

    first = ticker.tick()
    second = ticker.tick()

    assert first.failed
    assert not second.failed
    assert recorder.sent == [(FLUSH, ["hospital-a", ["g-1"]], False)]


def test_tick_swallows_a_failing_send() -> None:
    recorder = Recorder([FakeDue(flush={"hospital-a": ["g-1"]})])
    recorder.send_error = redis.ConnectionError("broker gone")

    report = make_ticker(recorder).tick()

    assert report.failed
    assert report.sent == {}


def test_tick_refreshes_the_backlog_every_nth_tick_even_after_a_failure() -> None:
    recorder = Recorder([RuntimeError("claim failed")] * 8)
    ticker = make_ticker(recorder, backlog_every=4)

    reports = [ticker.tick() for _ in range(8)]

    assert recorder.refreshes == 2
    assert [r.backlog_refreshed for r in reports] == [False, False, False, True] * 2


def test_tick_swallows_a_failing_backlog_refresh() -> None:
    recorder = Recorder([])
    recorder.refresh_error = redis.ConnectionError("gone")
    ticker = make_ticker(recorder, backlog_every=1)

    report = ticker.tick()

    assert report.failed
    assert not report.backlog_refreshed


def test_tick_logs_repeated_failures_at_most_once_per_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    logged: list[dict[str, Any]] = []
    monkeypatch.setattr(
        "worker.ticker.log",
        type("L", (), {"error": lambda self, *a, **k: logged.append(k), "info": _ignore})(),
    )
    now = [0.0]
    recorder = Recorder([RuntimeError("down")] * 5)
    ticker = Ticker(
        deps=object(),  # type: ignore[arg-type]
        send=recorder.send,
        batch=3,
        backlog_every=100,
        claim_due=recorder.claim_due,
        refresh_backlog=recorder.refresh_backlog,
        clock=lambda: now[0],
        error_log_interval_s=30.0,
    )

    for at in (0.0, 10.0, 29.0, 31.0, 40.0):
        now[0] = at
        ticker.tick()

    assert [entry["failed_ticks"] for entry in logged] == [1, 4]
    assert "RuntimeError: down" in logged[0]["error"]


def _ignore(*args: Any, **kwargs: Any) -> None:
    return None


def test_ticker_refuses_a_batch_below_one() -> None:
    with pytest.raises(ValueError, match="batch: must be at least 1"):
        make_ticker(Recorder([]), batch=0)


def test_chunks_keep_order_and_size() -> None:
    assert list(chunks(["a", "b", "c", "d", "e"], 2)) == [["a", "b"], ["c", "d"], ["e"]]
    assert list(chunks([], 2)) == []


def test_backlog_every_is_about_once_a_second() -> None:
    assert backlog_every(IngestSettings(tick_interval_ms=250)) == 4
    assert backlog_every(IngestSettings(tick_interval_ms=5000)) == 1


class FakeTimer:
    def __init__(self) -> None:
        self.entries: list[FakeEntry] = []

    def call_repeatedly(self, secs: float, fun: Callable[[], Any]) -> FakeEntry:
        entry = FakeEntry(secs, fun)
        self.entries.append(entry)
        return entry


@dataclass
class FakeEntry:
    secs: float
    fun: Callable[[], Any]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeConsumer:
    def __init__(self, settings: IngestSettings) -> None:
        self.app = type("App", (), {"ingest_settings": settings, "send_task": None})()
        self.timer = FakeTimer()
        self.steps: list[Any] = []


def test_ticker_step_starts_on_the_timer_and_stops_on_reconnect(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = IngestSettings(tick_interval_ms=100)
    consumer = FakeConsumer(settings)
    closed: list[bool] = []

    class StubTicker:
        def tick(self) -> None:
            return None

        def close(self) -> None:
            closed.append(True)

    monkeypatch.setattr("worker.ticker.ticker_for", lambda app, s: StubTicker())
    step = TickerStep(consumer)

    assert step.include_if(consumer)
    step.start(consumer)
    step.stop(consumer)  # a broker reconnect: stop, then start again
    step.start(consumer)
    step.shutdown(consumer)

    first, second = consumer.timer.entries
    assert first.secs == pytest.approx(0.1)
    assert first.cancelled
    assert second.cancelled
    assert closed == [True]


def test_ticker_step_is_left_out_when_disabled() -> None:
    consumer = FakeConsumer(IngestSettings(ticker_enabled=False))

    assert not TickerStep(consumer).include_if(consumer)

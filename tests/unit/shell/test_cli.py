"""`clinia-ingest` subcommands: arguments, exit codes, the per-event error report, progress."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from worker import cli
from worker.cli import EXIT_OK, EXIT_REFUSED, EXIT_UNAVAILABLE, EXIT_USAGE, main
from worker.publish_cli import LineError, Progress, publish_stream, read_lines


@dataclass
class FakeError:
    index: int
    event_id: str | None
    field: str | None
    reason: str


@dataclass
class FakeReport:
    accepted: list[Any] = field(default_factory=list)
    duplicates: list[Any] = field(default_factory=list)
    errors: list[FakeError] = field(default_factory=list)


class FakePublisher:
    """Refuses events whose `type` is `bad`; counts eventIds seen before as duplicates."""

    def __init__(self) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.seen: set[str] = set()
        self.fail_on_batch: int | None = None

    def __call__(self, events: list[dict[str, Any]], **kwargs: Any) -> FakeReport:
        if self.fail_on_batch == len(self.batches):
            raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6390.")
        self.batches.append(events)
        report = FakeReport()
        for index, event in enumerate(events):
            event_id = str(event.get("eventId"))
            if event.get("type") == "bad":
                report.errors.append(FakeError(index, event_id, "type", "unknown profile"))
            elif event_id in self.seen:
                report.duplicates.append(event_id)
            else:
                self.seen.add(event_id)
                report.accepted.append((event_id, []))
        return report


def jsonl(*lines: Any) -> bytes:
    return b"".join(
        (line if isinstance(line, bytes) else json.dumps(line).encode()) + b"\n" for line in lines
    )


def run_stream(data: bytes, batch_size: int = 2) -> tuple[Any, list[LineError], FakePublisher]:
    errors: list[LineError] = []
    publisher = FakePublisher()
    tally = publish_stream(
        io.BytesIO(data),
        publisher,
        batch_size=batch_size,
        on_error=errors.append,
        progress=Progress(io.StringIO(), None, enabled=False),
    )
    return tally, errors, publisher


def test_read_lines_skips_blank_lines_and_reports_bad_ones_by_number() -> None:
    data = jsonl({"eventId": "e-1"}) + b"\n" + b"{not json\n" + jsonl([1, 2], {"eventId": "e-2"})

    items = [(number, item) for number, _, item in read_lines(io.BytesIO(data))]

    assert [number for number, _ in items] == [1, 3, 4, 5]
    assert items[0][1] == {"eventId": "e-1"}
    assert isinstance(items[1][1], LineError)
    assert items[1][1].reason.startswith("invalid JSON: ")
    assert isinstance(items[2][1], LineError)
    assert items[2][1].reason == "expected a JSON object, got list"


def test_publish_stream_batches_and_names_line_event_field_and_reason() -> None:
    data = jsonl(
        {"eventId": "e-1", "type": "office"},
        {"eventId": "e-2", "type": "bad"},
        {"eventId": "e-3", "type": "office"},
        b"[]",
        {"eventId": "e-1", "type": "office"},
    )

    tally, errors, publisher = run_stream(data, batch_size=2)

    assert [len(batch) for batch in publisher.batches] == [2, 2]
    assert [str(error) for error in errors] == [
        "line 2: event e-2: type: unknown profile",
        "line 4: event ?: line: expected a JSON object, got list",
    ]
    assert (tally.accepted, tally.duplicates, tally.refused) == (2, 1, 2)


def test_progress_draws_a_bar_on_a_terminal_only() -> None:
    terminal = io.StringIO()
    bar = Progress(terminal, total_bytes=200, enabled=True)
    bar.update(100, 50)
    bar.finish()

    assert "[###############...............]  50% 50 events" in terminal.getvalue()
    assert terminal.getvalue().endswith("\n")

    piped = io.StringIO()
    silent = Progress(piped, total_bytes=200, enabled=False)
    silent.update(100, 50)
    silent.finish()
    assert piped.getvalue() == ""


def test_progress_counts_events_when_the_size_is_unknown() -> None:
    out = io.StringIO()
    Progress(out, total_bytes=None, enabled=True).update(10, 7)

    assert out.getvalue() == "\r7 events"


@pytest.fixture
def fake_core(monkeypatch: pytest.MonkeyPatch) -> FakePublisher:
    """The settings and the core faked: `publish` goes to a FakePublisher."""
    publisher = FakePublisher()
    monkeypatch.setattr(cli, "_settings", lambda: object())
    monkeypatch.setattr(cli, "_store", lambda settings: "store")
    monkeypatch.setattr("worker.publisher.publish", lambda deps, events, **kw: publisher(events))
    return publisher


def test_main_publish_exits_0_when_every_event_went_in(
    fake_core: FakePublisher, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(jsonl({"eventId": "e-1"}, {"eventId": "e-2"}, {"eventId": "e-1"}))

    assert main(["publish", str(path), "--batch-size", "2"]) == EXIT_OK
    out, err = capsys.readouterr()
    assert out == "published 2 events (1 duplicates), refused 0\n"
    assert err == ""


def test_main_publish_exits_1_and_reports_refused_events(
    fake_core: FakePublisher, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(jsonl({"eventId": "e-1"}, {"eventId": "e-2", "type": "bad"}))

    assert main(["publish", str(path)]) == EXIT_REFUSED
    out, err = capsys.readouterr()
    assert "refused 1" in out
    assert err == "line 2: event e-2: type: unknown profile\n"


def test_main_publish_reads_stdin(
    fake_core: FakePublisher, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stdin = io.TextIOWrapper(io.BytesIO(jsonl({"eventId": "e-1"})))
    monkeypatch.setattr("sys.stdin", stdin)

    assert main(["publish", "-"]) == EXIT_OK
    assert fake_core.batches == [[{"eventId": "e-1"}]]


def test_main_publish_exits_3_when_redis_is_unreachable(
    fake_core: FakePublisher, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_core.fail_on_batch = 1
    path = tmp_path / "events.jsonl"
    path.write_bytes(jsonl(*({"eventId": f"e-{n}"} for n in range(5))))

    assert main(["publish", str(path), "--batch-size", "2"]) == EXIT_UNAVAILABLE
    err = capsys.readouterr().err
    assert "Redis unreachable" in err
    assert "up to line 2" in err


def test_main_publish_exits_2_on_a_missing_file(
    fake_core: FakePublisher, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["publish", str(tmp_path / "nope.jsonl")]) == EXIT_USAGE
    assert "FILE: cannot read" in capsys.readouterr().err


@pytest.mark.parametrize("size", ["0", "-3", "many"])
def test_main_publish_exits_2_on_a_bad_batch_size(
    size: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["publish", "-", "--batch-size", size])

    assert exit_info.value.code == EXIT_USAGE
    assert "--batch-size" in capsys.readouterr().err


def test_main_exits_2_on_bad_settings(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("INGEST_TICK_BATCH", "lots")

    assert main(["backlog"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "INGEST_TICK_BATCH" in err
    assert "lots" not in err


def test_main_worker_passes_every_argument_to_celery(monkeypatch: pytest.MonkeyPatch) -> None:
    from worker.celery_app import app

    seen: list[list[str]] = []

    def fake_worker_main(argv: list[str]) -> None:
        seen.append(argv)
        raise SystemExit(0)

    monkeypatch.setattr(app, "worker_main", fake_worker_main)
    with pytest.raises(SystemExit):
        main(["worker", "-c", "2", "--help", "--loglevel", "INFO"])

    assert seen == [["worker", "-c", "2", "--help", "--loglevel", "INFO"]]


def test_main_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])

    out = capsys.readouterr().out
    for command in ("demo", "emulator", "worker", "publish", "status", "backlog"):
        assert command in out


@dataclass
class FakeStatus:
    status: str
    fields: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"event_id": "e-1", "status": self.status, **self.fields}


@pytest.mark.parametrize(("status", "code"), [("applied", EXIT_OK), ("unknown", EXIT_REFUSED)])
def test_main_status_prints_fields_and_exits_by_status(
    status: str,
    code: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(cli, "_settings", lambda: object())
    monkeypatch.setattr(cli, "_store", lambda settings: "store")
    found = FakeStatus(status, {"bundle_id": "b-1", "error": None})
    monkeypatch.setattr("worker.results.event_status", lambda deps, event_id: found)

    assert main(["status", "e-1"]) == code
    assert capsys.readouterr().out == f"event_id: e-1\nstatus: {status}\nbundle_id: b-1\n"

    assert main(["status", "e-1", "--json"]) == code
    assert json.loads(capsys.readouterr().out) == found.to_dict()


@dataclass
class FakeBacklog:
    total: int
    sources: dict[str, dict[str, int]]

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.total, "sources": self.sources}


def test_main_backlog_prints_the_total_first(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "_settings", lambda: object())
    monkeypatch.setattr(cli, "_store", lambda settings: "store")
    found = FakeBacklog(7, {"hospital-a": {"buffered": 5, "in_flight": 2}})
    monkeypatch.setattr("worker.results.backlog", lambda deps: found)

    assert main(["backlog"]) == EXIT_OK
    assert capsys.readouterr().out == "7\n  hospital-a: buffered=5 in_flight=2\n"
    assert main(["backlog", "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out) == found.to_dict()


def test_main_backlog_prints_0_when_all_is_done(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "_settings", lambda: object())
    monkeypatch.setattr(cli, "_store", lambda settings: "store")
    monkeypatch.setattr("worker.results.backlog", lambda deps: FakeBacklog(0, {}))

    assert main(["backlog"]) == EXIT_OK
    assert capsys.readouterr().out == "0\n"

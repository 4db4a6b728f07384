"""`clinia-ingest dlq list|show|replay|purge` and `abandon`: parsing, exit codes, JSON output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from worker import cli
from worker.abandon import AbandonResult
from worker.cli import EXIT_OK, EXIT_REFUSED, EXIT_USAGE, main
from worker.deadletters import Correction, DeadLetter, DlqFilter, ReplayItem

LETTER = DeadLetter(
    source="src-a", entry_id="5-0", event_id="e1", stage="record", error_type="NOT_FOUND",
    message="missing", failed_at_ms=5, event='{"data":{"secret":"value"}}',
)  # fmt: skip


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Stubs every tool; records what the CLI passed to it."""
    seen: dict[str, Any] = {"replay": [ReplayItem("src-a", "e1", "replayed")]}
    monkeypatch.setattr(cli, "_settings", lambda: object())
    monkeypatch.setattr(cli, "_store", lambda settings: "store")

    def list_dead_letters(store: Any, where: DlqFilter, *, limit: int) -> list[DeadLetter]:
        seen["list"] = (where, limit)
        return [LETTER]

    def show(store: Any, event_id: str, *, sources: Any) -> list[DeadLetter]:
        return [LETTER] if event_id == "e1" else []

    def replay(store: Any, where: DlqFilter, *, correction: Correction, dry_run: bool) -> Any:
        seen["replayed"] = (where, correction, dry_run)
        return seen["replay"]

    def purge(store: Any, where: DlqFilter, *, dry_run: bool) -> list[DeadLetter]:
        seen["purge"] = (where, dry_run)
        return [LETTER]

    def abandon(store: Any, ident: str) -> AbandonResult:
        if ident == "t-stale":
            return AbandonResult("abandoned", "src-a", "b1", "t-stale", 2)
        return AbandonResult("not-stale", "src-a", "b1", ident, detail="the record is sent")

    monkeypatch.setattr("worker.deadletters.list_dead_letters", list_dead_letters)
    monkeypatch.setattr("worker.deadletters.show", show)
    monkeypatch.setattr("worker.deadletters.replay", replay)
    monkeypatch.setattr("worker.deadletters.purge", purge)
    monkeypatch.setattr("worker.abandon.abandon", abandon)
    return seen


def test_cli_dlq_list_parses_filters_and_prints_json_without_payload(calls, capsys):
    code = main(["dlq", "list", "--source", "src-a", "--stage", "record", "--error-type",
                 "NOT_FOUND", "--since", "2026-01-01T00:00:00Z", "--until", "99", "--json",
                 "--limit", "7"])  # fmt: skip

    where, limit = calls["list"]
    assert code == EXIT_OK
    assert where == DlqFilter(("src-a",), "record", "NOT_FOUND", None, 1767225600000, 99)
    assert limit == 7
    printed = json.loads(capsys.readouterr().out)
    assert printed[0]["eventId"] == "e1"
    assert printed[0]["errorType"] == "NOT_FOUND"
    assert "secret" not in json.dumps(printed)


def test_cli_dlq_list_refuses_a_time_without_zone(calls, capsys):
    with pytest.raises(SystemExit) as raised:
        main(["dlq", "list", "--since", "2026-01-01T00:00:00"])

    assert raised.value.code == EXIT_USAGE
    assert "time zone" in capsys.readouterr().err


def test_cli_dlq_show_prints_the_stored_event_and_exits_1_when_unknown(calls, capsys):
    assert main(["dlq", "show", "e1", "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)[0]["event"] == {"data": {"secret": "value"}}
    assert main(["dlq", "show", "nobody"]) == EXIT_REFUSED


def test_cli_dlq_replay_reads_data_file_and_sets(calls, capsys, tmp_path: Path):
    data = tmp_path / "data.json"
    data.write_text('{"name": "Fixed"}')

    code = main(["dlq", "replay", "--event-id", "e1", "--data", str(data), "--set",
                 "data.rank=3", "--set", "data.note=plain text", "--unset", "data.colour",
                 "--dry-run", "--json"])  # fmt: skip

    where, correction, dry_run = calls["replayed"]
    assert code == EXIT_OK
    assert where.event_id == "e1"
    assert correction == Correction(
        {"name": "Fixed"}, (("data.rank", 3), ("data.note", "plain text")), ("data.colour",)
    )
    assert dry_run is True
    assert json.loads(capsys.readouterr().out)[0]["outcome"] == "replayed"


def test_cli_dlq_replay_exits_1_when_an_event_is_refused(calls, capsys):
    calls["replay"] = [ReplayItem("src-a", "e1", "refused", "the event is applied")]

    assert main(["dlq", "replay", "--event-id", "e1"]) == EXIT_REFUSED
    assert "refused: the event is applied" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--set", "novalue"], "--set: expected PATH=VALUE"),
        (["--data", "/nonexistent/file.json"], "--data: cannot read"),
    ],
)
def test_cli_dlq_replay_exits_2_on_a_bad_correction(calls, capsys, arguments, message):
    assert main(["dlq", "replay", *arguments]) == EXIT_USAGE
    assert message in capsys.readouterr().err


def test_cli_dlq_purge_dry_run_reports_a_count(calls, capsys):
    code = main(["dlq", "purge", "--stage", "publish", "--dry-run", "--json"])

    assert code == EXIT_OK
    assert calls["purge"] == (DlqFilter(stage="publish"), True)
    assert json.loads(capsys.readouterr().out)["count"] == 1


def test_cli_abandon_exits_by_result(calls, capsys):
    assert main(["abandon", "t-stale", "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["deadLetters"] == 2
    assert main(["abandon", "t-live"]) == EXIT_REFUSED
    assert "not-stale" in capsys.readouterr().err


@pytest.mark.parametrize("action", ["purge", "replay"])
def test_cli_dlq_acts_on_every_stream_only_with_all(calls, capsys, action):
    assert main(["dlq", action]) == EXIT_USAGE
    assert "--all" in capsys.readouterr().err
    assert "purge" not in calls
    assert "replayed" not in calls  # nothing was touched

    assert main(["dlq", action, "--all", "--dry-run", "--json"]) == EXIT_OK
    shown = json.loads(capsys.readouterr().out)
    expected: Any = (
        [
            {
                "detail": None,
                "entryIds": [],
                "eventId": "e1",
                "outcome": "replayed",
                "source": "src-a",
            }
        ]
        if action == "replay"
        else {"dryRun": True, "entries": [{"source": "src-a", "entryId": "5-0"}], "count": 1}
    )
    assert shown == expected


def test_cli_dlq_purge_json_of_nothing_is_still_json(calls, capsys, monkeypatch):
    monkeypatch.setattr("worker.deadletters.purge", lambda *a, **k: iter(()))

    assert main(["dlq", "purge", "--source", "src-z", "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out) == {"dryRun": False, "entries": [], "count": 0}

"""`clinia-ingest parked list|retry|abandon`: parsing, paging, dry runs, exit codes, JSON."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from worker import cli
from worker.abandon import AbandonResult, ParkedBundle, ParkedPage
from worker.cli import EXIT_OK, EXIT_REFUSED, EXIT_USAGE, main

ONE = ParkedBundle(
    source="src-a", bundle_id="b1", parked_at_ms=5, state="sending", task_id="", events=3,
    blocked=1, error="refused as a whole (501)",
)  # fmt: skip


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Stubs the store-side functions; records what the CLI passed to them."""
    seen: dict[str, Any] = {"resolved": []}
    monkeypatch.setattr(cli, "_settings", lambda: object())
    monkeypatch.setattr(cli, "_store", lambda settings: "store")

    def list_parked(store: Any, *, sources: Any = (), limit: int, offset: int = 0) -> ParkedPage:
        seen["list"] = (tuple(sources), limit, offset)
        return ParkedPage((ONE,), total=7)

    def resolve_parked(store: Any, ident: str, action: str, *, dry_run: bool = False) -> Any:
        seen["resolved"].append((ident, action, dry_run))
        if ident == "live":
            return AbandonResult("not-parked", "src-a", ident, detail="the record is sent")
        if dry_run:
            return AbandonResult("would-retry" if action == "retry" else "would-abandon", "src-a",
                                 ident, events=3)  # fmt: skip
        done = AbandonResult("retried" if action == "retry" else "abandoned", "src-a", ident)
        return replace(done, events=3)

    monkeypatch.setattr("worker.abandon.list_parked", list_parked)
    monkeypatch.setattr("worker.abandon.resolve_parked", resolve_parked)
    return seen


def test_cli_parked_list_pages_and_prints_json(calls, capsys):
    code = main(["parked", "list", "--source", "src-a", "--limit", "1", "--offset", "2", "--json"])

    assert code == EXIT_OK
    assert calls["list"] == (("src-a",), 1, 2)
    printed = json.loads(capsys.readouterr().out)
    assert printed["total"] == 7
    assert printed["parked"][0]["bundleId"] == "b1"
    assert printed["parked"][0]["blocked"] == 1


def test_cli_parked_list_text_says_what_is_left_out(calls, capsys):
    assert main(["parked", "list", "--limit", "1"]) == EXIT_OK

    out = capsys.readouterr().out
    assert "src-a b1 sending events=3 blocked=1" in out
    assert "refused as a whole (501)" in out
    assert "6 more" in out


def test_cli_parked_retry_dry_run_names_each_bundle(calls, capsys):
    code = main(["parked", "retry", "b1", "b2", "--dry-run", "--json"])

    assert code == EXIT_OK
    assert calls["resolved"] == [("b1", "retry", True), ("b2", "retry", True)]
    assert [r["code"] for r in json.loads(capsys.readouterr().out)] == ["would-retry"] * 2


def test_cli_parked_abandon_all_of_a_source_goes_through_the_listing(calls, capsys):
    code = main(["parked", "abandon", "--all", "--source", "src-a", "--limit", "5"])

    assert code == EXIT_OK
    assert calls["list"] == (("src-a",), 5, 0)
    assert calls["resolved"] == [("b1", "abandon", False)]
    assert "abandoned b1 (src-a): 3 events" in capsys.readouterr().out


def test_cli_parked_refusal_exits_1_and_usage_errors_exit_2(calls, capsys):
    assert main(["parked", "retry", "live"]) == EXIT_REFUSED
    assert "not-parked" in capsys.readouterr().err
    assert main(["parked", "retry"]) == EXIT_USAGE  # neither ids nor --all
    assert main(["parked", "abandon", "b1", "--all"]) == EXIT_USAGE
    assert calls["resolved"] == [("live", "retry", False)]

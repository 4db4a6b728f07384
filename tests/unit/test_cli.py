"""The console script parses its subcommands and returns exit codes."""

from __future__ import annotations

import pytest

from worker.cli import main


def test_main_without_command_exits_with_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2
    assert "COMMAND" in capsys.readouterr().err


def test_main_demo_drives_the_emulator_and_says_what_is_missing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "SUCCESS   provider-office office.1,provider.2" in out
    assert "additionalProperties 'UNKNOWN' not allowed" in out
    assert "office 3 does not exist" in out
    assert "ALREADY_EXISTS: record with id '2' already exists" in out
    assert "polling it with backoff" in out
    assert "Not built yet" in out


def test_main_emulator_help_lists_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["emulator", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for option in ("--host", "--port", "--config", "--api-key"):
        assert option in out

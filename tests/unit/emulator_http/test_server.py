"""The command line and the config file (nothing here opens a socket)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from emulator.__main__ import main
from emulator.auth import KEY_ENV, KEY_FILE_ENV, KeySourceError
from emulator.config import SourceMode
from emulator.server import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    ConfigFileError,
    add_arguments,
    build_app,
    load_config_file,
    run_from_args,
)


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def write(tmp_path: Path, content: object) -> Path:
    path = tmp_path / "emulator.json"
    path.write_text(json.dumps(content), encoding="utf-8")
    return path


def test_server_arguments_default_to_loopback():
    args = parse()
    assert (args.host, args.port, args.config, args.api_key) == (
        DEFAULT_HOST,
        DEFAULT_PORT,
        None,
        None,
    )
    assert DEFAULT_HOST == "127.0.0.1"


def test_server_api_key_flag_warns_it_shows_in_ps():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert "ps" in parser.format_help()


def test_server_config_file_holds_config_and_faults(tmp_path):
    path = write(
        tmp_path,
        {
            "mode": "async",
            "seed": 42,
            "faults": [{"route": "bundle", "calls": [2], "effect": {"kind": "drop"}}],
        },
    )
    config, rules = load_config_file(path)
    assert config.mode == SourceMode.ASYNC
    assert config.seed == 42
    assert [rule.calls for rule in rules] == [(2,)]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "invalid JSON"),
        ("[]", "expected a JSON object"),
        ('{"mood": "async"}', "mood: not a config field"),
        ('{"mode": "never"}', "mode"),
        ('{"faults": [{"effect": {"kind": "nope"}}]}', "faults.0.effect"),
    ],
)
def test_server_config_file_errors_name_the_file_and_field(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigFileError, match=message) as caught:
        load_config_file(path)
    assert str(path) in str(caught.value)


def test_server_missing_config_file_is_an_error(tmp_path):
    with pytest.raises(ConfigFileError, match="cannot read"):
        load_config_file(tmp_path / "absent.json")


def test_server_key_precedence_flag_env_file_config(tmp_path):
    path = write(tmp_path, {"api_key": "from-config"})
    key_file = tmp_path / "key"
    key_file.write_text("from-file\n", encoding="utf-8")

    def accepted(argv: list[str], environ: dict[str, str]) -> str:
        app = build_app(parse(*argv), environ)
        return app.context.config.api_key.get_secret_value()

    config_args = ["--config", str(path)]
    assert accepted(config_args, {}) == "from-config"
    assert accepted(config_args, {KEY_FILE_ENV: str(key_file)}) == "from-file"
    assert accepted(config_args, {KEY_ENV: "from-env"}) == "from-env"
    assert accepted([*config_args, "--api-key", "from-flag"], {KEY_ENV: "x"}) == "from-flag"
    assert accepted([], {}) == "emulator-key"


def test_server_build_app_loads_the_fault_rules(tmp_path):
    path = write(tmp_path, {"faults": [{"id": "x", "effect": {"kind": "drop"}}]})
    app = build_app(parse("--config", str(path)), {})
    assert [rule["id"] for rule in app.context.faults.describe()] == ["x"]


def test_server_build_app_refuses_an_unknown_route_name(tmp_path):
    path = write(tmp_path, {"faults": [{"route": "bundel", "effect": {"kind": "drop"}}]})
    with pytest.raises(ConfigFileError, match="bundel"):
        build_app(parse("--config", str(path)), {})


def test_server_build_app_refuses_conflicting_key_sources():
    with pytest.raises(KeySourceError, match="not both"):
        build_app(parse(), {KEY_ENV: "a", KEY_FILE_ENV: "/b"})


def test_server_run_from_args_exits_2_on_a_bad_config(tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_text("{", encoding="utf-8")
    assert run_from_args(parse("--config", str(path))) == 2
    assert "invalid JSON" in capsys.readouterr().err


def test_server_module_main_uses_the_same_arguments(tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_text('{"nonsense": 1}', encoding="utf-8")
    assert main(["--config", str(path)]) == 2
    assert "nonsense" in capsys.readouterr().err


def test_server_errors_never_show_the_key(monkeypatch, capsys):
    monkeypatch.setenv(KEY_ENV, "")
    assert run_from_args(parse()) == 2
    err = capsys.readouterr().err
    assert KEY_ENV in err
    assert "empty" in err

"""docker-compose.yml is valid against the Compose specification, and keeps our operating rules."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[3]


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def _compose_schema() -> dict[str, Any]:
    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    schema: dict[str, Any] = json.loads(vendor.joinpath("compose-spec.json").read_text())
    return schema


def test_compose_file_matches_the_compose_spec() -> None:
    jsonschema.validate(_compose(), _compose_schema())


def test_compose_schema_refuses_a_broken_file() -> None:
    broken = _compose()
    broken["services"]["redis"]["restart_policy"] = "always"  # not a service key
    schema = _compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    messages = [error.message for error in validator.iter_errors(broken)]
    assert any("restart_policy" in message for message in messages)


def test_compose_redis_never_evicts() -> None:
    command = _compose()["services"]["redis"]["command"]
    assert "noeviction" in command
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"


def test_compose_passes_secrets_as_files_only() -> None:
    for name, service in _compose()["services"].items():
        environment = service.get("environment", {})
        assert "CLINIA_API_KEY" not in environment, name
        for key in environment:
            assert not key.endswith(("_KEY", "_PASSWORD")), f"{name}: {key} should be a *_FILE"


def test_compose_build_context_has_the_dockerfile() -> None:
    build = _compose()["services"]["emulator"]["build"]
    assert (ROOT / build["context"] / build["dockerfile"]).is_file()


def test_compose_worker_stops_within_its_grace_period() -> None:
    worker = _compose()["services"]["worker"]
    assert worker["environment"]["REMAP_SIGTERM"] == "SIGQUIT"
    grace_s = int(worker["stop_grace_period"].removesuffix("s"))
    from worker.settings import IngestSettings

    soft_shutdown_s = IngestSettings.model_fields["soft_shutdown_timeout_s"].default
    assert soft_shutdown_s < grace_s


def test_compose_exposes_ports_on_loopback_only() -> None:
    for name, service in _compose()["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"

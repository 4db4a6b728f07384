"""`IngestSettings` and `read_settings`: names, `*_FILE` secrets, validation, no secret leaks."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from worker.domain.bulk import BulkCaps
from worker.pipeline import build_deps
from worker.settings import ENV_NAMES, IngestSettings, SettingsError, read_settings

SECRET = "s3cr3t-value-never-shown"


def test_settings_read_every_variable_under_its_documented_name():
    settings = read_settings(
        {
            "CLINIA_BASE_URL": "http://127.0.0.1:9999/",
            "CLINIA_API_KEY": SECRET,
            "INGEST_REDIS_URL": "redis://:pw@127.0.0.1:6380/2",
            "INGEST_LINGER_MS": "250",
            "INGEST_TICKER_ENABLED": "false",
            "INGEST_COALESCE_MODE": "strict",
        }
    )

    assert settings.base_url == "http://127.0.0.1:9999"
    assert settings.api_key.get_secret_value() == SECRET
    assert settings.redis_url.get_secret_value() == "redis://:pw@127.0.0.1:6380/2"
    assert settings.linger_ms == 250
    assert settings.ticker_enabled is False
    assert settings.coalesce_mode == "strict"
    assert settings.effective_broker_url == settings.redis_url


def test_settings_every_field_has_an_environment_name():
    assert set(ENV_NAMES) == set(IngestSettings.model_fields)
    assert ENV_NAMES["base_url"] == "CLINIA_BASE_URL"
    assert ENV_NAMES["api_key"] == "CLINIA_API_KEY"
    assert ENV_NAMES["claim_ttl_ms"] == "INGEST_CLAIM_TTL_MS"


def test_settings_read_a_secret_from_its_file_variant(tmp_path: Path):
    key_file = tmp_path / "key"
    key_file.write_text(SECRET + "\n", encoding="utf-8")

    settings = read_settings({"CLINIA_API_KEY_FILE": str(key_file)})

    assert settings.api_key.get_secret_value() == SECRET


def test_settings_refuse_a_secret_set_both_ways_naming_the_variables(tmp_path: Path):
    key_file = tmp_path / "key"
    key_file.write_text(SECRET, encoding="utf-8")

    with pytest.raises(SettingsError) as caught:
        read_settings({"CLINIA_API_KEY": SECRET, "CLINIA_API_KEY_FILE": str(key_file)})

    assert "CLINIA_API_KEY and CLINIA_API_KEY_FILE" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_settings_error_names_the_variable_never_the_value():
    with pytest.raises(SettingsError) as caught:
        read_settings({"INGEST_REDIS_URL": f"http://user:{SECRET}@host/0"})

    assert "INGEST_REDIS_URL" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_settings_unreadable_file_is_named(tmp_path: Path):
    with pytest.raises(SettingsError, match="INGEST_REDIS_URL_FILE"):
        read_settings({"INGEST_REDIS_URL_FILE": str(tmp_path / "missing")})


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"claim_ttl_ms": 60_000, "http_deadline_s": 60}, "claim_ttl_ms"),
        ({"task_time_limit_s": 100, "claim_ttl_ms": 120_000}, "task_time_limit_s"),
        ({"visibility_timeout_s": 300, "task_time_limit_s": 360}, "visibility_timeout_s"),
        ({"task_soft_time_limit_s": 400}, "task_soft_time_limit_s"),
        ({"linger_ms": 10, "max_age_ms": 5}, "max_age_ms"),
    ],
)
def test_settings_durations_that_contradict_each_other_are_refused(overrides, field):
    with pytest.raises(ValidationError, match=field):
        IngestSettings(**overrides)


def test_settings_fast_profile_is_valid():
    settings = IngestSettings(
        linger_ms=20, max_age_ms=200, claim_ttl_ms=3000, poll_first_ms=20, poll_cap_ms=200,
        http_deadline_s=2,
    )  # fmt: skip
    assert settings.claim_ttl_ms > settings.http_deadline_s * 1000


def test_settings_never_show_secrets():
    settings = IngestSettings(
        api_key=SecretStr(SECRET), redis_url=SecretStr(f"redis://:{SECRET}@127.0.0.1:6379/0")
    )

    assert SECRET not in repr(settings)
    assert SECRET not in str(settings)
    assert SECRET not in str(settings.client_config())


def test_settings_client_config_returns_throttles_and_fits_the_deadline():
    config = IngestSettings(api_key=SecretStr(SECRET), http_deadline_s=2).client_config()

    assert config.retry.on_throttle == "return"
    assert config.retry.deadline_s + config.connect_timeout_s + config.read_timeout_s <= 2


def test_settings_client_config_without_a_key_is_refused_clearly():
    with pytest.raises(SettingsError, match="CLINIA_API_KEY"):
        IngestSettings().client_config()


def test_settings_are_frozen():
    with pytest.raises(ValidationError):
        IngestSettings().linger_ms = 5  # type: ignore[misc]


def test_settings_bulk_caps_default_to_the_planner_defaults():
    assert IngestSettings().bulk_caps() == BulkCaps()


def test_settings_bulk_caps_are_read_from_their_variables_and_reach_the_deps():
    settings = read_settings(
        {
            "CLINIA_BASE_URL": "http://127.0.0.1:1",
            "CLINIA_API_KEY": SECRET,
            "INGEST_REDIS_URL": "redis://127.0.0.1:1/0",
            "INGEST_MAX_BULK_OPS": "7",
            "INGEST_MAX_BULK_BYTES": "4096",
        }
    )

    deps = build_deps(settings)  # connects to nothing until used

    assert settings.bulk_caps() == BulkCaps(max_operations=7, max_bytes=4096)
    assert deps.bulk_caps == settings.bulk_caps()
    deps.close()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("INGEST_MAX_BULK_OPS", "0"),
        ("INGEST_MAX_BULK_OPS", "many"),
        ("INGEST_MAX_BULK_BYTES", "999"),
        ("INGEST_MAX_BULK_BYTES", "5000000001"),
    ],
)
def test_settings_bulk_caps_out_of_range_are_refused_naming_the_variable(variable, value):
    with pytest.raises(SettingsError, match=variable):
        read_settings({variable: value})

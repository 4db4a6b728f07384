"""Logging keeps secrets and event payloads out, in our structlog events and in stdlib records."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
import structlog
from pydantic import SecretStr

from worker.logging import (
    REDACTED,
    RedactingFilter,
    Redactor,
    configure_structlog,
    install_filter,
    mask_url_passwords,
    url_password,
)

API_KEY = "sk-live-0123456789abcdef"
REDIS_PASSWORD = "p4ss-w0rd-xyz"


def test_mask_url_passwords_masks_the_password_and_keeps_host_and_user() -> None:
    text = f"lost redis://ingest:{REDIS_PASSWORD}@redis.internal:6379/0 and rediss://:pw1234@h:1/2"

    masked = mask_url_passwords(text)

    assert REDIS_PASSWORD not in masked
    assert "pw1234" not in masked
    assert f"redis://ingest:{REDACTED}@redis.internal:6379/0" in masked
    assert f"rediss://:{REDACTED}@h:1/2" in masked


def test_mask_url_passwords_leaves_urls_without_password_alone() -> None:
    text = "redis://127.0.0.1:6379/0 http://user@host/x"

    assert mask_url_passwords(text) == text


def test_url_password_decodes_the_password() -> None:
    assert url_password("redis://:a%40b%3Ac@h:1/0") == "a@b:c"
    assert url_password("redis://h:1/0") is None


def test_redactor_processor_redacts_secret_keys_and_known_values() -> None:
    redactor = Redactor([API_KEY, REDIS_PASSWORD])
    event = {
        "event": f"request failed with key {API_KEY}",
        "api_key": "anything at all",
        "Authorization": "Bearer abc",
        "settings_password": SecretStr("x"),
        "note": f"password was {REDIS_PASSWORD}",
        "secret_holder": SecretStr("hidden"),
        "source": "hospital-a",
    }

    out = redactor(None, "info", event)

    assert out["api_key"] == REDACTED
    assert out["Authorization"] == REDACTED
    assert out["settings_password"] == REDACTED
    assert out["secret_holder"] == REDACTED
    assert API_KEY not in out["event"]
    assert REDIS_PASSWORD not in out["note"]
    assert out["source"] == "hospital-a"


def test_redactor_processor_drops_event_payloads_and_keeps_counts() -> None:
    redactor = Redactor()
    health_data = {"name": "Jane Roe", "diagnosis": "confidential"}
    event = {
        "event": "published",
        "events": [{"eventId": "e-1", "data": health_data}, {"eventId": "e-2"}],
        "data": health_data,
        "nested": {"body": {"data": health_data}, "ids": ["e-1", "e-2"]},
    }

    out = redactor(None, "info", event)

    rendered = repr(out)
    assert "Jane Roe" not in rendered
    assert "confidential" not in rendered
    assert out["events"] == "<2 items omitted>"
    assert out["data"] == "<payload omitted>"
    assert out["nested"]["ids"] == ["e-1", "e-2"]


def test_redactor_short_secrets_are_not_searched_in_text() -> None:
    redactor = Redactor(["ab"])

    assert redactor.text("a table about abc") == "a table about abc"


def test_redactor_scrubs_exceptions_and_deep_values() -> None:
    redactor = Redactor([API_KEY])
    deep = {"a": {"b": {"c": {"d": {"e": "too deep"}}}}}

    out = redactor(None, "error", {"error": ValueError(f"bad {API_KEY}"), "deep": deep})

    assert out["error"] == f"ValueError: bad {REDACTED}"
    assert "too deep" not in repr(out["deep"])


@pytest.fixture
def captured_logger() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("tests.shell.redaction")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    install_filter([handler], Redactor([API_KEY, REDIS_PASSWORD]))
    yield logger, stream
    logger.removeHandler(handler)
    logger.propagate = True


def test_redacting_filter_scrubs_stdlib_messages_and_arguments(
    captured_logger: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured_logger

    logger.error("Cannot connect to %s: key %s", f"redis://:{REDIS_PASSWORD}@h:1/0", API_KEY)

    written = stream.getvalue()
    assert REDIS_PASSWORD not in written
    assert API_KEY not in written
    assert f"Cannot connect to redis://:{REDACTED}@h:1/0: key {REDACTED}" in written


def test_redacting_filter_scrubs_tracebacks(
    captured_logger: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured_logger

    try:
        raise RuntimeError(f"boom with {API_KEY}")
    except RuntimeError:
        logger.exception("task failed")

    written = stream.getvalue()
    assert "RuntimeError: boom with" in written
    assert API_KEY not in written


def test_install_filter_adds_one_filter_per_handler() -> None:
    handler = logging.StreamHandler(io.StringIO())
    redactor = Redactor()

    install_filter([handler], redactor)
    install_filter([handler], redactor)

    assert sum(isinstance(f, RedactingFilter) for f in handler.filters) == 1


def test_configure_structlog_routes_scrubbed_events_to_stdlib(
    captured_logger: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured_logger
    configure_structlog(Redactor([API_KEY]))
    try:
        structlog.stdlib.get_logger(logger.name).warning(
            "submit failed", source="hospital-a", api_key=API_KEY, data={"name": "Jane Roe"}
        )
    finally:
        structlog.reset_defaults()

    written = stream.getvalue()
    assert "submit failed" in written
    assert "source='hospital-a'" in written
    assert API_KEY not in written
    assert "Jane Roe" not in written

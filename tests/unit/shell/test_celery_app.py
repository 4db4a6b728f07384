"""The Celery app: settings chosen on purpose, steps registered, secrets masked, start refused."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import structlog

from worker import celery_app as celery_app_module
from worker.celery_app import (
    EX_CONFIG,
    QUEUE,
    IngestCelery,
    StartupChecks,
    celery_config,
    create_app,
    startup_problems,
)
from worker.logging import RedactingFilter
from worker.settings import IngestSettings
from worker.ticker import TickerStep

PROJECT_ROOT = Path(__file__).resolve().parents[3]
PASSWORD = "s3cret-redis-pass"


def make_settings(**overrides: Any) -> IngestSettings:
    values: dict[str, Any] = {
        "redis_url": f"redis://:{PASSWORD}@127.0.0.1:6390/0",
        "api_key": "unit-test-key",
        "visibility_timeout_s": 900.0,
        "task_time_limit_s": 400.0,
        "task_soft_time_limit_s": 350.0,
        "soft_shutdown_timeout_s": 15.0,
    }
    values.update(overrides)
    return IngestSettings(**values)


def test_celery_config_sets_the_reliability_choices() -> None:
    config = celery_config(make_settings())

    assert config["task_acks_late"] is True
    assert config["task_reject_on_worker_lost"] is True
    assert config["worker_prefetch_multiplier"] == 1
    assert config["worker_disable_prefetch"] is True
    assert config["task_ignore_result"] is True
    assert config["worker_send_task_events"] is True
    assert config["task_send_sent_event"] is True
    assert config["broker_connection_retry_on_startup"] is True
    assert config["task_serializer"] == "json"
    assert config["accept_content"] == ["json"]
    assert config["task_default_queue"] == QUEUE


def test_celery_config_takes_durations_from_the_settings() -> None:
    config = celery_config(make_settings(), broker_socket_timeout_s=7.0)

    assert config["broker_transport_options"]["visibility_timeout"] == 900.0
    assert config["broker_transport_options"]["socket_timeout"] == 7.0
    assert config["task_time_limit"] == 400.0
    assert config["task_soft_time_limit"] == 350.0
    assert config["worker_soft_shutdown_timeout"] == 15.0
    assert "worker_concurrency" not in config
    assert celery_config(make_settings(worker_concurrency=3))["worker_concurrency"] == 3


def test_celery_config_keeps_the_timing_chain() -> None:
    settings = make_settings()
    config = celery_config(settings)

    visibility = config["broker_transport_options"]["visibility_timeout"]
    assert settings.http_deadline_s < settings.claim_ttl_ms / 1000
    assert settings.claim_ttl_ms / 1000 < config["task_time_limit"] < visibility
    assert config["task_soft_time_limit"] < config["task_time_limit"]


def test_celery_config_uses_the_broker_url_when_given() -> None:
    settings = make_settings(broker_url="redis://127.0.0.1:6391/3")

    assert celery_config(settings)["broker_url"] == "redis://127.0.0.1:6391/3"
    assert celery_config(make_settings())["broker_url"].endswith("@127.0.0.1:6390/0")


def test_create_app_applies_the_config_lazily() -> None:
    app = create_app(make_settings())

    assert app.conf.task_acks_late is True
    assert app.conf.worker_disable_prefetch is True
    assert app.conf.task_default_queue == QUEUE


def test_create_app_registers_the_ticker_and_the_startup_checks() -> None:
    app = create_app(make_settings())

    assert TickerStep in app.steps["consumer"]
    assert StartupChecks in app.steps["worker"]


def test_create_app_masks_the_broker_password_where_celery_shows_it() -> None:
    app = create_app(make_settings())

    assert PASSWORD not in app.connection_for_write().as_uri()  # the banner and reconnect logs
    assert PASSWORD not in app.conf.humanize(with_defaults=False, censored=True)  # inspect conf
    assert PASSWORD not in repr(app)


def test_ingest_celery_deps_are_built_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[IngestSettings] = []
    pid = [100]

    def fake_build_deps(settings: IngestSettings, **_: object) -> object:
        built.append(settings)
        return object()

    monkeypatch.setattr("worker.pipeline.build_deps", fake_build_deps)
    monkeypatch.setattr("worker.celery_app.os.getpid", lambda: pid[0])
    app = create_app(make_settings())

    first, again = app.deps(), app.deps()
    pid[0] = 200  # as in a pool child after the fork
    after_fork = app.deps()

    assert first is again
    assert after_fork is not first
    assert len(built) == 2


def test_import_worker_celery_app_reads_no_settings_and_connects_nowhere() -> None:
    # A settings variable that would fail if read: the import must not read it.
    code = (
        "import socket, sys\n"
        "def refuse(*a, **k): raise AssertionError('connected at import')\n"
        "socket.socket.connect = refuse\n"
        "import worker\n"
        "app = worker.app\n"
        "assert app._ingest_settings is None, 'settings read at import'\n"
        "assert 'worker.pipeline' not in sys.modules\n"
        "print(type(app).__name__)\n"
    )
    env = {"PATH": "/usr/bin:/bin", "INGEST_CLAIM_TTL_MS": "not a number"}
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env=env,
        check=False,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "IngestCelery"


def test_worker_package_exports_app_lazily() -> None:
    import worker

    assert "app" in worker.__all__
    assert "app" in dir(worker)
    assert isinstance(worker.app, IngestCelery)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = worker.nothing


def test_startup_problems_reports_the_eviction_policy_of_each_redis(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[str] = []

    def fake_problem(settings: IngestSettings, url: str) -> str | None:
        seen.append(url)
        return "maxmemory-policy is allkeys-lru, must be noeviction" if "6391" in url else None

    monkeypatch.setattr(celery_app_module, "_eviction_problem", fake_problem)
    settings = make_settings(broker_url="redis://127.0.0.1:6391/0")

    problems = startup_problems(settings)

    assert len(seen) == 2
    assert problems == ["INGEST_BROKER_URL: maxmemory-policy is allkeys-lru, must be noeviction"]


def test_startup_problems_checks_one_redis_when_the_broker_is_the_store(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[str] = []

    def fake_problem(settings: IngestSettings, url: str) -> str | None:
        seen.append(url)
        return None

    monkeypatch.setattr(celery_app_module, "_eviction_problem", fake_problem)

    assert startup_problems(make_settings()) == []
    assert len(seen) == 1


def test_startup_checks_refuse_to_start_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    problem = f"cannot check maxmemory-policy: redis://:{PASSWORD}@127.0.0.1:6390/0 refused"
    monkeypatch.setattr(celery_app_module, "startup_problems", lambda settings: [problem])
    app = create_app(make_settings())

    class FakeWorker:
        pass

    worker = FakeWorker()
    worker.app = app  # type: ignore[attr-defined]
    with pytest.raises(SystemExit) as exit_info:
        StartupChecks(worker).create(worker)

    assert exit_info.value.code == EX_CONFIG
    err = capsys.readouterr().err
    assert "refuses to start" in err
    assert "cannot check maxmemory-policy" in err
    assert PASSWORD not in err


def test_on_logging_ready_scrubs_celery_handlers_and_routes_structlog_there() -> None:
    app = create_app(make_settings(api_key="sk-very-secret-key"))
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    celery_logger = logging.getLogger("tests.shell.celery")
    celery_logger.addHandler(handler)
    celery_logger.propagate = False
    try:
        app.on_logging_ready(logger=celery_logger)
        structlog.stdlib.get_logger("tests.shell.celery").error(
            "refused", url=f"redis://:{PASSWORD}@h:1/0", note="key sk-very-secret-key"
        )
        celery_logger.error("Cannot connect to redis://:%s@h:1/0", PASSWORD)
    finally:
        celery_logger.removeHandler(handler)
        celery_logger.propagate = True
        for root_handler in logging.getLogger().handlers:
            for found in [f for f in root_handler.filters if isinstance(f, RedactingFilter)]:
                root_handler.removeFilter(found)
        structlog.reset_defaults()

    written = stream.getvalue()
    assert any(isinstance(f, RedactingFilter) for f in handler.filters)
    assert "refused" in written
    assert "Cannot connect to redis://" in written
    assert PASSWORD not in written
    assert "sk-very-secret-key" not in written

"""`worker.publish` and `worker.status`, as a producer in Python uses them, on a real Redis."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

import worker
import worker.producer
from worker.producer import open_store
from worker.settings import IngestSettings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]


def test_worker_publish_reads_settings_from_the_environment(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INGEST_REDIS_URL", redis_url)
    monkeypatch.setattr(worker.producer, "_cached", None)  # built from this environment
    event = {"eventId": "p-1", "sourceKey": "hospital-a", "target": "resource",
             "action": "CREATE", "type": "provider", "ref": "new-1",
             "data": {"name": "Jane Roe"}}  # fmt: skip

    report = worker.publish([event, {"eventId": "bad", "sourceKey": "hospital-a"}])

    assert [accepted.event_id for accepted in report.accepted] == ["p-1"]
    assert report.accepted[0].assigned_id is not None
    assert [refused.event_id for refused in report.errors] == ["bad"]
    assert worker.status("p-1").status == "pending"
    assert worker.status("never-published").status == "unknown"


def test_worker_publish_with_an_explicit_store_ignores_the_environment(redis_url: str) -> None:
    store = open_store(IngestSettings(redis_url=SecretStr(redis_url)))
    event = {"eventId": "u-1", "sourceKey": "hospital-b", "target": "resource",
             "action": "UPSERT", "type": "office", "id": "1",
             "data": {"name": "Clinic"}}  # fmt: skip

    again = worker.publish([event], store=store)
    duplicate = worker.publish([event], store=store)

    assert [accepted.event_id for accepted in again.accepted] == ["u-1"]
    assert [seen.event_id for seen in duplicate.duplicates] == ["u-1"]
    assert worker.status("u-1", store=store).status == "pending"


def test_worker_publish_imports_no_celery() -> None:
    code = "import sys, worker; worker.publish; assert 'celery' not in sys.modules"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr

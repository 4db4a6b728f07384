"""The pipeline's face: the names the Celery side is built against, and no secret in a repr."""

from __future__ import annotations

import inspect

from pydantic import SecretStr

from worker import pipeline, publisher, results
from worker.settings import IngestSettings

KEY = "api-key-never-shown"
PASSWORD = "redis-password-never-shown"


def test_face_exports_the_contracted_names():
    for name in ("Deps", "build_deps", "flush", "poll", "recover", "claim_due", "run_due",
                 "refresh_backlog"):  # fmt: skip
        assert name in pipeline.__all__
    assert list(inspect.signature(pipeline.flush).parameters) == ["deps", "source", "groups"]
    assert list(inspect.signature(pipeline.poll).parameters) == ["deps", "source", "bundle_ids"]
    assert list(inspect.signature(pipeline.recover).parameters) == [
        "deps",
        "source",
        "bundle_ids",
    ]
    assert inspect.signature(pipeline.claim_due).parameters["limit"].kind.name == "KEYWORD_ONLY"
    assert inspect.signature(pipeline.run_due).parameters["limit"].default == 1000
    assert set(inspect.signature(publisher.publish).parameters) == {
        "target",
        "events",
        "atomic",
        "mode",
    }
    assert callable(results.event_status)
    assert callable(results.backlog)


def test_face_build_deps_connects_to_nothing_and_shows_no_secret():
    settings = IngestSettings(
        base_url="http://127.0.0.1:1",
        api_key=SecretStr(KEY),
        redis_url=SecretStr(f"redis://:{PASSWORD}@127.0.0.1:1/0"),
    )

    deps = pipeline.build_deps(settings)

    shown = " ".join(
        [repr(deps), str(deps), repr(deps.store), repr(deps.client), repr(deps.store.client)]
    )
    assert KEY not in shown
    assert PASSWORD not in shown
    deps.close()

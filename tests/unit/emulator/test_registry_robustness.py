"""The facade never raises on bad input, answers JSON, and keeps its state whole across threads."""

from __future__ import annotations

import json
import threading
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator.config import EmulatorConfig
from emulator.registry import Registry, Reply
from tests.unit.emulator.conftest import FakeClock
from tests.unit.emulator.ops import office, provider, rel

KEYS = st.sampled_from(
    [
        "action",
        "create",
        "upsert",
        "delete",
        "type",
        "id",
        "data",
        "from",
        "to",
        "meta",
        "operations",
        "resourceOperations",
        "relationshipOperations",
        "name",
        "collectionType",
        "collectionKey",
        "properties",
        "rules",
        "items",
        "CREATE",
        "office",
        "provider",
    ]
)
SCALARS = st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=False) | KEYS
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=12,
)
STRUCTURED = st.sampled_from(
    [office("1"), provider("2"), rel("CREATE", "1", "2"), {"action": "DELETE", "delete": {}}]
)


def _calls(registry: Registry, body: Any) -> list[Reply]:
    return [
        registry.bundle("s", body, raw_size=10),
        registry.bundle(
            "s", {"resourceOperations": [body], "relationshipOperations": [body]}, raw_size=10
        ),
        registry.bulk("s", "resources", {"operations": [body]}, raw_size=10),
        registry.bulk("s", "relationships", body, raw_size=10),
        registry.create_resource("s", "office", body),
        registry.upsert_resource("s", "provider", "2", body),
        registry.create_relationship("s", "provider-office", body),
        registry.purge("s", body),
        registry.put_profile("s", "clinic", body),
        registry.put_relationship_definition("s", "clinic-office", body),
        registry.create_source("s", body),
    ]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=JSON_VALUES | STRUCTURED)
def test_registry_answers_any_body_with_a_json_reply(body: Any) -> None:
    registry = Registry(EmulatorConfig(task_pending_polls=0), clock=FakeClock())

    for reply in _calls(registry, body):
        assert isinstance(reply.status, int)
        assert 200 <= reply.status < 600
        json.dumps(reply.body)
        if reply.status >= 400 and "code" in reply.body:
            assert reply.body["code"] == reply.status
            assert isinstance(reply.body["details"], list)
    json.dumps(registry.snapshot("s"))


def test_registry_keeps_every_write_under_concurrent_calls() -> None:
    registry = Registry(EmulatorConfig(), clock=FakeClock())
    errors: list[BaseException] = []

    def writer(prefix: str) -> None:
        try:
            for n in range(50):
                reply = registry.upsert_resource("s", "provider", f"{prefix}-{n}", {"data": {}})
                assert reply.status == 200
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(f"t{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert registry.counts()["s"]["resources"] == 200
    assert [entry["seq"] for entry in registry.write_log()] == list(range(1, 201))
    assert len(set(registry.task_ids_of("s"))) == 200

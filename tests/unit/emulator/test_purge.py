"""Purge: accepted, processed like a task, resources take their relationships along."""

from __future__ import annotations

from typing import Any

import pytest

from emulator.registry import Registry
from tests.unit.emulator.conftest import RegistryFactory
from tests.unit.emulator.ops import bundle, office, provider, rel


def _seeded(registry: Registry) -> None:
    reply = registry.bundle(
        "s",
        bundle(
            [office("1"), office("5"), provider("2")],
            [rel("CREATE", "1", "2"), rel("CREATE", "5", "2")],
        ),
        raw_size=10,
    )
    assert reply.status == 200


def test_purge_answers_accepted_with_the_purge_operation(registry: Registry) -> None:
    _seeded(registry)

    reply = registry.purge("s", {"collectionType": "resources", "collectionKey": "office"})

    assert reply.status == 202
    task_id = reply.body["taskId"]
    assert task_id.startswith("pg_")
    assert reply.body["status"] == "ACCEPTED"
    assert reply.body["purgeOperation"] == {
        "taskId": task_id,
        "purgeId": "purge:" + task_id.removeprefix("pg_"),
        "collectionType": "resources",
        "collectionKey": "office",
        "status": "PENDING",
        "deletedCount": 0,
        "createdAt": "2024-11-27T15:43:09.438665Z",
        "updatedAt": "2024-11-27T15:43:09.438665Z",
    }


def test_purge_resources_cascades_to_their_relationships(registry: Registry) -> None:
    _seeded(registry)
    task_id = registry.purge("s", {"collectionType": "resources", "collectionKey": "office"}).body[
        "taskId"
    ]

    first = registry.purge_status("s", task_id).body
    second = registry.purge_status("s", task_id).body

    assert first["status"] == "PENDING"
    assert second["status"] == "SUCCESS"
    assert second["deletedCount"] == 2
    snapshot = registry.snapshot("s")
    assert [r["type"] for r in snapshot["resources"]] == ["provider"]
    assert snapshot["relationships"] == []


def test_purge_relationships_leaves_resources(make_registry: RegistryFactory) -> None:
    registry = make_registry(task_pending_polls=0)
    _seeded(registry)

    task_id = registry.purge(
        "s", {"collectionType": "relationships", "collectionKey": "provider-office"}
    ).body["taskId"]

    assert registry.purge_status("s", task_id).body["deletedCount"] == 2
    assert len(registry.snapshot("s")["resources"]) == 3
    assert registry.snapshot("s")["relationships"] == []


def test_purge_status_accepts_the_deprecated_form(make_registry: RegistryFactory) -> None:
    registry = make_registry(task_pending_polls=0)
    reply = registry.purge("s", {"collectionType": "resources", "collectionKey": "office"})
    deprecated = reply.body["purgeOperation"]["purgeId"]

    assert deprecated.startswith("purge:")
    assert registry.purge_status("s", deprecated).body["taskId"] == reply.body["taskId"]
    task = registry.task_status("s", deprecated, with_receipts=True).body
    assert task == {"status": "SUCCESS", "taskId": reply.body["taskId"], "receipts": []}


def test_purge_unknown_id_is_404(registry: Registry) -> None:
    assert registry.purge_status("s", "pg_nothing").status == 404


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"collectionType": "tables", "collectionKey": "office"}, 400),
        ({"collectionType": "resources"}, 400),
        ({"collectionType": "resources", "collectionKey": "clinic"}, 404),
        ({"collectionType": "objects", "collectionKey": "files"}, 501),
        ({"collectionType": "resources", "collectionKey": "office", "force": True}, 400),
    ],
)
def test_purge_refuses_bad_requests(registry: Registry, body: dict[str, Any], status: int) -> None:
    assert registry.purge("s", body).status == status

"""TaskRef: every documented id form, its kind and poll route, and its stored forms."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from api_client.errors import InvalidPathSegmentError
from api_client.tasks import IssuedBy, PollRoute, TaskKind, TaskRef

SOURCE = "hospital-a"


@pytest.mark.parametrize(
    ("task_id", "kind", "route", "route_id"),
    [
        ("s_2pUv7EdiOrKlphAYBtTKF0TwCM9", TaskKind.SINGLE, PollRoute.TASKS, None),
        ("bk_2wil2vg5uqi08x1aet097gLW8DO", TaskKind.BULK, PollRoute.TASKS, None),
        ("bd_2pUv7AQvsnalGn8I4RsBdKID8OR", TaskKind.BUNDLE, PollRoute.TASKS, None),
        ("pg_2pUv7AQvsnalGn8I4RsBdKID8OR", TaskKind.PURGE, PollRoute.PURGE, None),
        ("purge:2pUv7AQvsnal", TaskKind.PURGE, PollRoute.PURGE, "2pUv7AQvsnal"),
    ],
)
def test_task_ref_reads_the_kind_and_route_from_the_prefix(
    task_id: str, kind: TaskKind, route: PollRoute, route_id: str | None
) -> None:
    ref = TaskRef(SOURCE, task_id)
    assert ref.kind is kind
    assert ref.poll_route is route
    assert ref.route_id == (task_id if route_id is None else route_id)
    assert ref.source_key == SOURCE


@pytest.mark.parametrize(
    ("issued_by", "kind", "route"),
    [
        (IssuedBy.RESOURCES_BULK, TaskKind.BULK, PollRoute.RESOURCES_BULK),
        (IssuedBy.RELATIONSHIPS_BULK, TaskKind.BULK, PollRoute.RELATIONSHIPS_BULK),
        (IssuedBy.BUNDLE, TaskKind.BUNDLE, PollRoute.TASKS),
        (IssuedBy.SINGLE_WRITE, TaskKind.SINGLE, PollRoute.TASKS),
        (IssuedBy.PURGE, TaskKind.PURGE, PollRoute.PURGE),
    ],
)
def test_task_ref_routes_a_bare_id_by_its_issuer(
    issued_by: IssuedBy, kind: TaskKind, route: PollRoute
) -> None:
    ref = TaskRef.from_submission(SOURCE, "2wil2vg5uqi08x1aet097gLW8DO", issued_by=issued_by)
    assert ref.kind is kind
    assert ref.poll_route is route
    assert ref.is_legacy


def test_task_ref_routes_a_bare_id_of_unknown_issuer_to_tasks() -> None:
    ref = TaskRef(SOURCE, "2wil2vg5uqi08x1aet097gLW8DO")
    assert ref.kind is None
    assert ref.poll_route is PollRoute.TASKS


def test_task_ref_polls_a_prefixed_bulk_id_on_tasks_whoever_issued_it() -> None:
    ref = TaskRef.from_submission(SOURCE, "bk_1", issued_by=IssuedBy.RELATIONSHIPS_BULK)
    assert ref.poll_route is PollRoute.TASKS
    assert not ref.is_legacy


def test_task_ref_knows_a_purge_has_no_receipts() -> None:
    assert not TaskRef(SOURCE, "pg_1").has_receipts
    assert TaskRef(SOURCE, "bd_1").has_receipts


def test_task_ref_refuses_an_issuer_that_contradicts_the_prefix() -> None:
    with pytest.raises(ValueError, match="issued_by"):
        TaskRef.from_submission(SOURCE, "bk_1", issued_by=IssuedBy.BUNDLE)
    with pytest.raises(ValueError, match="issued_by"):
        TaskRef.from_submission(SOURCE, "purge:1", issued_by=IssuedBy.RESOURCES_BULK)


@pytest.mark.parametrize(
    ("source_key", "task_id", "field"),
    [
        ("../x", "bd_1", "source_key"),
        ("", "bd_1", "source_key"),
        (SOURCE, "../t", "task_id"),
        (SOURCE, "a/b", "task_id"),
        (SOURCE, "bd_", "task_id"),
        (SOURCE, "purge:", "task_id"),
        (SOURCE, "", "task_id"),
    ],
)
def test_task_ref_refuses_ids_unfit_for_a_path(source_key: str, task_id: str, field: str) -> None:
    with pytest.raises(InvalidPathSegmentError) as caught:
        TaskRef(source_key, task_id)
    assert caught.value.field == field


@pytest.mark.parametrize(
    "ref",
    [
        TaskRef(SOURCE, "bd_2pUv7"),
        TaskRef(SOURCE, "purge:abc"),
        TaskRef.from_submission(SOURCE, "abc", issued_by=IssuedBy.RESOURCES_BULK),
        TaskRef.from_submission(SOURCE, "pg_abc", issued_by=IssuedBy.PURGE),
    ],
)
def test_task_ref_round_trips_through_its_string_and_dict_forms(ref: TaskRef) -> None:
    assert TaskRef.from_string(ref.to_string()) == ref
    assert TaskRef.from_dict(json.loads(json.dumps(ref.to_dict()))) == ref
    assert str(ref) == ref.to_string()


def test_task_ref_string_form_is_compact() -> None:
    ref = TaskRef.from_submission(SOURCE, "abc", issued_by=IssuedBy.RESOURCES_BULK)
    assert ref.to_string() == "hospital-a/abc@resources-bulk"
    assert ref.to_dict() == {
        "sourceKey": "hospital-a",
        "taskId": "abc",
        "issuedBy": "resources-bulk",
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hospital-a", "no '/'"),
        ("hospital-a/abc@", "empty issuer"),
        ("hospital-a/abc@mailbox", "issued_by"),
    ],
)
def test_task_ref_from_string_explains_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TaskRef.from_string(text)


def test_task_ref_from_dict_names_the_missing_keys() -> None:
    with pytest.raises(ValueError, match="sourceKey"):
        TaskRef.from_dict({"taskId": "bd_1"})


def test_task_ref_is_hashable_and_frozen() -> None:
    ref = TaskRef(SOURCE, "bd_1")
    assert {ref: 1}[TaskRef(SOURCE, "bd_1")] == 1
    with pytest.raises(AttributeError):
        ref.task_id = "bd_2"  # type: ignore[misc]


def test_task_refs_errors_and_retries_import_without_httpx() -> None:
    # The worker's pure core stores TaskRefs and reads errors; it must not drag httpx in.
    code = (
        "import sys; import api_client.tasks, api_client.errors, api_client.retry, "
        "api_client.waiting; print('httpx' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.stdout.strip() == "False"

"""RegistryClient through httpx.MockTransport: every endpoint's request, path checks, lifecycle."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import httpcore
import httpx
import pydantic
import pytest
from pydantic import SecretStr

from api_client import errors
from api_client._client import RegistryClient
from api_client.config import ClientConfig
from api_client.models import (
    DeleteAnswer,
    Profile,
    PurgeAnswer,
    PurgeOperation,
    Relationship,
    RelationshipDefinition,
    RelationshipWriteAnswer,
    Resource,
    ResourcePayload,
    ResourceWriteAnswer,
    TaskAccepted,
    TaskState,
    TaskStatus,
    dump_json,
)
from api_client.retry import RetryPolicy
from tests.unit.test_client_fakes import (
    API_KEY,
    BUNDLE,
    DEFINITION,
    PAYLOAD,
    PROFILE,
    PURGE,
    REL_BULK,
    REL_CREATE,
    RELATIONSHIP_JSON,
    RES_BULK,
    RESOURCE_JSON,
    SOURCE,
    FakeTime,
    Script,
    json_response,
    make_client,
)

# -- every endpoint: method, path, query, headers, body, parsed answer ----------------------------

ENDPOINTS: list[tuple[str, Callable[[RegistryClient], Any], str, str, Any, Any, type]] = [
    (
        "submit_bundle",
        lambda c: c.submit_bundle(SOURCE, BUNDLE),
        "POST",
        "/sources/hospital-a/v1/bundle",
        BUNDLE,
        {"taskId": "bd_1", "status": "ACCEPTED"},
        TaskAccepted,
    ),
    (
        "submit_resource_bulk",
        lambda c: c.submit_resource_bulk(SOURCE, RES_BULK),
        "POST",
        "/sources/hospital-a/v1/resources/bulk",
        RES_BULK,
        {"taskId": "bk_1", "status": "ACCEPTED", "bulkId": "bk_1"},
        TaskAccepted,
    ),
    (
        "submit_relationship_bulk",
        lambda c: c.submit_relationship_bulk(SOURCE, REL_BULK),
        "POST",
        "/sources/hospital-a/v1/relationships/bulk",
        REL_BULK,
        {"taskId": "bk_2", "status": "ACCEPTED"},
        TaskAccepted,
    ),
    (
        "create_resource",
        lambda c: c.create_resource(SOURCE, PAYLOAD),
        "POST",
        "/sources/hospital-a/v1/resources/provider",
        PAYLOAD,
        {"taskId": "s_1", "status": "PERSISTED", "resource": RESOURCE_JSON},
        ResourceWriteAnswer,
    ),
    (
        "upsert_resource",
        lambda c: c.upsert_resource(SOURCE, PAYLOAD),
        "PUT",
        "/sources/hospital-a/v1/resources/provider/p-17",
        PAYLOAD,
        {"taskId": "s_2", "status": "ACCEPTED"},
        ResourceWriteAnswer,
    ),
    (
        "get_resource",
        lambda c: c.get_resource(SOURCE, "provider", "p-17"),
        "GET",
        "/sources/hospital-a/v1/resources/provider/p-17",
        None,
        RESOURCE_JSON,
        Resource,
    ),
    (
        "delete_resource",
        lambda c: c.delete_resource(SOURCE, "provider", "p-17"),
        "DELETE",
        "/sources/hospital-a/v1/resources/provider/p-17",
        None,
        {"taskId": "s_3", "status": "PERSISTED"},
        DeleteAnswer,
    ),
    (
        "create_relationship",
        lambda c: c.create_relationship(SOURCE, "provider-office", REL_CREATE),
        "POST",
        "/sources/hospital-a/v1/relationships/provider-office",
        REL_CREATE,
        {"taskId": "s_4", "status": "PERSISTED", "relationship": RELATIONSHIP_JSON},
        RelationshipWriteAnswer,
    ),
    (
        "get_relationship",
        lambda c: c.get_relationship(SOURCE, "provider-office", "1.2"),
        "GET",
        "/sources/hospital-a/v1/relationships/provider-office/1.2",
        None,
        RELATIONSHIP_JSON,
        Relationship,
    ),
    (
        "delete_relationship",
        lambda c: c.delete_relationship(SOURCE, "provider-office", "1.2"),
        "DELETE",
        "/sources/hospital-a/v1/relationships/provider-office/1.2",
        None,
        {"taskId": "s_5", "status": "ACCEPTED"},
        DeleteAnswer,
    ),
    (
        "get_task",
        lambda c: c.get_task(SOURCE, "bd_1", with_receipts=True),
        "GET",
        "/sources/hospital-a/v1/tasks/bd_1?withReceipts=true",
        None,
        {"status": "SUCCESS", "taskId": "bd_1", "receipts": []},
        TaskState,
    ),
    (
        "get_resource_bulk_status",
        lambda c: c.get_resource_bulk_status(SOURCE, "bk_1"),
        "GET",
        "/sources/hospital-a/v1/resources/bulk/bk_1?withReceipts=false",
        None,
        {"status": "PENDING"},
        TaskState,
    ),
    (
        "get_relationship_bulk_status",
        lambda c: c.get_relationship_bulk_status(SOURCE, "bk_2", with_receipts=True),
        "GET",
        "/sources/hospital-a/v1/relationships/bulk/bk_2?withReceipts=true",
        None,
        {"status": "FAILURE", "receipts": []},
        TaskState,
    ),
    (
        "purge",
        lambda c: c.purge(SOURCE, PURGE),
        "POST",
        "/sources/hospital-a/v1/purge",
        PURGE,
        {"taskId": "pg_1", "status": "ACCEPTED", "purgeOperation": {"taskId": "pg_1"}},
        PurgeAnswer,
    ),
    (
        "get_purge",
        lambda c: c.get_purge(SOURCE, "pg_1"),
        "GET",
        "/sources/hospital-a/v1/purge/pg_1",
        None,
        {"taskId": "pg_1", "status": "SUCCESS", "deletedCount": 3},
        PurgeOperation,
    ),
    (
        "get_profile",
        lambda c: c.get_profile(SOURCE, "provider"),
        "GET",
        "/sources/hospital-a/v1/profiles/provider",
        None,
        PROFILE.model_dump(by_alias=True, exclude_none=True),
        Profile,
    ),
    (
        "put_profile",
        lambda c: c.put_profile(SOURCE, "provider", PROFILE),
        "PUT",
        "/sources/hospital-a/v1/profiles/provider",
        PROFILE,
        PROFILE.model_dump(by_alias=True, exclude_none=True),
        Profile,
    ),
    (
        "get_relationship_definition",
        lambda c: c.get_relationship_definition(SOURCE, "provider-office"),
        "GET",
        "/sources/hospital-a/v1/relationship-definitions/provider-office",
        None,
        DEFINITION.model_dump(by_alias=True, exclude_none=True),
        RelationshipDefinition,
    ),
    (
        "put_relationship_definition",
        lambda c: c.put_relationship_definition(SOURCE, "provider-office", DEFINITION),
        "PUT",
        "/sources/hospital-a/v1/relationship-definitions/provider-office",
        DEFINITION,
        DEFINITION.model_dump(by_alias=True, exclude_none=True),
        RelationshipDefinition,
    ),
]


@pytest.mark.parametrize(
    ("call", "method", "target", "model", "answer", "expected"),
    [pytest.param(*row[1:], id=row[0]) for row in ENDPOINTS],
)
def test_client_endpoint_sends_the_documented_request_and_parses_the_answer(
    call: Callable[[RegistryClient], Any],
    method: str,
    target: str,
    model: Any,
    answer: Any,
    expected: type,
) -> None:
    script = Script(json_response(200 if method != "POST" else 202, answer))
    result = call(make_client(script))
    assert isinstance(result, expected)
    (request,) = script.requests
    assert request.method == method
    assert request.url.raw_path.decode() == target
    assert request.headers["X-Clinia-API-Key"] == API_KEY
    assert request.headers["User-Agent"] == "clinia-ingest/0.1"
    if model is None:
        assert request.content == b""
        assert "Content-Type" not in request.headers
    else:
        assert request.content == dump_json(model)
        assert request.headers["Content-Type"] == "application/json"


def test_client_put_profile_reads_an_empty_answer_as_what_was_sent() -> None:
    script = Script(httpx.Response(204))
    assert make_client(script).put_profile(SOURCE, "provider", PROFILE) == PROFILE


def test_client_get_purge_reads_a_wrapped_operation_too() -> None:
    script = Script(json_response(200, {"purgeOperation": {"taskId": "pg_1", "status": "PENDING"}}))
    assert make_client(script).get_purge(SOURCE, "pg_1").status is TaskStatus.PENDING


# -- path segments --------------------------------------------------------------------------------

REFUSALS: list[tuple[str, Callable[[RegistryClient], Any]]] = [
    ("source_key", lambda c: c.submit_bundle("../x", BUNDLE)),
    ("source_key", lambda c: c.get_task("a/b", "bd_1")),
    ("source_key", lambda c: c.purge("%2e%2e", PURGE)),
    ("task_id", lambda c: c.get_task(SOURCE, "../t")),
    ("task_id", lambda c: c.get_task(SOURCE, "bd_1?withReceipts=true")),
    ("bulk_id", lambda c: c.get_resource_bulk_status(SOURCE, "x/y")),
    ("bulk_id", lambda c: c.get_relationship_bulk_status(SOURCE, "")),
    ("type", lambda c: c.create_resource(SOURCE, ResourcePayload(type="../p", data={}))),
    ("id", lambda c: c.upsert_resource(SOURCE, ResourcePayload(type="provider", data={}))),
    (
        "id",
        lambda c: c.upsert_resource(
            SOURCE, ResourcePayload(type="provider", id="@rootId1", data={})
        ),
    ),
    ("resource_type", lambda c: c.get_resource(SOURCE, "prov ider", "p-17")),
    ("resource_id", lambda c: c.delete_resource(SOURCE, "provider", "é")),
    ("relationship_type", lambda c: c.create_relationship(SOURCE, "a/b", REL_CREATE)),
    ("relationship_id", lambda c: c.get_relationship(SOURCE, "provider-office", "1")),
    ("relationship_id", lambda c: c.delete_relationship(SOURCE, "provider-office", "1.2.3")),
    ("purge_id", lambda c: c.get_purge(SOURCE, "..")),
    ("profile_key", lambda c: c.put_profile(SOURCE, "x" * 63, PROFILE)),
    ("key", lambda c: c.get_relationship_definition(SOURCE, "a.b")),
]


@pytest.mark.parametrize(("field", "call"), REFUSALS)
def test_client_refuses_a_bad_path_segment_before_any_request(
    field: str, call: Callable[[RegistryClient], Any]
) -> None:
    calls: list[httpx.Request] = []

    def never(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise AssertionError("no request may be made")

    client = make_client(never)
    with pytest.raises(errors.InvalidPathSegmentError) as caught:
        call(client)
    assert caught.value.field == field
    assert isinstance(caught.value, ValueError)
    assert calls == []
    assert not client._session.started


def test_client_encodes_a_legacy_purge_id_on_the_tasks_route() -> None:
    script = Script(json_response(200, {"status": "PENDING"}))
    make_client(script).get_task(SOURCE, "purge:abc")
    assert (
        script.requests[0].url.raw_path
        == b"/sources/hospital-a/v1/tasks/purge%3Aabc?withReceipts=false"
    )


# -- lifecycle and secrets ------------------------------------------------------------------------


def test_client_creates_its_http_client_on_the_first_request_only() -> None:
    client = make_client(Script(json_response(200, {"status": "PENDING"})))
    assert not client._session.started
    client.get_task(SOURCE, "bd_1")
    assert client._session.started


def test_client_close_ends_it_and_works_as_a_context_manager() -> None:
    with make_client(Script(json_response(200, {"status": "PENDING"}))) as client:
        client.get_task(SOURCE, "bd_1")
    with pytest.raises(RuntimeError, match="closed"):
        client.get_task(SOURCE, "bd_1")


def test_client_and_config_never_show_the_key() -> None:
    client = make_client(Script())
    for text in (repr(client), str(client), repr(client.config), str(client.config)):
        assert API_KEY not in text
    assert client.config.api_key.get_secret_value() == API_KEY


def test_client_errors_never_show_the_key_after_retries() -> None:
    time = FakeTime()
    policy = RetryPolicy(max_attempts=2)
    script = Script(httpx.ConnectError(f"refused {API_KEY}"), httpx.ConnectError("refused"))
    with pytest.raises(errors.TransportError) as caught:
        make_client(script, time=time, policy=policy).get_task(SOURCE, "bd_1")
    assert API_KEY not in str(caught.value)
    assert API_KEY not in repr(caught.value)


# -- configuration ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"base_url": "ftp://ws.example.test"}, "base_url"),
        ({"base_url": "https://"}, "base_url"),
        ({"base_url": "https://user:pw@ws.example.test"}, "base_url"),
        ({"base_url": "https://ws.example.test/?x=1"}, "base_url"),
        ({"api_key": ""}, "api_key"),
        ({"read_timeout_s": 0}, "read_timeout_s"),
        ({"pool_timeout_s": -1}, "pool_timeout_s"),
        ({"user_agent": "a\r\nX-Evil: 1"}, "user_agent"),
        ({"unknown_setting": 1}, "unknown_setting"),
    ],
)
def test_client_config_names_the_field_it_refuses(changes: dict[str, Any], field: str) -> None:
    values: dict[str, Any] = {"base_url": "https://ws.example.test", "api_key": API_KEY, **changes}
    with pytest.raises(pydantic.ValidationError, match=field):
        ClientConfig.model_validate(values)


@pytest.mark.parametrize("bad_key", [f"{API_KEY}\r\n", f" {API_KEY}", f"{API_KEY}\u00e9"])
def test_client_config_refuses_a_malformed_key_without_echoing_it(bad_key: str) -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        ClientConfig(base_url="https://ws.example.test", api_key=SecretStr(bad_key))
    assert API_KEY not in str(caught.value)
    assert API_KEY not in repr(caught.value)
    assert "api_key" in str(caught.value)


def test_client_config_is_frozen_and_strips_the_trailing_slash() -> None:
    config = ClientConfig(base_url="http://127.0.0.1:8080/", api_key=SecretStr(API_KEY))
    assert config.base_url == "http://127.0.0.1:8080"
    with pytest.raises(pydantic.ValidationError):
        config.user_agent = "other"  # type: ignore[misc]


def test_client_joins_paths_under_a_base_url_with_a_prefix() -> None:
    script = Script(json_response(200, {"status": "PENDING"}))
    config = ClientConfig(base_url="http://127.0.0.1:8080/registry/", api_key=SecretStr(API_KEY))
    client = RegistryClient(config, transport=httpx.MockTransport(script))
    client.get_task(SOURCE, "bd_1")
    assert str(script.requests[0].url) == (
        "http://127.0.0.1:8080/registry/sources/hospital-a/v1/tasks/bd_1?withReceipts=false"
    )


def _real_transport_client() -> RegistryClient:
    """A client on its own pooled transport (nothing is sent by these tests)."""
    return RegistryClient(ClientConfig(base_url="https://ws.example.test", api_key=SecretStr("k")))


def test_client_builds_a_fresh_transport_after_a_fork(monkeypatch: pytest.MonkeyPatch) -> None:
    client = _real_transport_client()
    inherited = client._session._current()
    closed: list[str] = []
    monkeypatch.setattr(inherited, "close", lambda: closed.append("inherited"))
    parent_pid = os.getpid()
    monkeypatch.setattr(os, "getpid", lambda: parent_pid + 1)  # as seen from a forked child
    own = client._session._current()
    assert own is not inherited
    assert isinstance(own, httpx.HTTPTransport)
    client.close()
    assert closed == []  # the parent's pool is not the child's to close


def test_client_never_reads_the_environment_for_its_transport(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    transport = _real_transport_client()._session._current()
    assert isinstance(transport, httpx.HTTPTransport)
    assert type(transport._pool) is httpcore.ConnectionPool  # no proxy read from the env

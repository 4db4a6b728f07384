"""The API key through `RegistryClient`: refused without leaking, and fixed at run time."""

from __future__ import annotations

import pytest

from api_client.errors import RegistryError, UnauthenticatedError
from tests.integration.client.conftest import KEY, SOURCE, Harness, seed_bundle

pytestmark = pytest.mark.integration

WRONG_KEY = "wrong-key-3f9a7c"


def error_texts(error: RegistryError) -> list[str]:
    """Every text an error offers a log line or a caller."""
    return [str(error), repr(error), error.message, repr(error.error), repr(error.args)]


def test_client_wrong_key_raises_unauthenticated_and_never_shows_a_key(harness: Harness):
    client = harness.client(api_key=WRONG_KEY)

    with pytest.raises(UnauthenticatedError) as read_refused:
        client.get_profile(SOURCE, "office")
    with pytest.raises(UnauthenticatedError) as write_refused:
        client.submit_bundle(SOURCE, seed_bundle())

    for raised in (read_refused.value, write_refused.value):
        assert raised.status == 401
        assert raised.error_type == "UNAUTHENTICATED"
        for text in error_texts(raised):
            assert WRONG_KEY not in text
            assert KEY not in text
    assert WRONG_KEY not in repr(client)
    assert WRONG_KEY not in repr(client.config)
    # refused once each, never retried, nothing written
    assert [(e["route"], e["status"]) for e in harness.requests()] == [
        ("get_profile", 401),
        ("bundle", 401),
    ]
    assert harness.time.sleeps == []
    assert harness.writes() == []


def test_client_works_once_the_accepted_key_changes_at_run_time(harness: Harness):
    rotated = harness.client(api_key=WRONG_KEY)
    original = harness.client()
    with pytest.raises(UnauthenticatedError):
        rotated.get_profile(SOURCE, "office")

    harness.configure(api_key=WRONG_KEY)

    assert rotated.get_profile(SOURCE, "office").type == "ROOT"
    assert harness.admin("GET", "/config")["api_key"] == "**********"
    with pytest.raises(UnauthenticatedError):
        original.get_profile(SOURCE, "office")
    assert [e["status"] for e in harness.requests("get_profile")] == [401, 200, 401]

"""The shared id patterns: the documented examples pass, anything that could escape a path fails."""

from __future__ import annotations

import pytest

from api_client import ids

DOCUMENTED_TASK_IDS = ["bd_2pUv7", "bk_2wil2vg5uqi08x1aet097gLW8DO", "purge:ab", "ab"]


@pytest.mark.parametrize("value", ["1", "2", "p-17", "2pUv7EdiOrKlphAYBtTKF0TwCM9", "a" * 93])
def test_is_resource_id_accepts_documented_ids(value: str) -> None:
    assert ids.is_resource_id(value)


@pytest.mark.parametrize("value", ["", "../x", "a/b", "a.b", "é", "a" * 94, "_x", "a b", "1\n"])
def test_is_resource_id_refuses_unsafe_or_overlong_ids(value: str) -> None:
    assert not ids.is_resource_id(value)


@pytest.mark.parametrize("value", ["hospital-a", "office", "provider-office", "a" * 62])
def test_is_source_key_accepts_documented_keys(value: str) -> None:
    assert ids.is_source_key(value)


@pytest.mark.parametrize("value", ["", "a" * 63, "x/y", "ü", "%2e"])
def test_is_source_key_refuses_invalid_keys(value: str) -> None:
    assert not ids.is_source_key(value)


@pytest.mark.parametrize("value", ["@rootId", "@rootId1", "@rootId42"])
def test_is_virtual_id_accepts_root_ids(value: str) -> None:
    assert ids.is_virtual_id(value)
    assert not ids.is_resource_id(value)


@pytest.mark.parametrize("value", DOCUMENTED_TASK_IDS)
def test_is_task_id_accepts_every_documented_form(value: str) -> None:
    assert ids.is_task_id(value)


@pytest.mark.parametrize("value", ["", "../t", "a/b", "a?b", "bd_\u00e9"])
def test_is_task_id_refuses_path_breaking_values(value: str) -> None:
    assert not ids.is_task_id(value)

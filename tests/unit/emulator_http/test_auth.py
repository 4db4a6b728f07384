"""Where the key comes from, and how a presented key is judged."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from emulator.auth import (
    KEY_ENV,
    KEY_FILE_ENV,
    KeySourceError,
    check_key,
    header_values,
    resolve_secret,
)

KEY = SecretStr("s3cret-key")


def resolve(environ: dict[str, str], flag: str | None = None) -> SecretStr | None:
    return resolve_secret(
        flag=flag, flag_name="--api-key", environ=environ, env=KEY_ENV, file_env=KEY_FILE_ENV
    )


def test_check_key_accepts_the_exact_key():
    assert check_key([b"s3cret-key"], KEY) is None


@pytest.mark.parametrize(
    ("presented", "message"),
    [
        ([], "missing API key"),
        ([b"s3cret-kez"], "invalid API key"),
        ([b"s3cret-key", b"s3cret-key"], "invalid API key"),
        ([b""], "invalid API key"),
    ],
)
def test_check_key_refuses_with_the_registry_error_shape(presented: list[bytes], message: str):
    body = check_key(presented, KEY)
    assert body is not None
    assert body["code"] == 401
    assert body["type"] == "UNAUTHENTICATED"
    assert body["details"] == []
    assert message in body["message"]
    assert "s3cret" not in str(body)


def test_header_values_is_case_insensitive():
    headers = [(b"X-Clinia-API-Key", b"a"), (b"x-clinia-api-key", b"b"), (b"other", b"c")]
    assert header_values(headers, "x-clinia-api-key") == [b"a", b"b"]


def test_resolve_secret_prefers_the_flag_then_the_environment():
    environ = {KEY_ENV: "from-env"}
    flagged = resolve(environ, flag="from-flag")
    assert flagged is not None
    assert flagged.get_secret_value() == "from-flag"
    from_env = resolve(environ)
    assert from_env is not None
    assert from_env.get_secret_value() == "from-env"
    assert resolve({}) is None


def test_resolve_secret_reads_and_strips_the_key_file(tmp_path: Path):
    path = tmp_path / "key"
    path.write_text("from-file\n", encoding="utf-8")
    key = resolve({KEY_FILE_ENV: str(path)})
    assert key is not None
    assert key.get_secret_value() == "from-file"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({KEY_ENV: "a", KEY_FILE_ENV: "/x"}, "not both"),
        ({KEY_ENV: ""}, "empty"),
        ({KEY_FILE_ENV: "/nonexistent/key"}, "cannot read"),
    ],
)
def test_resolve_secret_names_the_problem(environ: dict[str, str], message: str):
    with pytest.raises(KeySourceError, match=message) as caught:
        resolve(environ)
    assert KEY_ENV in str(caught.value) or KEY_FILE_ENV in str(caught.value)


def test_resolve_secret_refuses_an_empty_key_file(tmp_path: Path):
    path = tmp_path / "key"
    path.write_text("\n", encoding="utf-8")
    with pytest.raises(KeySourceError, match="empty"):
        resolve({KEY_FILE_ENV: str(path)})


def test_secret_never_shows_in_repr():
    key = resolve({KEY_ENV: "visible?"})
    assert "visible?" not in repr(key)
    assert "visible?" not in str(key)

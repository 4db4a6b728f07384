"""The README lists every setting with its environment variable and its real default."""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path

import pytest
from pydantic import SecretStr

from worker.settings import ENV_NAMES, SECRET_FIELDS, IngestSettings

README = Path(__file__).resolve().parents[3] / "README.md"
ROW = re.compile(r"^\| `(?P<variable>[A-Z_]+)`(?: \(or `[A-Z_]+_FILE`\))? \| (?P<default>[^|]+) \|")


def _documented() -> dict[str, str]:
    rows = {}
    for line in README.read_text(encoding="utf-8").splitlines():
        match = ROW.match(line)
        if match:
            rows[match["variable"]] = match["default"].strip()
    return rows


def _rendered(default: object) -> str:
    """A default as the README writes it."""
    if isinstance(default, SecretStr):
        secret = default.get_secret_value()
        return f"`{secret}`" if secret else "(none)"
    if default is None:
        return "(none)"
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if isinstance(default, Enum):
        return f"`{default.value}`"
    return f"`{default}`"


@pytest.mark.parametrize("field", sorted(IngestSettings.model_fields))
def test_readme_lists_each_setting_with_its_default(field: str) -> None:
    documented = _documented()
    variable = ENV_NAMES[field]
    assert variable in documented, f"README has no settings row for {variable}"
    assert documented[variable] == _rendered(IngestSettings.model_fields[field].default)


def test_readme_lists_no_setting_that_does_not_exist() -> None:
    assert set(_documented()) <= set(ENV_NAMES.values())


def test_readme_names_the_file_variant_of_every_secret() -> None:
    text = README.read_text(encoding="utf-8")
    for field in SECRET_FIELDS:
        assert f"`{ENV_NAMES[field]}_FILE`" in text

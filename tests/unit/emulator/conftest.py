"""Fixtures for the emulator's pure core: a settable clock, a registry on it, seed bodies."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from emulator.config import EmulatorConfig
from emulator.registry import Registry

SEEDS_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "seeds"
START = datetime(2024, 11, 27, 15, 43, 9, 438665, tzinfo=UTC)


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def seed(name: str) -> Any:
    """One JSON example of the seed pages (tests/fixtures/seeds/<name>.json)."""
    return json.loads((SEEDS_DIR / f"{name}.json").read_text(encoding="utf-8"))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


RegistryFactory = Callable[..., Registry]


@pytest.fixture
def make_registry(clock: FakeClock) -> RegistryFactory:
    """Build a Registry on the fake clock; keyword arguments become config fields."""

    def make(**settings: Any) -> Registry:
        return Registry(EmulatorConfig(**settings), clock=clock)

    return make


@pytest.fixture
def registry(make_registry: RegistryFactory) -> Registry:
    return make_registry()

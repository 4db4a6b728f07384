"""Waiting on a condition with a deadline: what tests do instead of sleeping a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

POLL_INTERVAL_S = 0.01


def wait_for(condition: Callable[[], T | None], *, timeout_s: float = 5.0) -> T:
    """Call `condition` until it returns something truthy, and return that; fail at `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        time.sleep(POLL_INTERVAL_S)

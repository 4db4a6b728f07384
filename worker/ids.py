"""Ids the worker makes: KSUID-like, 27 base-62 characters, in the Registry's own id pattern.

Used for the ids of CREATEs published without one (assigned once, at publish, invariant 10), for
event ids a producer left out, and for bundle ids. Time-ordered by prefix, 128 random bits after.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Final

from api_client.ids import GENERATED_ID_LENGTH

KSUID_EPOCH_S: Final = 1_400_000_000
"""KSUID time counts seconds from 2014-05-13."""
_ALPHABET: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_PAYLOAD_BITS: Final = 128
_TIME_MAX: Final = 2**32 - 1


def _base62(value: int) -> str:
    digits: list[str] = []
    while value:
        value, digit = divmod(value, 62)
        digits.append(_ALPHABET[digit])
    return "".join(reversed(digits)).rjust(GENERATED_ID_LENGTH, "0")


class IdSource:
    """A callable that makes a fresh id on each call.

    Args:
        clock: seconds since the epoch (injected in tests).
        random_bits: draws `n` random bits (injected in tests; `secrets.randbits` by default).
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        random_bits: Callable[[int], int] = secrets.randbits,
    ) -> None:
        self._clock = clock
        self._random_bits = random_bits

    def __call__(self) -> str:
        """A new id; two calls never repeat in practice (128 random bits)."""
        seconds = min(max(int(self._clock()) - KSUID_EPOCH_S, 0), _TIME_MAX)
        return _base62((seconds << _PAYLOAD_BITS) | self._random_bits(_PAYLOAD_BITS))


new_id: Final = IdSource()
"""The process-wide id source."""

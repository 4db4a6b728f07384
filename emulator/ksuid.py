"""KSUID-like ids, as the Registry generates: 27 base-62 characters, time-ordered by prefix.

A KSUID is 4 bytes of seconds since 2014-05-13 (1.4e9 s after the Unix epoch) followed by 16
random bytes, written in base 62 and left-padded to 27 characters. Here the time comes from an
injected clock and the payload from a seeded generator, so a run under one seed repeats exactly.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime
from typing import Final

from api_client.ids import GENERATED_ID_LENGTH

KSUID_EPOCH_S: Final = 1_400_000_000
BASE62_ALPHABET: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
PAYLOAD_BITS: Final = 128
TIMESTAMP_MAX: Final = 2**32 - 1


def encode_base62(value: int, width: int = GENERATED_ID_LENGTH) -> str:
    """Base-62 digits of `value`, zero-padded to `width`, so ids sort in the order made."""
    if value < 0:
        raise ValueError(f"value must be >= 0, got {value}")
    digits: list[str] = []
    while value:
        value, digit = divmod(value, 62)
        digits.append(BASE62_ALPHABET[digit])
    text = "".join(reversed(digits)).rjust(width, "0")
    if len(text) > width:
        raise ValueError(f"value needs {len(text)} base-62 digits, more than {width}")
    return text


def ksuid(moment: datetime, payload: int) -> str:
    """The id for a moment and a 128-bit payload (the moment is clamped into the 32-bit range)."""
    if not 0 <= payload < 2**PAYLOAD_BITS:
        raise ValueError("payload must fit in 128 bits")
    seconds = min(max(int(moment.timestamp()) - KSUID_EPOCH_S, 0), TIMESTAMP_MAX)
    return encode_base62((seconds << PAYLOAD_BITS) | payload)


class KsuidGenerator:
    """A callable id source: time from `clock`, payload from a generator seeded once."""

    def __init__(self, clock: Callable[[], datetime], seed: int) -> None:
        self._clock = clock
        self._rng = random.Random(seed)  # noqa: S311 - ids for an emulator, not secrets

    def __call__(self) -> str:
        """A fresh id; two calls never repeat within a run (128 random bits)."""
        return ksuid(self._clock(), self._rng.getrandbits(PAYLOAD_BITS))

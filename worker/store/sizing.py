"""A source's bundle-size state in Redis (`ingest:{sk}:shrink`): read, and replaced atomically.

The value is `cap:shrunkAtMs` (`domain.sizing.BundleSizing`). A flush reads it inside its snapshot
(read.lua), so planning costs no extra round trip; `sizing` reads it alone. A shrink is a
compare-and-set (shrink.lua): the caller reads, computes the new state with the pure rule, and the
script writes it only if the key still holds what was read. The key expires when the cap is back
to `max_bundle_ops`: it holds no work, and from then on it shrinks nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache, cached_property
from importlib import resources
from typing import TYPE_CHECKING, Any, Final

from worker.domain.sizing import BundleSizing
from worker.store import keys
from worker.store.base import StoreBase, to_int
from worker.store.codec import text

if TYPE_CHECKING:
    from redis.commands.core import Script

__all__ = ["SizingSwap", "StoreSizing", "decode_sizing", "encode_sizing"]

_STORED: Final = re.compile(r"[1-9][0-9]*:(0|[1-9][0-9]*)")
"""What `encode_sizing` writes (shrink.lua reads the same form), and nothing else."""


@cache
def _script_source() -> str:
    return resources.files("worker.store").joinpath("lua", "shrink.lua").read_text("utf-8")


def encode_sizing(state: BundleSizing) -> str:
    """The stored form, `cap:shrunkAtMs`."""
    return f"{state.cap}:{state.shrunk_at_ms}"


def decode_sizing(raw: Any) -> BundleSizing | None:
    """The state a stored value holds; None for none, and for a value this module did not write
    (an unreadable cap must never stop planning: the configured cap applies)."""
    value = text(raw) if raw is not None else ""
    if not _STORED.fullmatch(value):
        return None
    cap, _, at = value.partition(":")
    return BundleSizing(int(cap), int(at))


@dataclass(frozen=True)
class SizingSwap:
    """A compare-and-set's answer: whether it wrote, and what the key holds now."""

    done: bool
    current: BundleSizing | None


class StoreSizing(StoreBase):
    """The bundle-size state of every source (one round trip per call)."""

    @cached_property
    def _shrink_script(self) -> Script:
        return self.client.register_script(_script_source())

    def sizing(self, source: str) -> BundleSizing | None:
        """The source's stored state; None when its bundles are not shrunk."""
        return decode_sizing(self.client.get(keys.shrink_key(source)))

    def swap_sizing(
        self,
        source: str,
        *,
        expected: BundleSizing | None,
        new: BundleSizing,
        ttl_ms: int,
    ) -> SizingSwap:
        """Write `new` (expiring in `ttl_ms`) only if the key still holds `expected`."""
        was = "" if expected is None else encode_sizing(expected)
        args = [was, encode_sizing(new), str(max(1, ttl_ms))]
        reply = self._shrink_script(keys=[keys.prefix(source)], args=args)
        if to_int(reply[0]) == 1:
            return SizingSwap(True, new)
        return SizingSwap(False, decode_sizing(reply[1]))

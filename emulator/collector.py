"""The cyclic garbage collector of the emulator's own process: no pause that grows with history.

Why: the emulator keeps every task it answered (each can still be polled) and the last requests,
so its heap grows with the requests it has served. A full collection walks all of it, holding
the interpreter, and every request in flight waits: on the benchmark's faulty stream a full
collection took 150 to 170 ms after 40,000 events and 370 to 430 ms after 100,000, one every
few seconds while a fast client drained its backlog, a tenth of that client's run spent waiting
for a pause the Registry it stands for would not make.

What it makes is nearly never cyclic garbage (measured over the benchmark's runs: 21 objects in
547 young collections, 16 in 5 full ones; the rest is freed by reference counting). So once a
full collection has run, what survived it is frozen (`gc.freeze`): later collections skip it,
and each walks only what was allocated since the last one. Reference counting still frees
frozen objects; what is given up is only collecting a cycle among objects that were alive at a
freeze, which this process hardly makes.

Only `clinia-ingest emulator` (its own process) does this: tests that serve the emulator in a
thread of the test process keep the interpreter's defaults.
"""

from __future__ import annotations

import gc
from typing import Any, Final

_FULL: Final = 2
"""The oldest generation: a collection of it walks every object not frozen."""


def freeze_after_full_collections() -> None:
    """From now on, freeze what survives each full collection (and what exists now)."""
    gc.freeze()
    if _freeze_survivors not in gc.callbacks:
        gc.callbacks.append(_freeze_survivors)


def _freeze_survivors(phase: str, info: dict[str, Any]) -> None:
    if phase == "stop" and info.get("generation") == _FULL:
        gc.freeze()

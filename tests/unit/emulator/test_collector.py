"""The emulator process's collector: survivors of a full collection frozen, new cycles still
collected. Run in a child interpreter, so the test process keeps its own collector as it is."""

from __future__ import annotations

import json
import subprocess
import sys

CHILD = """
import gc, json
from emulator.collector import freeze_after_full_collections

before = gc.get_freeze_count()
freeze_after_full_collections()
freeze_after_full_collections()
at_start = gc.get_freeze_count()
kept = [[i] for i in range(5000)]
gc.collect()
after_full = gc.get_freeze_count()
cycle = []
cycle.append(cycle)
del cycle
collected = gc.collect()
print(json.dumps({
    "before": before,
    "at_start": at_start,
    "after_full": after_full,
    "collected": collected,
    "callbacks": sum(1 for c in gc.callbacks if c.__name__ == "_freeze_survivors"),
}))
"""


def _child() -> dict[str, int]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60, check=True
    )
    result: dict[str, int] = json.loads(done.stdout)
    return result


def test_what_exists_and_what_survives_a_full_collection_is_frozen_and_new_cycles_still_go():
    result = _child()
    assert result["at_start"] > result["before"]
    assert result["after_full"] >= result["at_start"] + 5000  # the kept lists, frozen
    assert result["collected"] >= 1  # a cycle made after the freeze is still collected
    assert result["callbacks"] == 1  # called twice, connected once

"""pause.lua and `PauseStore`: one shared pause per source, extended, gated, probed, cleared."""

from __future__ import annotations

import pytest
import redis

from worker.store.keys import SourceKeys, pause_key
from worker.store.pauses import PauseStore

SOURCE = "hospital-p"
OTHER = "hospital-q"


@pytest.fixture
def pauses(client: redis.Redis) -> PauseStore:
    client.delete(pause_key(SOURCE), pause_key(OTHER), SourceKeys(SOURCE).stats)
    return PauseStore(client)


def test_pause_key_lives_in_the_source_hash_tag():
    assert pause_key(SOURCE) == "ingest:{hospital-p}:pause"
    with pytest.raises(ValueError, match="source"):
        pause_key("not a source")


def test_pauses_extend_stores_kind_reason_end_and_counts(pauses, client):
    pause = pauses.extend(SOURCE, kind="auth", reason="UnauthenticatedError 401", until_ms=5000,
                          now_ms=1000)  # fmt: skip
    assert (pause.until_ms, pause.strikes) == (5000, 1)
    stored = pauses.get(SOURCE)
    assert stored is not None
    assert (stored.kind, stored.reason, stored.until_ms, stored.since_ms, stored.strikes) == (
        "auth",
        "UnauthenticatedError 401",
        5000,
        1000,
        1,
    )
    assert client.hget(SourceKeys(SOURCE).stats, "pauses") == "1"
    assert pauses.get(OTHER) is None


def test_pauses_extend_keeps_the_later_end(pauses):
    pauses.extend(SOURCE, kind="throttled", reason="r", until_ms=9000, now_ms=1000)
    pause = pauses.extend(SOURCE, kind="throttled", reason="r", until_ms=4000, now_ms=2000)
    assert (pause.until_ms, pause.strikes) == (9000, 2)


def test_pauses_gate_open_paused_then_one_probe(pauses):
    assert pauses.gate(SOURCE, now_ms=1000, window_ms=500).gate == "open"
    pauses.extend(SOURCE, kind="auth", reason="r", until_ms=3000, now_ms=1000)
    held = pauses.gate(SOURCE, now_ms=2000, window_ms=500)
    assert (held.gate, held.until_ms, held.kind) == ("paused", 3000, "auth")
    probe = pauses.gate(SOURCE, now_ms=3000, window_ms=500)
    assert (probe.gate, probe.until_ms) == ("probe", 3500)
    assert pauses.gate(SOURCE, now_ms=3100, window_ms=500).gate == "paused", "one probe at a time"
    stored = pauses.get(SOURCE)
    assert stored is not None
    assert stored.probing
    assert stored.active(3100)
    assert pauses.gate(SOURCE, now_ms=3500, window_ms=500).gate == "probe", "a lost probe ends"


def test_pauses_failed_probe_replaces_the_window(pauses):
    pauses.extend(SOURCE, kind="auth", reason="r", until_ms=2000, now_ms=1000)
    pauses.gate(SOURCE, now_ms=2000, window_ms=10_000)
    pause = pauses.extend(SOURCE, kind="auth", reason="r", until_ms=2500, now_ms=2000)
    assert (pause.until_ms, pause.strikes) == (2500, 2)
    stored = pauses.get(SOURCE)
    assert stored is not None
    assert not stored.probing


def test_pauses_clear_ends_the_pause_and_resets_strikes(pauses):
    pauses.extend(SOURCE, kind="unreachable", reason="r", until_ms=2000, now_ms=1000)
    assert pauses.clear(SOURCE, now_ms=2100) is True
    assert pauses.clear(SOURCE, now_ms=2100) is False
    assert pauses.get(SOURCE) is None
    assert pauses.gate(SOURCE, now_ms=2200, window_ms=100).gate == "open"
    again = pauses.extend(SOURCE, kind="unreachable", reason="r", until_ms=3000, now_ms=2200)
    assert again.strikes == 1


def test_pauses_get_many_reads_every_source_at_once(pauses):
    pauses.extend(SOURCE, kind="auth", reason="a", until_ms=2000, now_ms=1000)
    pauses.extend(OTHER, kind="throttled", reason="t", until_ms=1500, now_ms=1000)
    found = pauses.get_many([SOURCE, OTHER, "hospital-none"])
    assert {s: p.kind for s, p in found.items()} == {SOURCE: "auth", OTHER: "throttled"}
    assert [s for s, p in found.items() if p.active(1800)] == [SOURCE]

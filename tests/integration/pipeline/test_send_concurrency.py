"""Bundles ready together go side by side (`send_concurrency`), never more at once than the
setting, and an error in one of them stops the round only after the others are recorded.

The Registry client of these harnesses sends through a transport that holds each bundle request
at a barrier until as many have arrived as the test expects side by side: sent one after
another, the first request would wait alone until the barrier's deadline and break it.
"""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest

from api_client import RegistryClient
from worker.flow.flush import flush
from worker.flow.recover import recover
from worker.results import backlog
from worker.store.keys import prefix

from .checks import check_against_oracle
from .conftest import SOURCE, Harness, HarnessFactory

pytestmark = pytest.mark.integration

BARRIER_DEADLINE_S = 10.0


class GatedTransport(httpx.BaseTransport):
    """Real HTTP to the emulator; each bundle request first waits at `gate` (if any) and may be
    failed by `fail_id` (an id it names) after the gate; counts bundle requests in flight."""

    def __init__(self, gate: threading.Barrier | None = None, fail_id: str | None = None) -> None:
        self._inner = httpx.HTTPTransport()
        self._gate = gate
        self._fail_id = fail_id
        self._lock = threading.Lock()
        self.in_flight = 0
        self.most_in_flight = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if not request.url.path.endswith("/bundle"):
            return self._inner.handle_request(request)
        with self._lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self._gate is not None:
                self._gate.wait()
            if self._fail_id is not None and self._fail_id.encode() in request.read():
                raise RuntimeError("the transport broke on purpose")
            return self._inner.handle_request(request)
        finally:
            with self._lock:
                self.in_flight -= 1

    def close(self) -> None:
        self._inner.close()


def _gated(harness: Harness, transport: GatedTransport) -> None:
    settings = harness.deps.settings
    harness.deps.client.close()
    harness.deps.client = RegistryClient(settings.client_config(), transport=transport)


def _offices(count: int) -> list[dict[str, Any]]:
    return [
        {"eventId": f"ev-o{i}", "sourceKey": SOURCE, "target": "resource", "action": "UPSERT",
         "type": "office", "id": f"o{i}", "data": {"name": f"Office {i}"}}
        for i in range(count)
    ]  # fmt: skip


@pytest.mark.parametrize("concurrency", [2, 3])
def test_ready_bundles_go_side_by_side_up_to_the_setting(
    harness_factory: HarnessFactory, concurrency: int
) -> None:
    # Given one bundle per operation, so that one round makes several independent bundles ready
    harness = harness_factory(max_bundle_ops=1, send_concurrency=concurrency)
    transport = GatedTransport(threading.Barrier(concurrency, timeout=BARRIER_DEADLINE_S))
    _gated(harness, transport)

    # When a round of 2 x concurrency of them is drained
    harness.publish(_offices(2 * concurrency))
    harness.drain(deadline_s=30)

    # Then every barrier filled (none broke, else a send raised), never past the setting
    assert transport.most_in_flight == concurrency
    check_against_oracle(harness.deps, harness.registry, SOURCE, harness.stored_events())


def test_one_after_another_when_the_setting_is_one(harness_factory: HarnessFactory) -> None:
    harness = harness_factory(max_bundle_ops=1, send_concurrency=1)
    transport = GatedTransport()
    _gated(harness, transport)

    harness.publish(_offices(6))
    harness.drain(deadline_s=30)

    assert transport.most_in_flight == 1
    check_against_oracle(harness.deps, harness.registry, SOURCE, harness.stored_events())


def test_an_error_in_one_send_is_raised_once_the_others_are_recorded(
    harness_factory: HarnessFactory,
) -> None:
    # Given three bundles ready together, the second of which breaks the transport
    harness, transport = _round_that_breaks(harness_factory, sent_together=3, count=3, fail="o1")

    # When the round is planned and sent
    with pytest.raises(RuntimeError, match="on purpose"):
        flush(harness.deps, SOURCE)

    # Then the two others were recorded; the broken one waits for recovery (`sending`)
    assert transport.most_in_flight == 3
    current = backlog(harness.deps)
    assert (current.buffered, current.in_flight) == (0, 1), current.to_dict()


def test_after_an_error_the_bundles_not_sent_are_handed_back_at_once(
    harness_factory: HarnessFactory,
) -> None:
    # Given four bundles ready together, two sent at a time, the first of which breaks
    harness, _ = _round_that_breaks(harness_factory, sent_together=2, count=4, fail="o0")
    nudged: list[str] = []
    harness.deps.nudge = lambda kind, source, ids: nudged.extend(ids)

    # When the round is planned and sent: the error stops new sends
    with pytest.raises(RuntimeError, match="on purpose"):
        flush(harness.deps, SOURCE)

    # Then the two never sent are unclaimed, due now, and nudged (not left to the claim TTL)
    client = harness.deps.store.client
    records = {b: client.hgetall(f"{prefix(SOURCE)}bd:{b}") for b in _bundle_ids(harness)}
    unsent = sorted(b for b, r in records.items() if r["st"] == "planned")
    assert len(unsent) == 2, records
    assert all(int(records[b]["cexp"]) == 0 for b in unsent)
    assert sorted(nudged) == unsent
    # and any worker sends them at once: recovery claims and records both
    recovered = recover(harness.deps, SOURCE, unsent)
    assert recovered.claimed == 2
    assert all(client.hget(f"{prefix(SOURCE)}bd:{b}", "st") == "recorded" for b in unsent)


def _round_that_breaks(
    harness_factory: HarnessFactory, *, sent_together: int, count: int, fail: str
) -> tuple[Harness, GatedTransport]:
    """`count` offices published, one bundle each, `sent_together` at a time through a gated
    transport that breaks the request naming `fail`; the pipeline's clock past their linger, so
    a flush plans and sends them now."""
    harness = harness_factory(max_bundle_ops=1, send_concurrency=sent_together)
    gate = threading.Barrier(sent_together, timeout=BARRIER_DEADLINE_S)
    transport = GatedTransport(gate, fail_id=fail)
    _gated(harness, transport)
    harness.publish(_offices(count))
    offset = harness.deps.settings.max_age_ms + 1
    now = harness.deps.now_ms
    harness.deps.now_ms = lambda: now() + offset
    return harness, transport


def _bundle_ids(harness: Harness) -> list[str]:
    pattern = f"{prefix(SOURCE)}bd:*"
    return [key.rsplit(":", 1)[1] for key in harness.deps.store.client.scan_iter(match=pattern)]


def test_a_hand_back_that_fails_does_not_hide_the_error(
    harness_factory: HarnessFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness, _ = _round_that_breaks(harness_factory, sent_together=2, count=4, fail="o0")

    def broken_mark(*_: Any, **__: Any) -> list[bool]:
        raise ConnectionError("Redis went away too")

    monkeypatch.setattr(harness.deps.store, "mark", broken_mark)
    with pytest.raises(RuntimeError, match="on purpose"):
        flush(harness.deps, SOURCE)

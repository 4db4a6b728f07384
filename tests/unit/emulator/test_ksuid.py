"""Generated ids: the documented shape, time-ordered, and repeatable under one seed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from api_client import ids
from emulator.config import EmulatorConfig
from emulator.ksuid import BASE62_ALPHABET, KsuidGenerator, encode_base62, ksuid
from emulator.registry import Registry
from tests.unit.emulator.conftest import FakeClock
from tests.unit.emulator.ops import bundle, provider, res


def test_ksuid_has_the_documented_shape(clock: FakeClock) -> None:
    generated = KsuidGenerator(clock, seed=0)()

    assert len(generated) == ids.GENERATED_ID_LENGTH == 27
    assert set(generated) <= set(BASE62_ALPHABET)
    assert ids.is_resource_id(generated)


def test_ksuid_of_late_2024_starts_like_the_seed_ids(clock: FakeClock) -> None:
    assert KsuidGenerator(clock, seed=0)().startswith("2p")


def test_ksuid_prefix_orders_by_time() -> None:
    moment = datetime(2024, 11, 28, 22, 34, 58, tzinfo=UTC)

    earlier = ksuid(moment, 2**128 - 1)
    later = ksuid(moment + timedelta(seconds=1), 0)

    assert earlier < later


def test_ksuid_repeats_under_one_seed_and_differs_across_seeds(clock: FakeClock) -> None:
    first = KsuidGenerator(clock, seed=7)
    again = KsuidGenerator(clock, seed=7)
    other = KsuidGenerator(clock, seed=8)

    run = [first() for _ in range(5)]

    assert run == [again() for _ in range(5)]
    assert run != [other() for _ in range(5)]
    assert len(set(run)) == 5


def test_ksuid_encoding_bounds() -> None:
    assert encode_base62(0) == "0" * 27
    assert encode_base62(2**160 - 1) == "aWgEPTl1tmebfsQzFP4bxwgy80V"
    with pytest.raises(ValueError, match="more than 27"):
        encode_base62(62**27)


def _run(seed: int) -> tuple[list[Any], list[Any], list[Any]]:
    clock = FakeClock()
    registry = Registry(
        EmulatorConfig(seed=seed, shuffle_receipts=True, task_pending_polls=0), clock=clock
    )
    answer = registry.bundle(
        "s",
        bundle([res("CREATE", "office", data={}), res("CREATE", "provider", data={})]),
        raw_size=10,
    )
    task_id = registry.bulk(
        "s", "resources", {"operations": [provider(str(n)) for n in range(10)]}, raw_size=10
    ).body["taskId"]
    receipts = registry.task_status("s", task_id, with_receipts=True).body["receipts"]
    return answer.body["resourceOperationReceipts"], receipts, registry.write_log()


def test_registry_is_deterministic_under_a_seed() -> None:
    assert _run(3) == _run(3)
    assert _run(3)[0] != _run(4)[0]


def test_registry_reset_restarts_from_the_seed(clock: FakeClock) -> None:
    registry = Registry(EmulatorConfig(seed=5), clock=clock)
    first = registry.create_resource("s", "provider", {"data": {}}).body["resource"]["id"]

    registry.reset()

    assert registry.snapshot("s") == {"resources": [], "relationships": []}
    assert registry.counts() == {}
    assert registry.create_resource("s", "provider", {"data": {}}).body["resource"]["id"] == first

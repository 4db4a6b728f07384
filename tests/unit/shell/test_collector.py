"""The garbage collector tuning of worker processes (`worker.collector`)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from celery import signals

from worker.collector import (
    OLDER_EVERY,
    YOUNG_THRESHOLD,
    connect_collector_tuning,
    tune_collector,
)


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_tuning_freezes_what_exists_and_collects_the_young_generation_less_often(
    restored_collector,
):
    gc.unfreeze()
    survivor = [object() for _ in range(10)]

    tune_collector()

    assert gc.get_threshold() == (YOUNG_THRESHOLD, OLDER_EVERY, OLDER_EVERY)
    assert gc.get_freeze_count() >= len(survivor)
    assert YOUNG_THRESHOLD > 700  # less often than CPython's default


def test_worker_start_and_each_pool_process_tune_once_however_many_apps(restored_collector):
    connect_collector_tuning()
    connect_collector_tuning()

    for signal in (signals.worker_init, signals.worker_process_init):
        gc.set_threshold(700, 10, 10)
        signal.send(sender=None)
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD
        ours = [r for r in signal.receivers if r[0][0] == "clinia-ingest-collector-tuning"]
        assert len(ours) == 1

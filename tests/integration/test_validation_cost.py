"""`python -m bench.validation_cost` measures publish with and without the profile check."""

from __future__ import annotations

import pytest

from bench.validation_cost import measure


@pytest.mark.usefixtures("redis_server")  # skips without redis-server, as the bench does
def test_validation_cost_measures_both_publishes_and_the_check_alone() -> None:
    figures = measure(events=400, batch=100, payload_bytes=0, rounds=1)

    assert set(figures) == {"publish_off", "publish_on", "check", "validate_only", "check_share"}
    assert figures["publish_off"] > 0
    assert 0 < figures["check"] < figures["publish_on"]
    assert 0 < figures["validate_only"] < figures["publish_on"]
    assert figures["check_share"] == pytest.approx(
        figures["check"] / (figures["publish_on"] - figures["check"])
    )

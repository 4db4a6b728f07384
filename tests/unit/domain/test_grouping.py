"""Grouping: the group an event names (a packing preference), by default or by a function."""

from __future__ import annotations

import pytest

from worker.domain.grouping import default_group, named_group

from .factories import rel, res


def test_default_group_of_a_resource_is_its_own_type_and_id():
    assert default_group(res("UPSERT", "office", "o1")) == "office:o1"


def test_default_group_of_a_relationship_is_its_from_resource():
    assert default_group(rel("UPSERT", frm=("office", "o1"), to=("provider", "p1"))) == "office:o1"


def test_named_group_prefers_the_event_group_over_the_function():
    event = res("UPSERT", group="batch-7")
    assert named_group(event) == "batch-7"
    assert named_group(res("UPSERT"), lambda e: "fixed") == "fixed"


def test_named_group_refuses_a_function_that_makes_an_unsafe_name():
    with pytest.raises(ValueError, match="group"):
        named_group(res("UPSERT"), lambda e: "{bad}")

"""Lake keys: ``{scene}/{sub_scene}/{skills}_{timestamp}.lance``, and the robot-qualified key a
second recording of the same labels and instant takes — always within the byte limits that
planning checks, however long the robot id."""

from datetime import datetime, timezone

import pytest

from axon_dagster.domain import PlanningError
from axon_dagster.domain.layout import (
    MAX_NAME_BYTES,
    ROBOT_QUALIFIER_BYTES,
    axon_sidecar_key,
    check_label_limits,
    cloud_dataset_key,
    robot_qualifier,
)

AT = datetime(2026, 11, 26, 9, 30, 0, 123000, tzinfo=timezone.utc)


def test_the_plain_and_the_robot_qualified_key() -> None:
    assert cloud_dataset_key("warehouse", "aisle_1", ["nav", "pick"], AT) == "warehouse/aisle_1/nav+pick_20261126T093000.123000Z.lance"
    assert cloud_dataset_key("warehouse", "", ["nav"], AT, "robot-7") == "warehouse/nav_20261126T093000.123000Z_robot-7.lance"


def test_a_long_robot_id_is_replaced_by_a_stable_hash_of_the_allowed_length() -> None:
    long_a, long_b = "robot-" + "a" * 100, "robot-" + "b" * 100
    assert robot_qualifier(long_a) == robot_qualifier(long_a) != robot_qualifier(long_b)
    assert len(robot_qualifier(long_a)) == ROBOT_QUALIFIER_BYTES
    with pytest.raises(Exception, match="robot_id"):
        robot_qualifier("../etc")


def test_labels_that_planning_accepts_make_names_that_fit_even_robot_qualified() -> None:
    longest = ["s" * 100, "t" * 128]  # shortened below to as long as the limit allows (room for the robot part kept)
    while True:
        try:
            check_label_limits("warehouse", "aisle_1", longest)
        except PlanningError:
            longest[-1] = longest[-1][:-1]
            continue
        break
    key = cloud_dataset_key("warehouse", "aisle_1", longest, AT, "robot-" + "z" * 120)
    name = axon_sidecar_key(key).rsplit("/", 1)[1]  # the longest file name beside the dataset
    assert len(name.encode()) <= MAX_NAME_BYTES
    with pytest.raises(PlanningError, match="use fewer or shorter skills"):
        check_label_limits("warehouse", "aisle_1", [*longest[:-1], longest[-1] + "x"])

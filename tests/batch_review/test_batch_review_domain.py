"""Batch review rules, without a database."""

from __future__ import annotations

import pytest

from axon_dagster.domain import PlanningError
from axon_dagster.domain.batch_review import (
    BatchEdit,
    BatchReviewError,
    BatchReviewStatus as S,
    check_editable,
    check_move,
    check_skills_of_order,
    dispatchable,
    initial_status,
)


def test_only_approved_batches_dispatch():
    assert dispatchable(S.APPROVED)
    assert not dispatchable(S.PENDING_REVIEW) and not dispatchable(S.REJECTED)


def test_auto_approve_keeps_todays_flow():
    assert initial_status(True) is S.APPROVED
    assert initial_status(False) is S.PENDING_REVIEW


def test_moves():
    assert check_move("b", S.PENDING_REVIEW, S.APPROVED, released=False)
    assert check_move("b", S.APPROVED, S.REJECTED, released=False)
    assert not check_move("b", S.APPROVED, S.APPROVED, released=True)  # replay
    with pytest.raises(BatchReviewError, match="released"):
        check_move("b", S.APPROVED, S.REJECTED, released=True)
    with pytest.raises(BatchReviewError, match="rejected"):
        check_move("b", S.REJECTED, S.APPROVED, released=False)


def test_editable_only_before_release_and_not_when_rejected():
    check_editable("b", S.PENDING_REVIEW, released=False)
    check_editable("b", S.APPROVED, released=False)
    with pytest.raises(BatchReviewError, match="released"):
        check_editable("b", S.APPROVED, released=True)
    with pytest.raises(BatchReviewError, match="rejected"):
        check_editable("b", S.REJECTED, released=False)


@pytest.mark.parametrize(
    "data, word",
    [
        ({"colour": 1}, "colour"),
        ({}, "at least one"),
        ({"task_count": 0}, "task_count"),
        ({"task_count": True}, "task_count"),
        ({"duration_seconds": -1}, "duration_seconds"),
        ({"skills": []}, "skills"),
        ({"skills": ["a", "a"]}, "duplicate"),
        ({"topics": ["imu"]}, "topics"),
    ],
)
def test_bad_edits_name_the_key(data, word):
    with pytest.raises(PlanningError, match=word):
        BatchEdit.from_dict(data)


def test_edit_and_skills_of_order():
    edit = BatchEdit.from_dict({"task_count": 3, "topics": ["/imu", "/imu"], "skills": ["nav"]})
    assert edit.changes() == {"skills": ["nav"], "task_count": 3, "topics": ["/imu"]}
    check_skills_of_order("b", ("nav",), ("nav", "pick"))
    with pytest.raises(PlanningError, match="wipe"):
        check_skills_of_order("b", ("wipe",), ("nav", "pick"))

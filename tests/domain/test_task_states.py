import itertools

import pytest

from axon_dagster.domain import (
    TASK_TRANSITIONS,
    IllegalTransitionError,
    Task,
    TaskStatus,
)


def make_task(status: TaskStatus) -> Task:
    return Task(task_id="t1", order_id="o1", batch_id="b1", scene="warehouse", skills=("nav",), status=status)


LEGAL = [(a, b) for a, targets in TASK_TRANSITIONS.items() for b in targets]
ILLEGAL = [(a, b) for a, b in itertools.product(TaskStatus, TaskStatus) if b not in TASK_TRANSITIONS[a] and a != b]


@pytest.mark.parametrize("current,target", LEGAL, ids=lambda s: s.value)
def test_legal_transition_changes_status(current, target):
    task = make_task(current)
    assert task.transition(target, reason="boom") is True
    assert task.status is target


@pytest.mark.parametrize("current,target", ILLEGAL, ids=lambda s: s.value)
def test_every_illegal_transition_is_refused_and_changes_nothing(current, target):
    task = make_task(current)
    with pytest.raises(IllegalTransitionError) as err:
        task.transition(target)
    assert task.status is current
    message = str(err.value)
    assert "task t1" in message and current.value in message and target.value in message


@pytest.mark.parametrize("status", list(TaskStatus), ids=lambda s: s.value)
def test_replaying_the_current_state_is_a_harmless_no_op(status):
    task = make_task(status)
    before = task.updated_at
    assert task.transition(status) is False
    assert task.status is status and task.updated_at == before


def test_happy_path_matches_design_diagram():
    task = make_task(TaskStatus.PENDING)
    for step in ("READY", "ASSIGNED", "EXECUTING", "EXECUTED", "UPLOADED"):
        assert task.transition(step)
    assert task.status.terminal


def test_teleop_start_without_pickup_is_allowed():
    task = make_task(TaskStatus.READY)
    assert task.transition(TaskStatus.EXECUTING)


def test_failure_keeps_its_reason():
    task = make_task(TaskStatus.EXECUTING)
    task.transition(TaskStatus.FAILED, reason="recorder died")
    assert task.failure_reason == "recorder died"


def test_terminal_states_have_no_exit():
    for status in (TaskStatus.UPLOADED, TaskStatus.FAILED, TaskStatus.CANCELLED):
        assert TASK_TRANSITIONS[status] == frozenset()
        assert status.terminal

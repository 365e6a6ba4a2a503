"""transition_event_id always yields a valid event id (<= 128 characters): short task ids keep the
readable ``<task_id>.<status>`` form; long ones get a deterministic, collision-free shortened form."""

import pytest

from axon_dagster.domain import TaskEvent, TaskStatus, transition_event_id, validate_id
from axon_dagster.domain.ids import MAX_ID_LENGTH

LONGEST_STATUS = max(TaskStatus, key=lambda s: len(s.value))


def test_short_task_ids_stay_readable_and_one_character_more_is_shortened():
    assert transition_event_id("task-1", TaskStatus.EXECUTED) == "task-1.executed"
    assert transition_event_id("task-1", "READY") == "task-1.ready"
    # Right at the limit the readable form is kept; one character more and it is shortened.
    at_limit = "t" * (MAX_ID_LENGTH - len(".executed"))
    assert transition_event_id(at_limit, TaskStatus.EXECUTED) == f"{at_limit}.executed"
    over = transition_event_id(at_limit + "t", TaskStatus.EXECUTED)
    assert len(over) == MAX_ID_LENGTH and over.startswith("tttt") and over.endswith(".executed")


# Every length here overflows the readable form, whatever the status (the shortest is ".ready").
@pytest.mark.parametrize("length", [MAX_ID_LENGTH - len(".ready") + 1, 127, MAX_ID_LENGTH])
@pytest.mark.parametrize("status", list(TaskStatus))
def test_long_task_ids_fit_the_event_id_limit(length, status):
    task_id = validate_id("order-7." + "x" * (length - len("order-7.")), "task_id")
    event_id = transition_event_id(task_id, status)
    assert len(event_id) <= MAX_ID_LENGTH
    assert validate_id(event_id, "event_id") == event_id
    TaskEvent(event_id=event_id, task_id=task_id, status=status)  # accepted as an event
    assert event_id.endswith(f".{status.value.lower()}")
    assert event_id.startswith("order-7.xxxx")  # still readable by its prefix


def test_shortened_ids_are_deterministic_and_never_collide():
    base = "o" * 120
    a, b = base + "-aaaaaaa", base + "-aaaaaab"  # same 120-char prefix, differ only in the dropped tail
    assert transition_event_id(a, LONGEST_STATUS) == transition_event_id(a, LONGEST_STATUS)  # a replay is a duplicate
    assert len(transition_event_id(a, LONGEST_STATUS)) <= MAX_ID_LENGTH
    assert transition_event_id(a, LONGEST_STATUS) != transition_event_id(b, LONGEST_STATUS)
    assert transition_event_id(a, TaskStatus.READY) != transition_event_id(a, TaskStatus.EXECUTED)
    # Many ids sharing a long prefix: all distinct.
    many = {transition_event_id(base + f"-{i}", TaskStatus.EXECUTED) for i in range(2000)}
    assert len(many) == 2000 and all(len(e) <= MAX_ID_LENGTH for e in many)


def test_dots_at_the_cut_do_not_make_an_invalid_id():
    task_id = "a" + "." + "b" * 126  # a '.' wherever the prefix is cut must not produce '..'
    for cut_char in range(1, 127):
        tid = "a" * cut_char + "." + "b" * (MAX_ID_LENGTH - cut_char - 1)
        validate_id(transition_event_id(validate_id(tid), TaskStatus.EXECUTING))
    validate_id(transition_event_id(task_id, TaskStatus.EXECUTING))

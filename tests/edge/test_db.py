"""The robot's task database against a real SQLite file: WAL, one transaction per change + event,
the domain state machine, the pull cursor, cloud-side moves, survival across reopen."""

from __future__ import annotations

import sqlite3

import pytest

from axon_dagster.domain import IllegalTransitionError, TaskStatus
from axon_edge.db import EdgeDB
from axon_edge.errors import InvalidRequest, UnknownTask

ROBOT = "robot-1"


def cloud_task(task_id: str, revision: int, status: str = "PENDING", **extra) -> dict:
    return {
        "task_id": task_id,
        "order_id": "o1",
        "batch_id": "o1_batch_nav_1",
        "scene": "warehouse",
        "sub_scene": "aisle_1",
        "skills": ["nav"],
        "duration_seconds": 2.0,
        "topics": ["/imu"],
        "priority": 0,
        "status": status,
        "robot_id": ROBOT,
        "requirements": {"max_gap_seconds": 1.0},
        "revision": revision,
        **extra,
    }


@pytest.fixture
def db(tmp_path):
    database = EdgeDB(tmp_path / "edge.db")
    yield database
    database.close()


def test_opens_in_wal_mode_with_reference_schema(db, tmp_path):
    assert db.pragma("journal_mode") == "wal"
    assert db.pragma("synchronous") == 1  # NORMAL
    assert db.pragma("busy_timeout") == 5000
    conn = sqlite3.connect(tmp_path / "edge.db")
    columns = {row[1] for row in conn.execute("PRAGMA table_info(tasks)")}
    assert {
        "task_id", "order_id", "batch_id", "scene", "sub_scene", "skills", "status", "config_path", "dataset_path",
        "robot_id", "data_collector_id", "created_at", "ready_at", "executed_at", "uploaded_at", "uploaded",
        "metadata", "duration_seconds", "topics", "failure_reason", "cloud_revision",
    } <= columns
    outbox = {row[1] for row in conn.execute("PRAGMA table_info(outbox)")}
    assert {"id", "event_id", "task_id", "status", "occurred_at", "data", "attempts", "last_error", "delivered_at"} <= outbox
    assert {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")} >= {
        "tasks", "orders", "batches", "outbox", "sync_state"
    }


def test_pull_stores_tasks_orders_batches_and_advances_cursor(db):
    outcome = db.store_pulled([cloud_task("t1", 3), cloud_task("t2", 5)], cursor=5, robot_id=ROBOT)
    assert outcome.new_task_ids == ["t1", "t2"]
    assert db.pull_cursor() == 5
    task = db.get_task("t1")
    assert task.status is TaskStatus.PENDING and task.skills == ("nav",) and task.topics == ("/imu",)
    assert task.metadata["requirements"] == {"max_gap_seconds": 1.0} and task.cloud_revision == 3
    assert [o["order_id"] for o in db.list_orders()] == ["o1"] and db.list_orders()[0]["skills"] == ["nav"]
    assert [(b["batch_id"], b["status"]) for b in db.list_batches()] == [("o1_batch_nav_1", "pending")]
    # A page that re-delivers known tasks (the cloud echoing our own changes) adds nothing new.
    again = db.store_pulled([cloud_task("t1", 7, status="READY")], cursor=7, robot_id=ROBOT)
    assert again.new_task_ids == [] and db.get_task("t1").status is TaskStatus.PENDING
    assert db.get_task("t1").cloud_revision == 7 and db.pull_cursor() == 7


def test_malformed_pull_page_changes_nothing(db):
    db.store_pulled([cloud_task("t1", 1)], cursor=1, robot_id=ROBOT)
    bad_pages = [
        [cloud_task("t2", 2), cloud_task("../etc", 3)],  # path traversal id
        [cloud_task("t2", 2), {"task_id": "t3", "revision": 3}],  # missing fields
        [cloud_task("t2", 2, robot_id="robot-2")],  # another robot's task
        [cloud_task("t2", -1)],
    ]
    for page in bad_pages:
        with pytest.raises(InvalidRequest):
            db.store_pulled(page, cursor=3, robot_id=ROBOT)
    assert [t.task_id for t in db.list_tasks()] == ["t1"]
    assert db.pull_cursor() == 1


def test_transition_writes_change_and_event_in_one_transaction(db):
    db.store_pulled([cloud_task("t1", 1)], cursor=1, robot_id=ROBOT)
    out = db.transition("t1", TaskStatus.READY, changes={"config_path": "/c/t1.yaml"}, event_data={"config_path": "/c/t1.yaml"})
    assert out.changed and out.event_id == "t1.ready"
    task = db.get_task("t1")
    assert task.status is TaskStatus.READY and task.ready_at is not None and task.config_path == "/c/t1.yaml"
    [event] = db.undelivered_events()
    assert (event.event_id, event.status, event.data) == ("t1.ready", TaskStatus.READY, {"config_path": "/c/t1.yaml"})
    assert db.list_batches()[0]["status"] == "active"


def test_replay_is_a_no_op_and_illegal_transition_changes_nothing(db):
    db.store_pulled([cloud_task("t1", 1)], cursor=1, robot_id=ROBOT)
    db.transition("t1", TaskStatus.READY)
    replay = db.transition("t1", TaskStatus.READY)
    assert not replay.changed and replay.event_id is None
    with pytest.raises(IllegalTransitionError, match="READY -> EXECUTED"):
        db.transition("t1", TaskStatus.EXECUTED, changes={"dataset_path": "/x"})
    task = db.get_task("t1")
    assert task.status is TaskStatus.READY and task.dataset_path is None
    assert [e.event_id for e in db.outbox()] == ["t1.ready"]
    with pytest.raises(UnknownTask):
        db.transition("nope", TaskStatus.READY)
    with pytest.raises(ValueError, match="cannot set"):
        db.transition("t1", TaskStatus.ASSIGNED, changes={"status": "UPLOADED"})
    assert db.get_task("t1").status is TaskStatus.READY


def test_failed_insert_of_event_rolls_back_the_state_change(db):
    """The event and the change share one transaction: if the event cannot be written, the
    change is not either."""
    db.store_pulled([cloud_task("t1", 1)], cursor=1, robot_id=ROBOT)
    # Plant an event with the id the READY transition will use, so its INSERT fails.
    with db.write() as conn:
        conn.execute("INSERT INTO outbox (event_id, task_id, status, occurred_at) VALUES ('t1.ready', 't1', 'READY', 'x')")
    with pytest.raises(sqlite3.IntegrityError):
        db.transition("t1", TaskStatus.READY, changes={"config_path": "/c"})
    task = db.get_task("t1")
    assert task.status is TaskStatus.PENDING and task.config_path is None and task.ready_at is None


def test_cloud_side_moves_apply_without_events(db):
    db.store_pulled([cloud_task("t1", 1), cloud_task("t2", 2), cloud_task("t3", 3)], cursor=3, robot_id=ROBOT)
    for status in (TaskStatus.READY, TaskStatus.EXECUTING, TaskStatus.EXECUTED):
        db.transition("t1", status)
    db.transition("t3", TaskStatus.READY)
    db.transition("t3", TaskStatus.EXECUTING)
    before = len(db.outbox())
    outcome = db.store_pulled(
        [cloud_task("t1", 4, status="UPLOADED"), cloud_task("t2", 5, status="CANCELLED"),
         cloud_task("t3", 6, status="CANCELLED")],
        cursor=6,
        robot_id=ROBOT,
    )
    assert outcome.cloud_moves == [("t1", TaskStatus.UPLOADED), ("t2", TaskStatus.CANCELLED)]
    t1 = db.get_task("t1")
    assert t1.status is TaskStatus.UPLOADED and t1.uploaded and t1.uploaded_at is not None
    assert db.get_task("t2").status is TaskStatus.CANCELLED
    # Cancelled in the cloud while this robot records it: the robot keeps its own truth.
    assert db.get_task("t3").status is TaskStatus.EXECUTING
    assert len(db.outbox()) == before


def test_outbox_delivery_bookkeeping_and_backlog(db):
    db.store_pulled([cloud_task("t1", 1), cloud_task("t2", 2)], cursor=2, robot_id=ROBOT)
    db.transition("t1", TaskStatus.READY)
    db.transition("t2", TaskStatus.READY)
    db.transition("t1", TaskStatus.ASSIGNED, changes={"data_collector_id": "alice"}, event_data={"data_collector_id": "alice"})
    assert [e.event_id for e in db.undelivered_events()] == ["t1.ready", "t2.ready", "t1.assigned"]
    db.record_delivery_failure(["t1.ready"], "down")
    assert db.undelivered_events(1)[0].attempts == 1
    db.record_delivery([("t1.ready", "applied", None), ("t2.ready", "rejected", "illegal")])
    backlog = db.outbox_backlog()
    assert backlog.count == 1 and backlog.rejected == 1 and backlog.oldest_occurred_at is not None
    assert [e.event_id for e in db.undelivered_events()] == ["t1.assigned"]
    with pytest.raises(ValueError, match="unknown delivery result"):
        db.record_delivery([("t1.assigned", "maybe", None)])
    assert db.outbox_backlog().count == 1


def test_state_survives_reopen(tmp_path):
    first = EdgeDB(tmp_path / "edge.db")
    first.store_pulled([cloud_task("t1", 9)], cursor=9, robot_id=ROBOT)
    first.transition("t1", TaskStatus.READY)
    first.set_pending_command("t1", "start")
    first.close()
    second = EdgeDB(tmp_path / "edge.db")
    try:
        task = second.get_task("t1")
        assert task.status is TaskStatus.READY and task.pending_command == "start"
        assert second.pull_cursor() == 9 and [e.event_id for e in second.undelivered_events()] == ["t1.ready"]
    finally:
        second.close()

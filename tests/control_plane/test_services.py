"""Service layer on both backends: idempotent events, robot isolation, cursors, roll-ups, datasets."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from axon_dagster.domain import (
    DomainError,
    IllegalTransitionError,
    InvalidIdError,
    PlanningError,
    ReviewDecisionFinal,
    TaskEvent,
    TaskStatus,
    TaskTemplate,
)
from axon_dagster import control_plane as cp
from axon_dagster.control_plane.datasets import MAX_UPLOAD_ERROR
from axon_dagster.control_plane.errors import AlreadyExistsError, AuthenticationError, InvalidRequestError, NotFoundError
from axon_dagster.control_plane.persistence import UnitOfWorkFactory
from axon_dagster.control_plane.persistence.schema import RobotRow

S = TaskStatus


@pytest.fixture
def fleet(uow_factory: UnitOfWorkFactory) -> dict[str, str]:
    """Two robots and one order of 2 skills x 2 tasks, dispatched: {task_id: robot_id}."""
    cp.register_robot(uow_factory(), "robot-a")
    cp.register_robot(uow_factory(), "robot-b")
    cp.create_order(uow_factory(), "o1", "warehouse", ["nav", "pick"], sub_scene="aisle_1")
    cp.plan_order(uow_factory(), "o1", "per_skill", TaskTemplate(task_count=2, duration_seconds=5, topics=("/imu",)))
    return cp.dispatch_order(uow_factory(), "o1")


def _tasks_of(fleet: dict[str, str], robot: str) -> list[str]:
    return sorted(t for t, r in fleet.items() if r == robot)


def _event(task_id: str, status: TaskStatus, event_id: str | None = None, **data: str) -> TaskEvent:
    return TaskEvent(event_id or f"{task_id}.{status.value.lower()}", task_id, status, data=data)


def test_dispatch_spreads_tasks_and_robots_pull_only_their_own(uow_factory: UnitOfWorkFactory, fleet: dict[str, str]) -> None:
    assert sorted(fleet.values()) == ["robot-a", "robot-a", "robot-b", "robot-b"]
    page_a = cp.pull_tasks(uow_factory(), "robot-a", 0, 100)
    assert sorted(t.task_id for t in page_a.tasks) == _tasks_of(fleet, "robot-a")
    assert page_a.cursor == max(t.revision for t in page_a.tasks)
    assert cp.pull_tasks(uow_factory(), "robot-a", page_a.cursor, 100).tasks == []
    first = page_a.tasks[0]
    assert (first.scene, first.sub_scene, first.topics, first.requirements["rate_tolerance"]) == ("warehouse", "aisle_1", ["/imu"], 0.2)
    assert cp.dispatch_order(uow_factory(), "o1") == {}  # nothing left to assign


def test_pull_cursor_sees_every_later_change_including_cloud_side(uow_factory: UnitOfWorkFactory, fleet: dict[str, str]) -> None:
    mine = _tasks_of(fleet, "robot-a")
    cursor = cp.pull_tasks(uow_factory(), "robot-a", 0, 100).cursor
    cp.apply_events(uow_factory(), "robot-a", [_event(mine[0], S.READY)])
    # The robot's own news does not come back to it (no new revision for its own events) ...
    assert cp.pull_tasks(uow_factory(), "robot-a", cursor, 10).tasks == []
    cp.transition_task(uow_factory(), mine[1], "CANCELLED", reason="operator")
    cp.transition_task(uow_factory(), mine[0], "FAILED", reason="operator")
    # ... the cloud's does, every change once, in order, whatever the page size.
    page = cp.pull_tasks(uow_factory(), "robot-a", cursor, 1)
    page2 = cp.pull_tasks(uow_factory(), "robot-a", page.cursor, 1)
    assert [(t.task_id, t.status) for t in page.tasks + page2.tasks] == [(mine[1], "CANCELLED"), (mine[0], "FAILED")]
    assert cp.pull_tasks(uow_factory(), "robot-a", page2.cursor, 10).tasks == []


def test_duplicate_event_is_applied_once(uow_factory: UnitOfWorkFactory, fleet: dict[str, str]) -> None:
    task = _tasks_of(fleet, "robot-a")[0]
    ready = _event(task, S.READY)
    first = cp.apply_events(uow_factory(), "robot-a", [ready, ready])
    again = cp.apply_events(uow_factory(), "robot-a", [ready])
    assert [r.result for r in first] == ["applied", "duplicate"]
    assert [r.result for r in again] == ["duplicate"]
    # a second press with a fresh event id: the task is already there, nothing to record
    other_id = cp.apply_events(uow_factory(), "robot-a", [_event(task, S.READY, event_id="press-2")])
    assert [r.result for r in other_id] == ["duplicate"]
    with uow_factory().reading() as uow:
        assert uow.events.count() == 1
        assert uow.tasks.get(task).task.status is S.READY  # type: ignore[union-attr]


def test_event_for_another_robots_task_refuses_the_whole_request(uow_factory: UnitOfWorkFactory, fleet: dict[str, str], row_counts) -> None:
    mine, theirs = _tasks_of(fleet, "robot-b")[0], _tasks_of(fleet, "robot-a")[0]
    before = row_counts()
    with pytest.raises(NotFoundError):
        cp.apply_events(uow_factory(), "robot-b", [_event(mine, S.READY), _event(theirs, S.READY)])
    with pytest.raises(NotFoundError):
        cp.apply_events(uow_factory(), "robot-b", [_event("no-such-task", S.READY)])
    assert row_counts() == before
    assert cp.get_task(uow_factory(), mine).status == "PENDING"
    assert cp.get_task(uow_factory(), theirs).status == "PENDING"


def test_illegal_event_is_rejected_alone_and_changes_nothing(uow_factory: UnitOfWorkFactory, fleet: dict[str, str]) -> None:
    a, b = _tasks_of(fleet, "robot-a")
    results = cp.apply_events(uow_factory(), "robot-a", [_event(a, S.EXECUTED), _event(b, S.READY)])
    assert [r.result for r in results] == ["rejected", "applied"]
    assert "PENDING -> EXECUTED" in (results[0].error or "")
    assert cp.get_task(uow_factory(), a).status == "PENDING"
    assert cp.get_task(uow_factory(), b).status == "READY"


def test_event_data_is_copied_onto_the_task(uow_factory: UnitOfWorkFactory, fleet: dict[str, str]) -> None:
    a, b = _tasks_of(fleet, "robot-a")
    cp.apply_events(
        uow_factory(),
        "robot-a",
        [
            _event(a, S.READY),
            _event(a, S.ASSIGNED, data_collector_id="collector-7"),
            _event(a, S.EXECUTING, config_path="/cfg/a.yaml", dataset_path="/rec/a.lance"),
            _event(a, S.EXECUTED, dataset_path="/rec/a.lance", sidecar_path="/rec/a.json"),
            _event(b, S.FAILED, reason="recorder refused to start"),
        ],
    )
    ta, tb = cp.get_task(uow_factory(), a), cp.get_task(uow_factory(), b)
    assert (ta.status, ta.data_collector_id, ta.config_path, ta.dataset_path) == ("EXECUTED", "collector-7", "/cfg/a.yaml", "/rec/a.lance")
    assert (tb.status, tb.failure_reason) == ("FAILED", "recorder refused to start")
    executed = [e for e in cp.events_after(uow_factory(), 0, 100).events if e.status == "EXECUTED"]
    assert executed[0].data["sidecar_path"] == "/rec/a.json" and executed[0].robot_id == "robot-a"


def test_malformed_event_data_refuses_the_request(uow_factory: UnitOfWorkFactory, fleet: dict[str, str], row_counts) -> None:
    a = _tasks_of(fleet, "robot-a")[0]
    before = row_counts()
    with pytest.raises(InvalidRequestError):
        cp.apply_events(uow_factory(), "robot-a", [_event(a, S.READY), TaskEvent("e2", a, S.ASSIGNED, data={"data_collector_id": 7})])
    with pytest.raises(InvalidRequestError):
        cp.parse_events([{"event_id": "e3", "task_id": a, "status": "SLEEPING"}])
    with pytest.raises(InvalidIdError):
        cp.parse_events([{"event_id": "../e", "task_id": a, "status": "READY"}])
    for when in ("2026-11-26T09:30:00", "yesterday"):  # no timezone / not a timestamp
        with pytest.raises(InvalidRequestError, match="occurred_at"):
            cp.parse_events([{"event_id": "e4", "task_id": a, "status": "READY", "occurred_at": when}])
    parsed = cp.parse_events([{"event_id": "e5", "task_id": a, "status": "ready", "occurred_at": "2026-11-26T09:30:00+00:00", "data": None}])
    assert parsed[0].status is S.READY and parsed[0].occurred_at.tzinfo is not None and parsed[0].data == {}
    assert row_counts() == before


def test_events_after_pages_without_gaps_or_repeats(uow_factory: UnitOfWorkFactory, fleet: dict[str, str]) -> None:
    for robot in ("robot-a", "robot-b"):
        for task in _tasks_of(fleet, robot):
            cp.apply_events(uow_factory(), robot, [_event(task, S.READY), _event(task, S.EXECUTING)])
    cp.transition_task(uow_factory(), _tasks_of(fleet, "robot-b")[0], "FAILED", reason="motor fault")
    seen, cursor = [], 0
    while True:
        page = cp.events_after(uow_factory(), cursor, 3)
        if not page.events:
            assert page.cursor == cursor  # an empty page keeps the cursor
            break
        assert all(e.seq > cursor for e in page.events)
        seen.extend(page.events)
        cursor = page.cursor
    assert len(seen) == 9 and len({e.event_id for e in seen}) == 9
    assert [e.seq for e in seen] == sorted(e.seq for e in seen)
    assert seen[-1].status == "FAILED" and seen[-1].data["reason"] == "motor fault" and seen[-1].data["source"] == "cloud"


def test_cloud_transition_is_idempotent_and_refuses_illegal_moves(uow_factory: UnitOfWorkFactory, fleet: dict[str, str], row_counts) -> None:
    task = _tasks_of(fleet, "robot-a")[0]
    first = cp.transition_task(uow_factory(), task, "CANCELLED")
    again = cp.transition_task(uow_factory(), task, "cancelled")
    assert first.revision == again.revision and again.status == "CANCELLED"
    before = row_counts()
    with pytest.raises(IllegalTransitionError, match="CANCELLED -> UPLOADED"):
        cp.transition_task(uow_factory(), task, "UPLOADED")
    with pytest.raises(InvalidRequestError):
        cp.transition_task(uow_factory(), task, "DONE")
    with pytest.raises(NotFoundError):
        cp.transition_task(uow_factory(), "ghost", "FAILED")
    assert row_counts() == before
    # the robot reporting the same move later is a duplicate, not a second event
    assert [r.result for r in cp.apply_events(uow_factory(), "robot-a", [_event(task, S.CANCELLED)])] == ["duplicate"]


def test_order_and_batch_roll_ups(uow_factory: UnitOfWorkFactory, fleet: dict[str, str]) -> None:
    assert cp.get_order(uow_factory(), "o1").status == "pending"
    tasks = sorted(fleet)
    robot = fleet[tasks[0]]
    cp.apply_events(uow_factory(), robot, [_event(tasks[0], S.READY)])
    order = cp.get_order(uow_factory(), "o1")
    assert order.status == "active" and order.task_counts["READY"] == 1 and order.task_counts["PENDING"] == 3
    for t in tasks:
        cp.apply_events(uow_factory(), fleet[t], [_event(t, S.READY), _event(t, S.EXECUTING), _event(t, S.EXECUTED)])
        cp.transition_task(uow_factory(), t, "UPLOADED")
    assert cp.get_order(uow_factory(), "o1").status == "completed"
    batches = cp.list_batches(uow_factory(), "o1")
    assert [b.status for b in batches] == ["completed", "completed"] and [b.task_counts["UPLOADED"] for b in batches] == [2, 2]
    # a second order: one failure among terminal tasks rolls up to failed, all cancelled to cancelled
    cp.create_order(uow_factory(), "o2", "warehouse", ["nav"])
    plan = cp.plan_order(uow_factory(), "o2", "per_skill", TaskTemplate(task_count=2, duration_seconds=5))
    cp.transition_task(uow_factory(), plan.tasks[0].task_id, "CANCELLED")
    assert cp.get_batch(uow_factory(), plan.batches[0].batch_id).status == "active"
    cp.transition_task(uow_factory(), plan.tasks[1].task_id, "FAILED")
    assert cp.get_order(uow_factory(), "o2").status == "failed"
    listed = {o.order_id: o.status for o in cp.list_orders(uow_factory())}
    assert listed == {"o1": "completed", "o2": "failed"}
    snapshot = cp.metrics_snapshot(uow_factory())
    assert snapshot.orders_by_status == {"completed": 1, "failed": 1}
    assert snapshot.tasks_by_status["UPLOADED"] == 4


def test_planning_refusals_write_nothing(uow_factory: UnitOfWorkFactory, fleet: dict[str, str], row_counts) -> None:
    before = row_counts()
    with pytest.raises(AlreadyExistsError):
        cp.plan_order(uow_factory(), "o1", "per_skill", TaskTemplate())
    with pytest.raises(NotFoundError):
        cp.plan_order(uow_factory(), "nope", "per_skill", TaskTemplate())
    with pytest.raises(AlreadyExistsError):
        cp.create_order(uow_factory(), "o1", "warehouse", ["nav"])
    with pytest.raises(PlanningError):
        cp.create_order(uow_factory(), "o3", "warehouse", [])
    with pytest.raises(PlanningError):
        cp.create_order(uow_factory(), "o3", "warehouse", ["nav"], requirements={"max_gap": 1})
    cp.create_order(uow_factory(), "o4", "warehouse", ["nav"])
    after_create = row_counts()
    with pytest.raises(PlanningError):
        cp.plan_order(uow_factory(), "o4", "by_weather", TaskTemplate())
    with pytest.raises(NotFoundError):
        cp.dispatch_order(uow_factory(), "o1", ["robot-a", "robot-z"])
    assert row_counts() == after_create
    assert after_create["orders"] == before["orders"] + 1


def test_robot_tokens_are_stored_hashed_and_checked(uow_factory: UnitOfWorkFactory) -> None:
    registered = cp.register_robot(uow_factory(), "robot-x", name="Robot X")
    with pytest.raises(AlreadyExistsError):
        cp.register_robot(uow_factory(), "robot-x")
    assert cp.authenticate_robot(uow_factory(), registered.token) == "robot-x"
    for bad in (None, "", "not-a-token", registered.token + "x"):
        with pytest.raises(AuthenticationError):
            cp.authenticate_robot(uow_factory(), bad)
    with uow_factory.engine.connect() as conn:
        row = conn.execute(select(RobotRow.token_hash, RobotRow.last_seen_at).where(RobotRow.robot_id == "robot-x")).one()
    assert row.token_hash == cp.hash_token(registered.token) and registered.token not in row.token_hash
    assert row.last_seen_at is None  # authentication writes nothing; "last seen" is batched
    assert cp.list_robots(uow_factory())[0].name == "Robot X"


def test_last_seen_is_batched_and_never_moves_backwards(uow_factory: UnitOfWorkFactory) -> None:
    for r in ("robot-a", "robot-b"):
        cp.register_robot(uow_factory(), r)
    early, late = datetime(2026, 1, 1, tzinfo=timezone.utc), datetime(2026, 1, 2, tzinfo=timezone.utc)
    replica_1, replica_2 = cp.LastSeen(), cp.LastSeen()
    replica_1.saw("robot-a", late)
    replica_1.saw("robot-b", early)
    replica_2.saw("robot-a", early)  # an older sighting flushed later (another API process)
    assert replica_1.flush(uow_factory()) == 2 and replica_2.flush(uow_factory()) == 1
    assert replica_1.flush(uow_factory()) == 0  # nothing new: no write at all
    seen = {r.robot_id: r.last_seen_at for r in cp.list_robots(uow_factory())}
    assert seen == {"robot-a": late, "robot-b": early}
    replica_1.saw("robot-b", early + cp.LAST_SEEN_RESOLUTION / 2)  # within the resolution: not written again
    assert replica_1.flush(uow_factory()) == 0
    replica_1.saw("robot-b", early + cp.LAST_SEEN_RESOLUTION)
    assert replica_1.flush(uow_factory()) == 1


def _dataset_ready(uow_factory: UnitOfWorkFactory, fleet: dict[str, str]) -> str:
    task = sorted(fleet)[0]
    robot = fleet[task]
    cp.apply_events(
        uow_factory(), robot, [_event(task, S.READY), _event(task, S.EXECUTING), _event(task, S.EXECUTED, dataset_path="/rec/x.lance")]
    )
    cp.dataset_cached(uow_factory(), task, task, "/cache/x.lance", "a" * 64, 1000)
    return task


def test_dataset_happy_path_and_replays(uow_factory: UnitOfWorkFactory, fleet: dict[str, str]) -> None:
    ds = _dataset_ready(uow_factory, fleet)
    assert cp.get_dataset(uow_factory(), ds).source_path == "/rec/x.lance"
    assert cp.dataset_cached(uow_factory(), ds, ds, "/cache/x.lance", "a" * 64, 1000).status == "CACHED"  # replay
    inspected = cp.dataset_inspected(uow_factory(), ds, 0.95, "approved", {"checks": ["rows"]})
    assert (inspected.status, inspected.qc_outcome, inspected.inspection_report) == ("INSPECTED", "approved", {"checks": ["rows"]})
    assert cp.dataset_cached(uow_factory(), ds, ds, "/cache/x.lance", "a" * 64, 1000).status == "INSPECTED"  # late replay: no-op
    assert cp.dataset_upload_started(uow_factory(), ds).status == "UPLOADING"
    assert cp.dataset_upload_started(uow_factory(), ds).status == "UPLOADING"
    with pytest.raises(DomainError, match="digest"):
        cp.dataset_uploaded(uow_factory(), ds, "s3://b/x.lance", "b" * 64)
    done = cp.dataset_uploaded(uow_factory(), ds, "s3://b/x.lance", "a" * 64)
    assert (done.status, done.cloud_uri) == ("UPLOADED", "s3://b/x.lance")
    assert cp.dataset_uploaded(uow_factory(), ds, "s3://b/x.lance", "a" * 64).status == "UPLOADED"
    assert cp.dataset_upload_started(uow_factory(), ds).status == "UPLOADED"  # replay after the fact
    assert cp.dataset_inspected(uow_factory(), ds, 0.95, "approved", {"checks": ["rows"]}).status == "UPLOADED"
    assert [d.dataset_id for d in cp.list_datasets(uow_factory(), status="UPLOADED")] == [ds]
    assert cp.list_datasets(uow_factory(), outcome="rejected") == []


def test_human_review_is_final(uow_factory: UnitOfWorkFactory, fleet: dict[str, str]) -> None:
    ds = _dataset_ready(uow_factory, fleet)
    with pytest.raises(DomainError, match="not waiting for review"):
        cp.review_dataset(uow_factory(), ds, "bob", approve=True)
    cp.dataset_inspected(uow_factory(), ds, 0.7, "needs_review")
    with pytest.raises(DomainError, match="not approved"):
        cp.dataset_upload_started(uow_factory(), ds)
    reviewed = cp.review_dataset(uow_factory(), ds, "bob", approve=False, comment="blurry")
    assert (reviewed.qc_outcome, reviewed.reviewed_by) == ("rejected", "bob")
    assert cp.review_dataset(uow_factory(), ds, "bob", approve=False).qc_outcome == "rejected"  # replay
    with pytest.raises(ReviewDecisionFinal):
        cp.review_dataset(uow_factory(), ds, "carol", approve=True)
    again = cp.dataset_inspected(uow_factory(), ds, 0.99, "approved")  # automatic re-inspection
    assert (again.qc_outcome, again.qc_score) == ("rejected", 0.99)
    with pytest.raises(DomainError):
        cp.dataset_upload_started(uow_factory(), ds)


def test_dataset_refusals(uow_factory: UnitOfWorkFactory, fleet: dict[str, str], row_counts) -> None:
    task = sorted(fleet)[0]
    before = row_counts()
    with pytest.raises(InvalidRequestError):
        cp.dataset_cached(uow_factory(), task, sorted(fleet)[1], "/c", "a" * 64, 1)  # dataset_id != task_id
    with pytest.raises(NotFoundError):
        cp.dataset_cached(uow_factory(), "ghost", "ghost", "/c", "a" * 64, 1)
    with pytest.raises(InvalidRequestError):
        cp.dataset_cached(uow_factory(), task, task, "/c", "a" * 64, -1)
    with pytest.raises(NotFoundError):
        cp.dataset_inspected(uow_factory(), task, 0.5, "approved")
    with pytest.raises(InvalidRequestError):
        cp.dataset_inspected(uow_factory(), task, 1.5, "approved")
    with pytest.raises(InvalidRequestError):
        cp.list_datasets(uow_factory(), status="LOST")
    assert row_counts() == before


def test_failed_upload_returns_to_inspected_with_its_reason_until_uploaded(
    uow_factory: UnitOfWorkFactory, fleet: dict[str, str], row_counts, caplog: pytest.LogCaptureFixture
) -> None:
    ds = _dataset_ready(uow_factory, fleet)
    cp.dataset_inspected(uow_factory(), ds, 0.95, "approved")
    cp.dataset_upload_started(uow_factory(), ds)
    with caplog.at_level("INFO", logger="axon_dagster.control_plane.datasets"):
        failed = cp.dataset_upload_failed(uow_factory(), ds, "OSError: bucket gone")
    assert (failed.status, failed.last_upload_error) == ("INSPECTED", "OSError: bucket gone")
    assert f"dataset {ds} upload failed: OSError: bucket gone" in caplog.text
    stored = cp.get_dataset(uow_factory(), ds)  # persisted, on both backends
    assert (stored.status, stored.last_upload_error) == ("INSPECTED", "OSError: bucket gone")
    assert cp.get_dataset(uow_factory(), ds).to_dict()["last_upload_error"] == "OSError: bucket gone"
    before = row_counts()
    assert cp.dataset_upload_failed(uow_factory(), ds, "OSError: bucket gone").updated_at == stored.updated_at  # replay: no-op
    with pytest.raises(DomainError, match="not uploading"):
        cp.dataset_upload_failed(uow_factory(), ds, "another error")
    assert row_counts() == before
    # the bandwidth sensor relaunches it: the retry keeps the last error until the upload lands
    assert cp.dataset_upload_started(uow_factory(), ds).last_upload_error == "OSError: bucket gone"
    done = cp.dataset_uploaded(uow_factory(), ds, "s3://b/x.lance", "a" * 64)
    assert (done.status, done.last_upload_error) == ("UPLOADED", None)
    assert cp.get_dataset(uow_factory(), ds).last_upload_error is None
    with pytest.raises(DomainError, match="not uploading"):  # a late failure report never un-uploads it
        cp.dataset_upload_failed(uow_factory(), ds, "late")
    assert cp.get_dataset(uow_factory(), ds).status == "UPLOADED"


def test_upload_failure_refusals(uow_factory: UnitOfWorkFactory, fleet: dict[str, str], row_counts) -> None:
    ds = _dataset_ready(uow_factory, fleet)
    before = row_counts()
    with pytest.raises(NotFoundError):
        cp.dataset_upload_failed(uow_factory(), "ghost", "boom")
    with pytest.raises(InvalidIdError):
        cp.dataset_upload_failed(uow_factory(), "../x", "boom")
    for reason in ("", None, 42, "x" * (MAX_UPLOAD_ERROR + 1), "bad\x00byte"):
        with pytest.raises(InvalidRequestError):
            cp.dataset_upload_failed(uow_factory(), ds, reason)  # type: ignore[arg-type]
    with pytest.raises(DomainError, match="not uploading"):
        cp.dataset_upload_failed(uow_factory(), ds, "boom")  # CACHED: never started uploading
    assert row_counts() == before
    assert cp.get_dataset(uow_factory(), ds).status == "CACHED"


def test_paging_arguments_are_checked(uow_factory: UnitOfWorkFactory) -> None:
    for kwargs in ({"limit": 0}, {"limit": 10_001}, {"offset": -1}):
        with pytest.raises(InvalidRequestError):
            cp.list_tasks(uow_factory(), **kwargs)
    with pytest.raises(InvalidRequestError):
        cp.events_after(uow_factory(), -1, 10)
    with pytest.raises(InvalidRequestError):
        cp.list_tasks(uow_factory(), status="SLEEPING")

"""The sync and outbox loops, ticked by hand against the real control plane and recorder, so
each step is deterministic: cloud-side moves reach the robot, rejected events never block the
outbox, and the metrics tell what happened."""

from __future__ import annotations

import pytest
from edge_support import wait_for

from axon_dagster.domain import TaskStatus
from axon_edge.metrics import metrics_registry


@pytest.fixture
def agent(edge_env):
    """An agent whose loops are not running: the test ticks them."""
    agent = edge_env.build_agent()
    edge_env._cleanup.append(agent.stop)
    return agent


def sample(agent, name: str, **labels: str) -> float | None:
    return metrics_registry(agent).get_sample_value(name, {"robot_id": agent.robot_id, **labels})


def test_cloud_side_cancel_and_upload_reach_the_robot_without_events(edge_env, agent):
    a, b = edge_env.dispatch_order(task_count=2)
    agent.sync_once()
    assert agent.deliver_once().delivered == 2
    for command in ("start", "stop"):
        agent.teleop(a, command)
    agent.deliver_once()
    wait_for(lambda: edge_env.admin.get_task(a)["status"] == "EXECUTED", what="EXECUTED in the cloud")

    edge_env.admin.transition_task(a, "UPLOADED")  # the data flow finished
    edge_env.admin.transition_task(b, "CANCELLED", reason="order changed")
    outbox_before = [e.event_id for e in agent.db.outbox()]
    agent.sync_once()

    uploaded = agent.get_task(a)
    assert uploaded.status is TaskStatus.UPLOADED and uploaded.uploaded and uploaded.uploaded_at is not None
    assert agent.get_task(b).status is TaskStatus.CANCELLED
    assert [e.event_id for e in agent.db.outbox()] == outbox_before  # the cloud made these moves
    assert {o["order_id"]: o["status"] for o in agent.db.list_orders()} == {"order1": "completed"}
    assert sample(agent, "axon_edge_tasks", status="UPLOADED") == 1
    assert sample(agent, "axon_edge_tasks", status="CANCELLED") == 1
    assert sample(agent, "axon_edge_recorder_reachable") == 1
    assert sample(agent, "axon_edge_pull_cursor") == agent.db.pull_cursor() > 0


def test_rejected_events_are_kept_aside_and_never_block_later_ones(edge_env, agent):
    a, b = edge_env.dispatch_order(task_count=2)
    agent.sync_once()
    agent.deliver_once()
    # The admin cancels A in the cloud before the robot has heard of it; a collector picks up
    # A and B on the robot meanwhile.
    edge_env.admin.transition_task(a, "CANCELLED")
    agent.pickup(a, "alice")
    agent.pickup(b, "bob")

    report = agent.deliver_once()
    assert (report.sent, report.rejected) == (2, 1)
    events = {e.event_id: e for e in agent.db.outbox()}
    assert events[f"{a}.assigned"].result == "rejected" and "CANCELLED -> ASSIGNED" in events[f"{a}.assigned"].last_error
    assert events[f"{b}.assigned"].result == "applied"
    assert agent.db.outbox_backlog().count == 0 and agent.deliver_once().sent == 0  # not retried
    assert sample(agent, "axon_edge_outbox_rejected_events") == 1
    assert edge_env.admin.get_task(b)["data_collector_id"] == "bob"

    agent.sync_once()  # the robot learns of the cancel and follows the cloud
    assert agent.get_task(a).status is TaskStatus.CANCELLED


def test_an_event_the_control_plane_refuses_wholesale_is_isolated(edge_env, agent):
    """An event for a task the control plane does not know as this robot's gets the whole
    request refused (404). The agent finds that one event, sets it aside, delivers the rest."""
    [task_id] = edge_env.dispatch_order()
    agent.sync_once()
    # A task the cloud never gave this robot (e.g. from a restored backup of another robot).
    ghost = {
        "task_id": "ghost-task", "order_id": "o-ghost", "batch_id": "b-ghost", "scene": "lab", "skills": ["x"],
        "status": "PENDING", "robot_id": agent.robot_id, "revision": 0,
    }
    agent.db.store_pulled([ghost], agent.db.pull_cursor(), agent.robot_id)
    agent.db.transition("ghost-task", TaskStatus.CANCELLED)
    agent.pickup(task_id, "alice")
    assert [e.event_id for e in agent.db.undelivered_events()] == [f"{task_id}.ready", "ghost-task.cancelled", f"{task_id}.assigned"]

    report = agent.deliver_once()
    assert (report.delivered, report.rejected) == (2, 1)
    ghost_event = {e.event_id: e for e in agent.db.outbox()}["ghost-task.cancelled"]
    assert ghost_event.result == "rejected" and ghost_event.last_error.startswith("404")
    assert edge_env.cloud_statuses(task_id) == ["READY", "ASSIGNED"]

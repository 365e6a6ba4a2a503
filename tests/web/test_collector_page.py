"""The collector page, driven in headless Chromium against a real edge agent, the real control
plane and the recorder simulator: a task goes READY -> ASSIGNED -> EXECUTING -> EXECUTED using
only the page, and refusals / an unreachable recorder show up as clear messages."""

from __future__ import annotations

import re

import httpx
import pytest
from edge_support import wait_for
from playwright.sync_api import expect

from axon_edge.errors import UnknownTask

pytestmark = pytest.mark.timeout(180)


def _status(agent, task_id: str) -> str | None:
    try:
        return agent.agent.get_task(task_id).status.value
    except UnknownTask:  # not pulled yet
        return None


def _row(page, table: str, task_id: str):
    return page.locator(f"#{table} tr[data-task-id='{task_id}']")


def test_walk_a_task_from_ready_to_executed_with_the_page(edge_env, page):
    (task_id,) = edge_env.dispatch_order(skills=("pick_place",), duration=30.0)
    agent = edge_env.start_agent()

    page.goto(agent.url + "/")
    assert page.url.endswith("/collector")
    expect(page.locator("#robot-id")).to_have_text(edge_env.robot_id)
    row = _row(page, "ready-tasks", task_id)
    expect(row).to_have_attribute("data-status", "READY", timeout=20_000)
    # scene, sub-scene, skills, duration and topics are shown
    for text in ("warehouse", "aisle_1", "pick_place", "30 s", "/camera/image_raw", "/joint_states", "/imu"):
        expect(row).to_contain_text(text)
    expect(page.locator("#rec-state")).to_have_text("idle")

    # picking up without a collector id is refused on the page and changes nothing
    row.locator("button.pickup").click()
    expect(page.locator("#message")).to_contain_text("collector id")
    assert agent.agent.get_task(task_id).status.value == "READY"

    page.fill("#collector-id", "alice")
    row.locator("button.pickup").click()
    expect(row).to_have_attribute("data-status", "ASSIGNED")
    expect(row).to_contain_text("alice")
    assert agent.agent.get_task(task_id).data_collector_id == "alice"

    row.locator("button.start").click()
    expect(page.locator("#rec-state")).to_have_text("● recording")
    expect(page.locator("#rec-task")).to_have_text(task_id)
    assert agent.agent.get_task(task_id).status.value == "EXECUTING"
    # live per-topic counts from the recorder grow without a page reload
    camera = page.locator("#rec-topics tr[data-topic='/camera/image_raw'] td.num")
    expect(camera).to_have_text(re.compile(r"^[1-9]\d*$"), timeout=10_000)
    first = int(camera.inner_text())
    wait_for(lambda: int(camera.inner_text()) > first, timeout=10, what="camera count to grow on the page")
    expect(page.locator("#rec-elapsed")).to_have_text(re.compile(r"^0:\d\d / 0:30$"))
    expect(page.locator("#rec-disk")).to_have_text(re.compile(r"GB$"))
    # a second start while recording is not offered
    expect(row).to_have_count(0)

    page.locator("#stop-btn").click()
    recent = _row(page, "recent-tasks", task_id)
    expect(recent).to_have_attribute("data-status", "EXECUTED", timeout=40_000)
    expect(page.locator("#rec-state")).to_have_text("idle")
    expect(page.locator("#stop-btn")).to_be_disabled()
    assert agent.agent.get_task(task_id).status.value == "EXECUTED"
    # the control plane hears the same walk, in order
    wait_for(lambda: edge_env.cloud_statuses(task_id)[-1:] == ["EXECUTED"], timeout=15, what="EXECUTED in the cloud")
    assert edge_env.cloud_statuses(task_id) == ["READY", "ASSIGNED", "EXECUTING", "EXECUTED"]


def test_refused_command_and_unreachable_recorder_are_explained(edge_env, page):
    first, second = edge_env.dispatch_order(skills=("navigation",), task_count=2, duration=30.0)
    agent = edge_env.start_agent()
    wait_for(lambda: _status(agent, second) == "READY", timeout=20, what="tasks READY")
    page.goto(agent.url + "/collector")
    row = _row(page, "ready-tasks", second)
    expect(row).to_have_attribute("data-status", "READY")

    # A collector id the agent refuses (not a valid id): the page shows why, nothing changes.
    page.fill("#collector-id", "bad id; drop")
    row.locator("button.pickup").click()
    expect(page.locator("#message")).to_contain_text("Invalid request")
    assert agent.agent.get_task(second).status.value == "READY"
    assert agent.agent.get_task(second).data_collector_id is None

    # Another device (the teleop route) starts the first task; the page follows and offers Stop.
    httpx.post(agent.url + "/teleop", json={"task_id": first, "command": "start"}, timeout=30).raise_for_status()
    expect(page.locator("#rec-task")).to_have_text(first)
    expect(page.locator("#stop-btn")).to_be_enabled()
    expect(row.locator("button.start")).to_be_disabled()

    # The recorder goes away: the page says so, and a stop is refused with a clear message.
    edge_env.recorder.stop()
    expect(page.locator("#rec-state")).to_have_text("recorder unreachable", timeout=30_000)
    expect(page.locator("#rec-error")).to_contain_text("Recorder unreachable")
    page.locator("#stop-btn").click()
    expect(page.locator("#message")).to_contain_text("Recorder unreachable", timeout=30_000)
    assert agent.agent.get_task(first).status.value == "EXECUTING"

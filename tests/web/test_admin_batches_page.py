"""The admin batch page in headless Chromium against the real control plane and a real edge
agent: edit and approve a batch and its edited tasks reach the robot; a rejected batch never
does; every change is in the change log with who made it."""

from __future__ import annotations

import httpx
import pytest
from browser import create_account, sign_in
from edge_support import ADMIN_TOKEN, wait_for
from playwright.sync_api import expect

pytestmark = pytest.mark.timeout(180)

TOPICS = ["/camera/image_raw", "/joint_states", "/imu"]


def test_edit_approve_reject_and_dispatch_from_the_page(edge_env, page):
    cp = edge_env.control_plane.url
    headers = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    edge_env.admin.create_order("o1", "warehouse", ["navigation", "pick_place"], sub_scene="aisle_1")
    r = httpx.put(f"{cp}/api/v1/orders/o1/review-policy", json={"actor": "setup", "auto_approve_batches": False}, headers=headers)
    assert r.status_code == 200, r.text
    edge_env.admin.plan_order("o1", task_count=1, duration_seconds=5.0, topics=TOPICS)
    nav, pick = "o1_batch_navigation_1", "o1_batch_pick_place_2"

    create_account(cp, ADMIN_TOKEN, "carol", "admin")
    sign_in(page, cp, "carol")
    expect(page.locator("#identity")).to_have_text("Signed in as carol (admin)")
    page.fill("#order-id", "o1")
    page.click("#order-form button[type=submit]")
    nav_row, pick_row = page.locator(f"tr[data-batch-id='{nav}']"), page.locator(f"tr[data-batch-id='{pick}']")
    expect(nav_row).to_have_attribute("data-review", "pending_review")
    expect(page.locator("#policy")).to_contain_text("batches need approval")

    # Nothing is approved yet: dispatch sends nothing to robots.
    page.click("#dispatch-btn")
    expect(page.locator("#message")).to_have_text("Dispatched 0 task(s).")

    # A bad edit is refused with its reason and changes nothing.
    nav_row.locator("input.count").fill("0")
    nav_row.locator("button.save").click()
    expect(page.locator("#message")).to_contain_text("task_count")
    assert httpx.get(f"{cp}/api/v1/batches/{nav}", headers=headers).json()["task_count"] == 1

    nav_row.locator("input.count").fill("2")
    nav_row.locator("input.duration").fill("7")
    nav_row.locator("input.topics").fill("/camera/image_raw, /imu")
    nav_row.locator("button.save").click()
    expect(nav_row.locator("td").nth(6)).to_have_text("PENDING 2")
    nav_row.locator("button.approve").click()
    expect(nav_row).to_have_attribute("data-review", "approved")
    pick_row.locator("button.reject").click()
    expect(pick_row).to_have_attribute("data-review", "rejected")
    expect(pick_row.locator("button.save")).to_be_disabled()

    page.click("#dispatch-btn")
    expect(page.locator("#message")).to_have_text("Dispatched 2 task(s).")
    expect(nav_row.locator("td").first).to_contain_text("released")
    expect(nav_row.locator("button.save")).to_be_disabled()

    # The robot gets exactly the edited tasks, and nothing of the rejected batch.
    running = edge_env.start_agent()
    tasks = wait_for(lambda: [t for t in running.agent.list_tasks() if t.status.value == "READY"] if len(
        [t for t in running.agent.list_tasks() if t.status.value == "READY"]) == 2 else None, timeout=20, what="2 READY tasks")
    assert sorted(t.task_id for t in tasks) == [f"{nav}_task_1", f"{nav}_task_2"]
    assert all(t.duration_seconds == 7.0 and t.topics == ("/camera/image_raw", "/imu") for t in tasks)
    assert all(t.batch_id != pick for t in running.agent.list_tasks())
    pick_tasks = httpx.get(f"{cp}/api/v1/tasks", params={"batch_id": pick}, headers=headers).json()
    assert [t["status"] for t in pick_tasks] == ["CANCELLED"] and pick_tasks[0]["robot_id"] is None

    # The change log: who, what, in order.
    page.click("#order-form button[type=submit]")
    actions = page.locator("#audit tbody tr").evaluate_all("rows => rows.map(r => [r.cells[1].textContent, r.cells[2].textContent])")
    assert actions == [["carol", "rejected"], ["carol", "approved"], ["carol", "edit"], ["setup", "set_review_policy"]]

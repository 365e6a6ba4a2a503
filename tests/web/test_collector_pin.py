"""The collector page reached from another machine (this host's non-loopback address, in headless
Chromium): locked until the robot's collector PIN is entered; then a task is picked up."""

from __future__ import annotations

import socket

import pytest
from playwright.sync_api import expect

from axon_edge.access import HttpAccess
from axon_edge.cli import start_agent_in_thread

pytestmark = pytest.mark.timeout(180)
PIN = "731904"


def non_loopback_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing interface
        except OSError:
            return None
        address = s.getsockname()[0]
    return None if address.startswith("127.") else address


def test_the_page_from_another_machine_needs_the_pin(edge_env, page):
    address = non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to browse from")
    (task_id,) = edge_env.dispatch_order(skills=("pick",), duration=30.0)
    running = start_agent_in_thread(
        edge_env.robot_id, edge_env.control_plane.url, edge_env.robot_token, edge_env.data_dir, edge_env.recorder.url,
        agent=edge_env.build_agent(), host="0.0.0.0", access=HttpAccess(collector_credential=PIN),
    )
    try:
        page.goto(f"http://{address}:{running.port}/collector")
        expect(page.locator("#pin-card")).to_be_visible()
        expect(page.locator(f"#ready-tasks tr[data-task-id='{task_id}']")).to_have_count(0)
        page.fill("#pin", "000000")
        page.click("#pin-button")
        expect(page.locator("#pin-error")).to_have_text("wrong collector PIN")
        page.fill("#pin", PIN)
        page.click("#pin-button")
        expect(page.locator("#pin-card")).to_be_hidden()
        row = page.locator(f"#ready-tasks tr[data-task-id='{task_id}']")
        expect(row).to_have_attribute("data-status", "READY", timeout=20_000)
        page.fill("#collector-id", "alice")
        row.locator("button.pickup").click()
        expect(row).to_have_attribute("data-status", "ASSIGNED")
        assert running.agent.get_task(task_id).data_collector_id == "alice"
    finally:
        running.stop()

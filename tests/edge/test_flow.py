"""The control flow through a real agent, the real control-plane API and the real simulator:
task pulled → config written → recorder configured → READY in the cloud; pickup → start → stop
→ EXECUTED with a real Lance dataset in the cloud; cloud-side moves come back to the robot."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import yaml

from axon_dagster.domain import TaskStatus
from axon_dagster.recorder.config import RecordingConfig
from axon_dagster.storage.digest import file_sha256

from edge_support import wait_for


def test_pulled_task_is_configured_on_the_recorder_and_ready_in_the_cloud(edge_env):
    task_ids = edge_env.dispatch_order(skills=("pick", "place"), task_count=1)
    running = edge_env.start_agent()
    agent = running.agent
    wait_for(lambda: all(edge_env.admin.get_task(t)["status"] == "READY" for t in task_ids), what="READY in the cloud")

    for task_id in task_ids:
        task = agent.get_task(task_id)
        assert task.status is TaskStatus.READY and task.ready_at is not None
        config_file = edge_env.data_dir / "configs" / f"{task_id}.yaml"
        assert task.config_path == str(config_file)
        config = RecordingConfig.read(config_file)
        assert (config.task_id, config.device_id, config.scene, config.subscene) == (task_id, "robot-1", "warehouse", "aisle_1")
        assert config.batch_id == task.batch_id and config.topics == task.topics and config.duration_seconds == 1.0
        assert yaml.safe_load(config_file.read_text())["order_id"] == task.order_id
        cloud = edge_env.admin.get_task(task_id)
        assert cloud["config_path"] == str(config_file)
        assert edge_env.cloud_statuses(task_id) == ["READY"]
    # The recorder holds the last pushed config (Axon keeps one pending task at a time).
    state = httpx.get(edge_env.recorder.url + "/rpc/state").json()["data"]
    assert state["state"] == "ready" and state["task_config"]["task_id"] in task_ids

    listed = httpx.get(running.url + "/tasks", params={"status": "READY"}).json()["tasks"]
    assert sorted(t["task_id"] for t in listed) == sorted(task_ids)
    assert {o["order_id"] for o in agent.db.list_orders()} == {"order1"}
    assert agent.status()["outbox"]["backlog"] == 0


def test_pickup_start_stop_delivers_executed_with_a_verified_axon_recording(edge_env):
    [task_id] = edge_env.dispatch_order()
    running = edge_env.start_agent()
    wait_for(lambda: edge_env.admin.get_task(task_id)["status"] == "READY", what="READY")
    http = httpx.Client(base_url=running.url, timeout=30)

    picked = http.post(f"/tasks/{task_id}/pickup", json={"collector_id": "alice"})
    assert picked.status_code == 200, picked.text
    assert picked.json()["status"] == "ASSIGNED" and picked.json()["data_collector_id"] == "alice"

    started = http.post("/teleop", json={"task_id": task_id, "command": "start"})
    assert started.status_code == 200, started.text
    assert started.json()["status"] == "EXECUTING"
    assert started.json()["dataset_path"] is None, "Axon's begin names no file"
    recorder = http.get("/status").json()["recorder"]
    assert recorder["is_recording"] is True and recorder["state"] == "recording"
    assert "/imu" in recorder["subscribed_topics"] and recorder["disk_state"] == "normal"

    stopped = http.post("/teleop", json={"task_id": task_id, "command": "stop"})
    assert stopped.status_code == 200, stopped.text
    body = stopped.json()
    # The recording moved into the robot's edge cache: the recorder's names are gone, the bytes stayed.
    entry = edge_env.data_dir / "cache" / "datasets" / task_id
    dataset_path = str(entry / f"{task_id}.mcap")
    assert body["status"] == "EXECUTED" and body["executed_at"]
    assert body["dataset_path"] == dataset_path and body["sidecar_path"] == str(entry / f"{task_id}.json")
    assert not any(edge_env.recorder.data_dir.glob(f"{task_id}.*")), "moved, not copied"

    # Axon's v1.0 sidecar, carrying the collector picked up above, and the checksum of the file.
    sidecar = json.loads(Path(body["sidecar_path"]).read_text())
    assert sidecar["task"]["task_id"] == task_id and sidecar["recording"]["message_count"] > 0
    assert sidecar["task"]["data_collector_id"] == "alice"
    assert sidecar["recording"]["checksum_sha256"] == file_sha256(dataset_path)

    wait_for(lambda: edge_env.admin.get_task(task_id)["status"] == "EXECUTED", what="EXECUTED in the cloud")
    cloud = edge_env.admin.get_task(task_id)
    assert cloud["dataset_path"] == dataset_path and cloud["data_collector_id"] == "alice"
    assert edge_env.cloud_statuses(task_id) == ["READY", "ASSIGNED", "EXECUTING", "EXECUTED"]
    executed = edge_env.events(task_id)[-1]
    mcap_sha = sidecar["recording"]["checksum_sha256"]
    manifest = {k: v for k, v in executed["data"]["manifest"].items() if k != "recording_format"}  # the cloud adds it
    assert manifest == {
        "files": [
            {"name": f"{task_id}.mcap", "size": Path(dataset_path).stat().st_size, "sha256": mcap_sha},
            {"name": f"{task_id}.json", "size": Path(body["sidecar_path"]).stat().st_size, "sha256": file_sha256(body["sidecar_path"])},
        ],
        "dataset_digest": mcap_sha,
        "axon_checksum_sha256": mcap_sha,
    }
    gate = executed["data"]["gate"]
    assert gate["passed"] is True and gate["reasons"] == []
    assert gate["checks"]["required_topics"] == {"passed": True, "required": [], "missing": []}  # the order requires none
    assert gate["checks"]["messages"]["passed"] and gate["checks"]["duration"]["seconds"] > 0
    assert {k: executed["data"][k] for k in ("dataset_path", "sidecar_path", "recording_format", "checksum_sha256")} == {
        "dataset_path": dataset_path,
        "sidecar_path": body["sidecar_path"],
        "recording_format": "mcap",
        "checksum_sha256": mcap_sha,
    }

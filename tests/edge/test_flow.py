"""The control flow through a real agent, the real control-plane API and the real simulator:
task pulled → config written → recorder configured → READY in the cloud; pickup → start → stop
→ EXECUTED with a real Lance dataset in the cloud; cloud-side moves come back to the robot."""

from __future__ import annotations

import httpx
import yaml

from axon_dagster.domain import TaskStatus
from axon_dagster.recorder.config import RecordingConfig
from axon_dagster.storage.recording import Sidecar, sidecar_path

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
    assert state["state"] == "ready" and state["task_id"] in task_ids

    listed = httpx.get(running.url + "/tasks", params={"status": "READY"}).json()["tasks"]
    assert sorted(t["task_id"] for t in listed) == sorted(task_ids)
    assert {o["order_id"] for o in agent.db.list_orders()} == {"order1"}
    assert agent.status()["outbox"]["backlog"] == 0


def test_pickup_start_stop_delivers_executed_with_a_real_lance_dataset(edge_env):
    [task_id] = edge_env.dispatch_order()
    running = edge_env.start_agent()
    wait_for(lambda: edge_env.admin.get_task(task_id)["status"] == "READY", what="READY")
    http = httpx.Client(base_url=running.url, timeout=30)

    picked = http.post(f"/tasks/{task_id}/pickup", json={"collector_id": "alice"})
    assert picked.status_code == 200, picked.text
    assert picked.json()["status"] == "ASSIGNED" and picked.json()["data_collector_id"] == "alice"

    started = http.post("/teleop", json={"task_id": task_id, "command": "start"})
    assert started.status_code == 200, started.text
    dataset_path = started.json()["dataset_path"]
    assert started.json()["status"] == "EXECUTING" and dataset_path.endswith(f"{task_id}.lance")
    assert http.get("/status").json()["recorder"]["is_recording"] is True

    stopped = http.post("/teleop", json={"task_id": task_id, "command": "stop"})
    assert stopped.status_code == 200, stopped.text
    body = stopped.json()
    assert body["status"] == "EXECUTED" and body["executed_at"]
    assert body["dataset_path"] == dataset_path and body["sidecar_path"] == str(sidecar_path(dataset_path))

    # A real Lance dataset with a sidecar that verifies, carrying the collector picked up above.
    sidecar = Sidecar.read(body["sidecar_path"])
    sidecar.verify(dataset_path)
    assert sidecar.task_id == task_id and sidecar.row_count > 0
    assert sidecar.metadata.get("data_collector_id") == "alice"
    import lance

    assert lance.dataset(dataset_path).count_rows() == sidecar.row_count

    wait_for(lambda: edge_env.admin.get_task(task_id)["status"] == "EXECUTED", what="EXECUTED in the cloud")
    cloud = edge_env.admin.get_task(task_id)
    assert cloud["dataset_path"] == dataset_path and cloud["data_collector_id"] == "alice"
    assert edge_env.cloud_statuses(task_id) == ["READY", "ASSIGNED", "EXECUTING", "EXECUTED"]
    executed = edge_env.events(task_id)[-1]
    assert executed["data"] == {"dataset_path": dataset_path, "sidecar_path": body["sidecar_path"]}

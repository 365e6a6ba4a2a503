"""The simulator's own surface over raw HTTP: faults, statistics, envelopes for bad requests."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from axon_dagster.demo.sim import FaultsError, SimFaults, SimulatedRecorder
from axon_dagster.storage.digest import file_sha256


def test_faults_are_set_over_http_and_bad_ones_change_nothing(sim):
    good = httpx.post(f"{sim.url}/sim/faults", json={"drop_rate": 0.2, "missing_topics": ["/imu"]})
    assert good.status_code == 200 and good.json()["success"]
    assert good.json()["data"]["missing_topics"] == ["/imu"]

    for bad, words in [
        ({"drop_rate": 2}, "drop_rate must be a number in"),
        ({"explode": True}, "unknown fault(s): explode"),
        ({"die_after_seconds": -1}, "die_after_seconds must be a non-negative"),
        (["drop_rate"], "faults must be a JSON object"),
    ]:
        reply = httpx.post(f"{sim.url}/sim/faults", json=bad)
        assert reply.status_code == 400 and not reply.json()["success"]
        assert words in reply.json()["message"]
    current = httpx.get(f"{sim.url}/sim/faults").json()["data"]
    assert (current["drop_rate"], current["missing_topics"]) == (0.2, ["/imu"]), "a refused update changes nothing"


def test_stats_count_messages_per_topic_and_faults_shape_the_recording(sim, client_for):
    sim.recorder.set_faults({"drop_rate": 0.5, "missing_topics": ["/imu"]})
    client = client_for(sim)
    client.config({"task_id": "task-f", "device_id": "robot-1", "topics": ["/imu", "/joint_states"]})
    client.begin("task-f")
    time.sleep(0.5)
    stats = client.stats()
    counts = stats["topic_message_counts"]
    assert sorted(counts) == sorted(sim.recorder.subscriptions), "every subscription is listed"
    assert counts["/imu"] == {"received": 0, "written": 0, "dropped": 0}, "a silent topic receives nothing"
    joints = counts["/joint_states"]
    assert 40 <= joints["written"] <= 80, "about half of 200 Hz x 0.5 s"
    assert joints["dropped"] > 0 and joints["received"] == joints["written"] + joints["dropped"]
    assert stats["messages_written"] == sum(c["written"] for c in counts.values())
    assert "/imu" not in client.get_status().active_topics
    client.finish("task-f")

    sidecar = json.loads((sim.data_dir / "task-f.json").read_text())
    recorded = {t["topic"] for t in sidecar["topics_summary"]}
    assert recorded == set(sim.recorder.subscriptions) - {"/imu"}, "its own subscriptions, not the task's topics"


def test_the_task_topics_do_not_choose_what_is_recorded(sim, client_for):
    client = client_for(sim)
    client.config({"task_id": "t1", "device_id": "robot-1", "topics": ["/lidar_that_does_not_exist"]})
    assert client.state().state == "ready", "Axon takes any topics: they are only echoed into callbacks"
    client.begin("t1")
    time.sleep(0.2)
    client.finish("t1")
    sidecar = json.loads((sim.data_dir / "t1.json").read_text())
    assert sidecar["recording"]["topics_recorded"] == sorted(sim.recorder.subscriptions)


@pytest.mark.parametrize(
    "path, body, status, words",
    [
        ("/rpc/config", b"{not json", 400, "JSON parse error"),
        ("/rpc/config", b"{}", 200, "Missing 'task_config'"),
        ("/rpc/begin", b"{}", 200, "Missing required parameter: task_id"),
        ("/rpc/begin", b'{"task_id": 7}', 200, "task_id must be a string"),
        ("/rpc/teleport", b"{}", 404, "Unknown RPC method or invalid HTTP method: teleport"),
        ("/teleport", b"{}", 404, "Not found"),
    ],
)
def test_bad_requests_get_an_envelope_and_change_nothing(sim, path, body, status, words):
    reply = httpx.post(f"{sim.url}{path}", content=body, headers={"content-type": "application/json"})
    assert reply.status_code == status, "refusals are HTTP 200; only bad JSON (400) and unknown routes (404) differ"
    envelope = reply.json()
    assert envelope["success"] is False and words in envelope["message"]
    if status == 200:
        assert envelope["data"]["state"] == "idle"
    assert sim.recorder.state == "idle"


@pytest.mark.parametrize(
    "task_config, errors",
    [
        ({"task_id": "t1"}, [("device_id", "missing_required")]),
        ({"task_id": "", "device_id": "r"}, [("task_id", "empty")]),
        ({"task_id": 5, "device_id": "r"}, [("task_id", "invalid_type")]),
        ({"task_id": "a/b", "device_id": "r"}, [("task_id", "invalid_value")]),
        ({"task_id": "t1", "device_id": "r", "topics": "/imu"}, [("topics", "invalid_type")]),
        ({"task_id": "t1", "device_id": "r", "topics": [3]}, [("topics[0]", "invalid_type")]),
        ({"task_id": "t1", "device_id": "r", "skills": ["a", 1], "scene": 2}, [("scene", "invalid_type"), ("skills[1]", "invalid_type")]),
        ("not an object", [("task_config", "invalid_type")]),
    ],
)
def test_config_refusals_carry_validation_errors(sim, task_config, errors):
    reply = httpx.post(f"{sim.url}/rpc/config", json={"task_config": task_config})
    assert reply.status_code == 200
    body = reply.json()
    assert body["success"] is False and body["message"] == "Task configuration validation failed"
    assert [(e["field"], e["code"]) for e in body["data"]["validation_errors"]] == errors
    assert all(e["message"] for e in body["data"]["validation_errors"])
    assert sim.recorder.state == "idle"


def test_get_on_a_post_rpc_is_an_unknown_rpc(sim):
    reply = httpx.get(f"{sim.url}/rpc/begin")
    assert reply.status_code == 404 and reply.json()["message"] == "Unknown RPC method or invalid HTTP method: begin"


def test_health_is_a_bare_object(sim):
    body = httpx.get(f"{sim.url}/health").json()
    assert body.keys() == {"status", "service", "version", "running", "state"}
    assert body["status"] == "ok" and body["state"] == "idle"


def test_begin_and_finish_reply_only_state_and_task_id(sim, client_for):
    client = client_for(sim)
    client.config({"task_id": "t1", "device_id": "robot-1"})
    begin = httpx.post(f"{sim.url}/rpc/begin", json={"task_id": "t1"}).json()
    assert begin["data"] == {"state": "recording", "task_id": "t1"}
    finish = httpx.post(f"{sim.url}/rpc/finish", json={"task_id": "t1"}).json()
    assert finish["data"] == {"state": "idle", "task_id": "t1"}
    metadata = client.stats()["metadata"]
    assert metadata["output_path"] == str(sim.data_dir / "t1.mcap")
    assert metadata["sidecar_path"] == str(sim.data_dir / "t1.json")
    assert metadata["checksum_sha256"] == json.loads((sim.data_dir / "t1.json").read_text())["recording"]["checksum_sha256"]


def test_a_task_recorded_again_is_overwritten(sim, client_for):
    client = client_for(sim)
    for _ in range(2):
        client.config({"task_id": "t1", "device_id": "robot-1"})
        client.begin("t1")
        time.sleep(0.1)
        client.finish("t1")
    sidecar = json.loads((sim.data_dir / "t1.json").read_text())
    assert sidecar["recording"]["checksum_sha256"] == file_sha256(sim.data_dir / "t1.mcap")


def test_the_disk_guard_pauses_the_recorder_itself(sim, client_for, wait_for):
    sim.recorder.set_faults({"disk_full_after_seconds": 0.2})
    client = client_for(sim)
    client.config({"task_id": "t1", "device_id": "robot-1"})
    client.begin("t1")
    wait_for(lambda: client.state().state == "paused")
    disk = client.stats()["disk_usage"]
    assert disk["state"] == "hard_limit" and "hard limit" in disk["reason"]
    assert disk["total_used_gb"] >= disk["hard_limit_gb"]
    status = client.get_status()
    assert status.paused_by_disk_guard and "Disk hard limit reached" in status.last_error


def test_finish_of_a_large_recording_takes_time_and_holds_other_rpcs(start_sim, client_for):
    sim = start_sim(finish_seconds_per_gb=0)
    sim.recorder.set_faults({"finish_delay_seconds": 0.8})
    client = client_for(sim, timeout_seconds=5)
    client.config({"task_id": "t1", "device_id": "robot-1"})
    client.begin("t1")
    started = time.monotonic()
    waited: list[float] = []

    def poll_state() -> None:
        time.sleep(0.2)
        t0 = time.monotonic()
        client_for(sim).state()
        waited.append(time.monotonic() - t0)

    import threading

    poller = threading.Thread(target=poll_state)
    poller.start()
    client.finish("t1")
    poller.join()
    assert time.monotonic() - started >= 0.8
    assert waited[0] >= 0.4, "a state poll during finish waits for it, as Axon's RPC thread does"


def test_sim_faults_parse_rules():
    assert SimFaults.from_dict({"gap_seconds": 2, "die_after_seconds": 1}).to_dict()["gap_seconds"] == 2
    assert SimFaults.from_dict(None) == SimFaults()
    with pytest.raises(FaultsError, match="known: .*die_after_seconds"):
        SimFaults.from_dict({"nope": 1})


def test_sim_refuses_an_unsafe_robot_id(tmp_path):
    with pytest.raises(ValueError, match="robot_id"):
        SimulatedRecorder(tmp_path, "../robot")

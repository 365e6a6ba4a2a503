"""The simulator's own surface over raw HTTP: faults, statistics, envelopes for bad requests."""

from __future__ import annotations

import time

import httpx
import pytest

from axon_dagster.recorder.sim.server import FaultsError, SimFaults, SimulatedRecorder
from axon_dagster.storage.recording import Sidecar


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
    assert list(stats["topics"]) == ["/joint_states"], "a silent topic is not reported active"
    joints = stats["topics"]["/joint_states"]
    assert 40 <= joints["messages"] <= 80, "about half of 200 Hz x 0.5 s"
    assert joints["messages_dropped"] > 0
    assert stats["messages_written"] == joints["messages"]
    assert client.get_status().active_topics == ["/joint_states"]
    client.finish("task-f")

    sidecar = Sidecar.read(sim.data_dir / "task-f.json")
    assert set(sidecar.topics) == {"/joint_states"}, "only configured topics, minus the missing one"
    assert sidecar.extra["faults"]["drop_rate"] == 0.5


def test_config_for_topics_the_robot_lacks_is_refused(sim, client_for):
    client = client_for(sim)
    reply = httpx.post(f"{sim.url}/rpc/config", json={"task_config": {"task_id": "t1", "device_id": "robot-1", "topics": ["/lidar"]}})
    assert reply.status_code == 400
    assert "none of the requested topics exist on robot robot-1" in reply.json()["message"]
    assert client.state().state == "idle"


@pytest.mark.parametrize(
    "path, body, status, words",
    [
        ("/rpc/config", b"{not json", 400, "not valid JSON"),
        ("/rpc/config", b"[]", 400, "must be a JSON object"),
        ("/rpc/config", b"{}", 400, "Missing 'task_config'"),
        ("/rpc/config", b'{"task_config": {"task_id": "a/b", "device_id": "r"}}', 400, "path separator"),
        ("/rpc/config", b'{"task_config": {"task_id": "t1"}}', 400, "task_config.device_id"),
        ("/rpc/config", b'{"task_config": {"task_id": "t1", "device_id": "r", "topics": "/imu"}}', 400, "list of strings"),
        ("/rpc/begin", b"{}", 400, "Missing required parameter: task_id"),
        ("/rpc/teleport", b"{}", 404, "unknown endpoint POST /rpc/teleport"),
    ],
)
def test_bad_requests_get_an_envelope_and_change_nothing(sim, path, body, status, words):
    reply = httpx.post(f"{sim.url}{path}", content=body, headers={"content-type": "application/json"})
    assert reply.status_code == status
    envelope = reply.json()
    assert envelope["success"] is False and words in envelope["message"]
    assert envelope["data"]["state"] == "idle"
    assert sim.recorder.state == "idle"


def test_get_on_a_post_rpc_is_refused_with_an_envelope(sim):
    reply = httpx.get(f"{sim.url}/rpc/begin")
    assert reply.status_code == 405 and "GET not allowed on /rpc/begin" in reply.json()["message"]


def test_health_answers_in_the_envelope(sim):
    body = httpx.get(f"{sim.url}/health").json()
    assert body["success"] and body["data"]["status"] == "ok" and body["data"]["state"] == "idle"


def test_a_task_recorded_once_cannot_be_configured_again(sim, client_for):
    client = client_for(sim)
    client.config({"task_id": "t1", "device_id": "robot-1"})
    client.begin("t1")
    client.finish("t1")
    reply = httpx.post(f"{sim.url}/rpc/config", json={"task_config": {"task_id": "t1", "device_id": "robot-1"}})
    assert reply.status_code == 400 and "already exists" in reply.json()["message"]


def test_sim_faults_parse_rules():
    assert SimFaults.from_dict({"gap_seconds": 2, "die_after_seconds": 1}).to_dict()["gap_seconds"] == 2
    assert SimFaults.from_dict(None) == SimFaults()
    with pytest.raises(FaultsError, match="known: .*die_after_seconds"):
        SimFaults.from_dict({"nope": 1})


def test_sim_refuses_an_unsafe_robot_id(tmp_path):
    with pytest.raises(ValueError, match="robot_id"):
        SimulatedRecorder(tmp_path, "../robot")

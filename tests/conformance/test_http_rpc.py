"""AXON_V04.md, "HTTP RPC": Axon's wire behaviour, and our client / agent against it."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from edge_support import wait_for

from axon_dagster.domain import TaskStatus
from tests.conformance.conftest import assert_taken_from_recorder
from axon_dagster.recorder.axon_http import AxonHttpRecorder
from axon_dagster.recorder.protocol import RecorderRefused
from axon_dagster.demo.sim.cli import _parser as sim_parser


def _agent(edge_env, **options):
    agent = edge_env.build_agent(**options)
    agent.start()
    edge_env._cleanup.append(agent.stop)
    return agent


def _ready(agent, task_id: str) -> None:
    wait_for(lambda: any(t.task_id == task_id and t.status is TaskStatus.READY for t in agent.list_tasks()), what="READY")


# -- :8080 ----------------------------------------------------------------------------------------


def test_listens_on_8080_sim():
    assert sim_parser().parse_args([]).port == 8080


# -- lowercase states -----------------------------------------------------------------------------


def test_states_are_lowercase_sim(axon):
    seen = [axon.get("/rpc/state").json()["data"]["state"]]
    axon.post("/rpc/config", {"task_config": {"task_id": "t1", "device_id": "robot-1"}})
    seen.append(axon.get("/rpc/state").json()["data"]["state"])
    axon.post("/rpc/begin", {"task_id": "t1"})
    seen.append(axon.get("/rpc/state").json()["data"]["state"])
    axon.post("/rpc/pause", {})
    seen.append(axon.get("/rpc/state").json()["data"]["state"])
    assert seen == ["idle", "ready", "recording", "paused"]


def test_lowercase_states_client(axon, write_config):
    client = axon.client()
    client.start_recording(write_config("t1"))
    client.pause()
    status = client.get_status()
    assert (client.state().state, status.state, status.is_recording) == ("paused", "paused", True)


# -- envelope everywhere but /health (bare) ---------------------------------------------------------


def test_envelope_and_bare_health_sim(axon):
    for rpc in ("/rpc/state", "/rpc/stats", "/rpc/status"):
        assert set(axon.get(rpc).json()) == {"success", "message", "data"}
    assert set(axon.get("/health").json()) == {"status", "service", "version", "running", "state"}


def test_bare_health_client(axon):
    assert axon.client().health()["status"] == "ok"


# -- refusals: HTTP 200 + success:false; 404 unknown route; 400 unparsable JSON --------------------


def test_refusal_status_codes_sim(axon):
    refused = axon.post("/rpc/finish", {"task_id": "nope"})
    assert refused.status_code == 200 and refused.json()["success"] is False
    assert axon.post("/rpc/warp", {}).status_code == 404
    bad = httpx.post(f"{axon.url}/rpc/config", content=b"{oops", headers={"content-type": "application/json"})
    assert bad.status_code == 400 and bad.json()["success"] is False


def test_refusal_raises_with_axons_message_client(axon):
    with pytest.raises(RecorderRefused, match="Cannot finish recording from state: idle"):
        axon.client().finish("nope")


# -- config refusals carry data.validation_errors -----------------------------------------------


def test_validation_errors_sim(axon):
    body = axon.post("/rpc/config", {"task_config": {"task_id": "", "skills": "pick"}}).json()
    assert body["success"] is False
    fields = {(e["field"], e["code"]) for e in body["data"]["validation_errors"]}
    assert fields == {("task_id", "empty"), ("device_id", "missing_required"), ("skills", "invalid_type")}


def test_validation_errors_surface_client(axon, edge_env):
    with pytest.raises(RecorderRefused) as refused:
        axon.client().config({"task_id": "t1", "device_id": "robot-1", "skills": "pick"})
    assert refused.value.validation_errors[0]["field"] == "skills"
    assert "skills: skills must be an array of strings (invalid_type)" in str(refused.value)


def test_validation_errors_fail_the_task_with_them_client(edge_env):
    """The agent's config push refused by Axon: the task FAILS with Axon's validation errors."""

    class Strict(AxonHttpRecorder):  # a recorder whose validation refuses what ours accepts
        def config(self, task_config):
            return super().config({**task_config, "scene": 42})

    agent = _agent(edge_env, recorder=Strict(edge_env.recorder.url, retry_attempts=0))
    (task_id,) = edge_env.dispatch_order()
    task = wait_for(lambda: (t := agent.get_task(task_id) if any(x.task_id == task_id for x in agent.list_tasks()) else None)
                    and t.status is TaskStatus.FAILED and t, what="FAILED")
    assert "Task configuration validation failed" in task.failure_reason
    assert "scene: scene must be a string (invalid_type)" in task.failure_reason


# -- the state machine: config IDLE→READY (and READY→READY, replacing), begin, finish, pause/resume, clear


def test_state_machine_sim(axon):
    axon.post("/rpc/config", {"task_config": {"task_id": "a", "device_id": "robot-1"}})
    replaced = axon.post("/rpc/config", {"task_config": {"task_id": "b", "device_id": "robot-1"}}).json()
    assert replaced["success"] and replaced["data"] == {"state": "ready", "task_id": "b"}, "config in READY replaces"
    assert axon.post("/rpc/begin", {"task_id": "a"}).json()["success"] is False
    assert axon.post("/rpc/clear", {}).json()["data"] == {"state": "idle"}
    axon.post("/rpc/config", {"task_config": {"task_id": "b", "device_id": "robot-1"}})
    assert axon.post("/rpc/begin", {"task_id": "b"}).json()["data"] == {"state": "recording", "task_id": "b"}
    assert axon.post("/rpc/pause", {}).json()["data"] == {"state": "paused"}
    assert axon.post("/rpc/resume", {}).json()["data"] == {"state": "recording"}
    assert axon.post("/rpc/finish", {"task_id": "b"}).json()["data"] == {"state": "idle", "task_id": "b"}
    state = axon.get("/rpc/state").json()["data"]
    assert state["state"] == "idle" and "task_config" not in state, "config cached, idle, not shown"


def test_state_machine_client(axon, write_config):
    client = axon.client()
    client.update_config(write_config("a"))
    client.start_recording(write_config("b"))  # a different pending config is replaced
    assert client.state().task_id == "b"
    assert client.stop_recording().output_path.endswith("b.mcap")


# -- cancel ignores the task id, deletes .mcap/.json/.done, sends no callback ---------------------


def test_cancel_ignores_task_id_and_deletes_files_sim(axon, callback_receiver):
    cb_url, received = callback_receiver
    axon.record("old")  # a finished recording of another task stays
    axon.post("/rpc/config", {"task_config": {"task_id": "t1", "device_id": "robot-1", "finish_callback_url": f"{cb_url}/cb/f"}})
    axon.post("/rpc/begin", {"task_id": "t1"})
    reply = axon.post("/rpc/cancel", {"task_id": "some-other-task"}).json()
    assert reply["success"] and reply["data"] == {"state": "idle"}
    assert sorted(p.name for p in axon.data_dir.iterdir()) == ["old.json", "old.mcap", "old.mcap.done"]
    time.sleep(0.3)
    assert received == [], "cancel sends no callback"


def test_cancel_only_our_own_recording_client(axon, write_config):
    client = axon.client()
    client.start_recording(write_config("theirs"))
    assert client.cancel_task("ours") is False
    assert client.state().state == "recording" and (axon.data_dir / "theirs.mcap").exists()


# -- begin/finish reply only {state, task_id}; the path is in stats.metadata --------------------


def test_no_dataset_path_in_replies_sim(axon):
    axon.post("/rpc/config", {"task_config": {"task_id": "t1", "device_id": "robot-1"}})
    assert set(axon.post("/rpc/begin", {"task_id": "t1"}).json()["data"]) == {"state", "task_id"}
    assert set(axon.post("/rpc/finish", {"task_id": "t1"}).json()["data"]) == {"state", "task_id"}


def test_output_path_from_stats_metadata_client(axon, write_config):
    client = axon.client()
    client.start_recording(write_config("t1"))
    stopped = client.stop_recording()
    assert stopped.output_path == str(axon.data_dir / "t1.mcap")
    assert stopped.sidecar_path == str(axon.data_dir / "t1.json")
    assert len(stopped.checksum_sha256) == 64


# -- /rpc/state fields -------------------------------------------------------------------------


def test_state_fields_sim(axon):
    axon.post("/rpc/config", {"task_config": {"task_id": "t1", "device_id": "robot-1", "user_token": "secret"}})
    data = axon.get("/rpc/state").json()["data"]
    assert set(data) == {"version", "state", "task_config", "running", "duration_sec", "message_count", "bytes_written"}
    assert "user_token" not in data["task_config"]


def test_state_fields_client(axon, write_config):
    client = axon.client()
    client.update_config(write_config("t1"))
    state = client.state()
    assert (state.state, state.task_id) == ("ready", "t1"), "task id read from task_config"


# -- /rpc/stats: topic_message_counts{received,written,dropped}, disk_usage{...}, metadata{...} ----


def test_stats_fields_sim(axon):
    axon.post("/rpc/config", {"task_config": {"task_id": "t1", "device_id": "robot-1"}})
    axon.post("/rpc/begin", {"task_id": "t1"})
    time.sleep(0.3)
    stats = axon.get("/rpc/stats").json()["data"]
    assert all(set(c) == {"received", "written", "dropped"} for c in stats["topic_message_counts"].values())
    assert stats["topic_message_counts"]["/imu"]["written"] > 0
    assert {"total_used_gb", "hard_limit_gb", "state"} <= set(stats["disk_usage"])
    assert {"output_path", "sidecar_path", "checksum_sha256"} <= set(stats["metadata"])
    axon.post("/rpc/finish", {"task_id": "t1"})
    after = axon.get("/rpc/stats").json()["data"]
    assert all(c["written"] == 0 for c in after["topic_message_counts"].values()), "counts reset at finish"
    assert after["metadata"]["output_path"].endswith("t1.mcap")


def test_counts_and_disk_from_the_real_fields_client(axon, write_config):
    client = axon.client()
    client.start_recording(write_config("t1"))
    time.sleep(0.3)
    status = client.get_status()
    assert dict(zip(status.active_topics, status.batch_sizes))["/imu"] == status.topic_counts["/imu"]["written"] > 0
    assert status.disk_state == "normal" and status.disk_usage_gb >= 0
    assert set(status.subscribed_topics) == set(axon.sim.subscriptions)


# -- finish takes time (drain, close, re-scan, SHA-256); other RPCs wait -----------------------


def test_slow_finish_holds_other_rpcs_sim(start_axon):
    axon = start_axon()
    axon.sim.set_faults({"finish_delay_seconds": 1.0})
    axon.post("/rpc/config", {"task_config": {"task_id": "t1", "device_id": "robot-1"}})
    axon.post("/rpc/begin", {"task_id": "t1"})
    waited = []

    def poll() -> None:
        time.sleep(0.3)
        t0 = time.monotonic()
        axon.get("/rpc/state")
        waited.append(time.monotonic() - t0)

    poller = threading.Thread(target=poll)
    poller.start()
    t0 = time.monotonic()
    axon.post("/rpc/finish", {"task_id": "t1"})
    poller.join()
    assert time.monotonic() - t0 >= 1.0 and waited[0] >= 0.5


def test_slow_finish_does_not_time_out_the_agent_client(edge_env):
    """A finish far longer than the agent's RPC timeout still ends EXECUTED."""
    recorder = AxonHttpRecorder(edge_env.recorder.url, timeout_seconds=0.5, retry_attempts=0)
    agent = _agent(edge_env, recorder=recorder)
    (task_id,) = edge_env.dispatch_order()
    _ready(agent, task_id)
    edge_env.recorder.sim.set_faults({"finish_delay_seconds": 2.0})  # taken at begin
    agent.teleop(task_id, "start")
    t0 = time.monotonic()
    assert agent.teleop(task_id, "stop").status is TaskStatus.EXECUTED
    assert time.monotonic() - t0 >= 2.0, "the finish really outlasted the 0.5 s RPC timeout"


# -- disk guard: the recorder pauses itself at the hard limit -------------------------------------


def test_disk_guard_pauses_itself_sim(axon):
    axon.sim.set_faults({"disk_full_after_seconds": 0.1})
    axon.post("/rpc/config", {"task_config": {"task_id": "t1", "device_id": "robot-1"}})
    axon.post("/rpc/begin", {"task_id": "t1"})
    wait_for(lambda: axon.get("/rpc/state").json()["data"]["state"] == "paused", what="paused by the guard")
    assert axon.get("/rpc/stats").json()["data"]["disk_usage"]["state"] == "hard_limit"


def test_disk_guard_pause_is_a_failure_client(edge_env):
    agent = _agent(edge_env, supervision_interval=0.2)
    (task_id,) = edge_env.dispatch_order(duration=60)
    _ready(agent, task_id)
    agent.teleop(task_id, "start")
    edge_env.recorder.sim.set_faults({"disk_full_after_seconds": 0.1})
    task = wait_for(lambda: (t := agent.get_task(task_id)).status is not TaskStatus.EXECUTING and t, timeout=15, what="FAILED")
    assert task.status is TaskStatus.FAILED and "paused itself: Disk hard limit reached" in task.failure_reason


# -- topics come only from the recorder's subscriptions ------------------------------------------


def test_records_its_subscriptions_not_the_tasks_topics_sim(axon):
    path = axon.record(topics=["/not/subscribed"])
    recorded = {t["topic"] for t in __import__("json").loads(path.with_suffix(".json").read_text())["topics_summary"]}
    assert recorded == set(axon.sim.subscriptions)


def test_unsubscribed_required_topics_fail_at_pickup_client(edge_env):
    from axon_edge.errors import Conflict

    agent = _agent(edge_env)
    edge_env.admin.create_order("order-lidar", "warehouse", ["pick"], sub_scene="aisle_1")
    plan = edge_env.admin.plan_order("order-lidar", task_count=1, duration_seconds=1.0, topics=["/imu", "/front_lidar/scan"])
    edge_env.admin.dispatch_order("order-lidar", [edge_env.robot_id])
    task_id = plan["tasks"][0]["task_id"]
    _ready(agent, task_id)
    with pytest.raises(Conflict, match="does not subscribe to required topic"):
        agent.pickup(task_id, "alice")
    task = agent.get_task(task_id)
    assert task.status is TaskStatus.FAILED and "/front_lidar/scan" in task.failure_reason
    wait_for(lambda: edge_env.admin.get_task(task_id)["status"] == "FAILED", what="FAILED in the cloud")


# -- task_config.topics: strings (v0.4.0) or objects with a name (main) ---------------------------


def test_topics_as_strings_or_objects_sim(axon):
    reply = axon.post(
        "/rpc/config",
        {"task_config": {"task_id": "t1", "device_id": "robot-1", "topics": ["/imu", {"name": "/odom", "qos": {"depth": 5}}]}},
    ).json()
    assert reply["success"]


def test_topics_sent_as_strings_client(axon, write_config):
    client = axon.client()
    client.update_config(write_config("t1", topics=["/imu"]))
    assert client.state().task_config["topics"] == ["/imu"]


def test_recording_found_by_naming_client(edge_env):
    """When neither reply nor stats say where (an older peer), the output directory does."""

    class Quiet(AxonHttpRecorder):  # a peer whose stats carry no metadata
        def last_output(self, task_id):
            return {}

        def stop_recording(self):
            response = super().stop_recording()
            return type(response)(response.success, response.message, response.flushed_batches)

    agent = _agent(edge_env, recorder=Quiet(edge_env.recorder.url, retry_attempts=0),
                   recorder_output_dir=edge_env.recorder.data_dir, output_wait_seconds=3)
    (task_id,) = edge_env.dispatch_order()
    _ready(agent, task_id)
    agent.teleop(task_id, "start")
    task = agent.teleop(task_id, "stop")
    assert task.status is TaskStatus.EXECUTED
    assert_taken_from_recorder(edge_env, task)


def test_a_task_failed_in_the_cloud_cancels_only_its_own_recording_client(edge_env):
    """An admin fails the task being recorded: the agent cancels the recorder's session, because
    the session is that task's (Axon's cancel would end whatever records)."""
    agent = _agent(edge_env)
    (task_id,) = edge_env.dispatch_order(duration=60)
    _ready(agent, task_id)
    agent.teleop(task_id, "start")
    wait_for(lambda: edge_env.admin.get_task(task_id)["status"] == "EXECUTING", what="EXECUTING in the cloud")
    edge_env.admin.transition_task(task_id, "FAILED", reason="operator aborted the order")
    wait_for(lambda: edge_env.recorder.sim.state == "idle", timeout=15, what="recorder session cancelled")
    assert agent.get_task(task_id).status is TaskStatus.FAILED
    assert not (edge_env.recorder.data_dir / f"{task_id}.mcap").exists()


# -- the other routes: begin_batch / finish_batch / cancel_batch, tasks, task_status (a POST), ----
# -- drop_stats, latency_stats, log_levels, quit; unknown /rpc/ method or verb: 404 ---------------


def test_other_routes_sim(axon):
    assert axon.get("/rpc/tasks").json()["data"] == {"tasks": [], "count": 0, "state": "idle"}
    axon.post("/rpc/config", {"task_config": {"task_id": "t1", "device_id": "robot-1"}})
    batch = axon.post("/rpc/begin_batch", {"task_ids": ["t1"]}).json()
    assert batch["success"] and batch["data"]["succeeded"] == 1 and batch["data"]["results"][0]["data"]["state"] == "recording"
    tasks = axon.get("/rpc/tasks").json()["data"]
    assert tasks["count"] == 1 and tasks["tasks"][0]["task_id"] == "t1" and tasks["tasks"][0]["state"] == "recording"
    found = axon.post("/rpc/task_status", {"task_id": "t1"}).json()["data"]
    assert found["found"] is True and found["task"]["task_id"] == "t1"
    assert axon.post("/rpc/task_status", {"task_id": "t9"}).json()["data"] == {
        "task_id": "t9", "state": "recording", "found": False, "status": "unknown"}
    assert axon.get("/rpc/task_status").status_code == 404, "task_status is a POST"
    wrong = axon.post("/rpc/cancel_batch", {"task_ids": ["t9"]}).json()
    assert wrong["success"] is False and wrong["data"]["failed"] == 1, "cancel_batch checks the id, unlike cancel"
    for route in ("/rpc/drop_stats", "/rpc/latency_stats", "/rpc/log_levels", "/rpc/status"):
        assert axon.get(route).json()["success"], route
    done = axon.post("/rpc/finish_batch", {"task_ids": ["t1"]}).json()
    assert done["success"] and done["data"]["state"] == "idle"
    assert axon.post("/rpc/begin_batch", {}).json()["message"] == "Missing required parameter: task_ids"


def test_quit_saves_the_recording_and_stops_the_server_sim(start_axon):
    axon = start_axon()
    axon.post("/rpc/config", {"task_config": {"task_id": "t1", "device_id": "robot-1"}})
    axon.post("/rpc/begin", {"task_id": "t1"})
    time.sleep(0.2)
    reply = axon.post("/rpc/quit", {}).json()
    assert reply["success"] and reply["message"] == "Program quitting. Recording stopped and data saved."
    assert (axon.data_dir / "t1.mcap.done").exists(), "the data was saved"

    def down() -> bool:
        try:
            axon.get("/health")
        except httpx.HTTPError:
            return True
        return False

    wait_for(down, timeout=10, what="server stopped")


def test_a_quit_recorder_is_unreachable_client(start_axon, write_config):
    from axon_dagster.recorder.protocol import RecorderUnreachable

    axon = start_axon()
    client = axon.client()
    axon.post("/rpc/quit", {})
    wait_for(lambda: axon.sim.quit_requested.is_set(), what="quit")
    time.sleep(0.5)
    with pytest.raises(RecorderUnreachable):
        client.get_status()

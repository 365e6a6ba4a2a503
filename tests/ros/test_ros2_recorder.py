"""Ros2Recorder against ``FakeRclpy`` — a TEST DOUBLE for rclpy, which cannot be installed here.

The double stands in for rclpy only; the services behind it are the simulator's real service
semantics (:class:`RecorderServices` over a :class:`SimulatedRecorder`), so recordings are real
Lance datasets and refusals are the simulator's own.
"""

from __future__ import annotations

import threading
import time

import pytest

from axon_dagster.recorder import (
    RecorderClient,
    RecorderError,
    RecorderProtocolError,
    RecorderRefused,
    RecorderTimeout,
    RecorderUnreachable,
    RecordingConfigError,
)
from axon_dagster.recorder.ros2 import Ros2Recorder
from axon_dagster.recorder.sim.ros1_node import RecorderServices
from axon_dagster.recorder.sim.server import SimulatedRecorder
from axon_dagster.recorder.srv import SERVICES
from axon_dagster.storage.digest import dataset_digest
from axon_dagster.storage.recording import Sidecar, sidecar_path
from fake_rclpy import FakeGraph, FakeRclpy, FakeServiceServer, make_srv_module
from ros_support import wait_until

SRV = make_srv_module()


def serve_recorder(graph: FakeGraph, services: RecorderServices, namespace: str = "axon", *, delay: float = 0.0) -> dict:
    """The recorder's four services on the fake graph, each answering with the simulator's semantics."""
    handlers = {
        "start_recording": lambda req: SRV.StartRecording.Response(**services.start_recording(req.config_path)),
        "stop_recording": lambda req: SRV.StopRecording.Response(**services.stop_recording()),
        "get_status": lambda req: SRV.GetStatus.Response(**services.get_status()),
        "update_config": lambda req: SRV.UpdateConfig.Response(**services.update_config(req.config_path)),
    }
    return {
        op: graph.serve(f"/{namespace}/{op}", FakeServiceServer(getattr(SRV, srv), handlers[op], delay))
        for op, srv in SERVICES.items()
    }


@pytest.fixture
def recorder(tmp_path):
    return SimulatedRecorder(tmp_path / "sim-data", "robot-1")


@pytest.fixture
def rclpy_double():
    """A fresh FakeRclpy (test double for rclpy) per test."""
    return FakeRclpy()


@pytest.fixture
def make_client(rclpy_double):
    clients: list[Ros2Recorder] = []

    def make(namespace: str = "axon", **kwargs) -> Ros2Recorder:
        # generous: the first finish in a process imports lance (seconds on a busy machine)
        kwargs.setdefault("timeout_seconds", 30.0)
        kwargs.setdefault("retry_attempts", 0)
        client = Ros2Recorder(namespace, rclpy_module=rclpy_double, srv_module=SRV, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def test_full_cycle_over_ros2_writes_a_dataset_whose_digest_matches(rclpy_double, make_client, recorder, write_config):
    serve_recorder(rclpy_double.graph, RecorderServices(recorder))
    client = make_client()
    assert isinstance(client, RecorderClient)
    config_path = write_config("task-r2-1", topics=["/imu", "/joint_states"])

    assert client.get_status().is_recording is False
    assert client.update_config(config_path).success
    assert "task-r2-1" in client.start_recording(config_path).message
    assert client.start_recording(config_path).message == "already recording task task-r2-1"  # duplicate press
    time.sleep(0.2)
    status = client.get_status()
    assert status.is_recording and status.active_topics == ["/imu", "/joint_states"]
    assert all(isinstance(n, int) and n > 0 for n in status.batch_sizes)  # array('i') from rosidl, as lists
    stopped = client.stop_recording()
    assert stopped.success and stopped.flushed_batches >= 1

    dataset = recorder.data_dir / "task-r2-1.lance"
    sidecar = Sidecar.read(sidecar_path(dataset))
    assert sidecar.dataset_digest == dataset_digest(dataset)
    assert set(sidecar.topics) == {"/imu", "/joint_states"}
    after = client.get_status()
    assert (after.is_recording, after.dataset_path) == (False, str(dataset))


def test_unavailable_service_is_unreachable_after_bounded_retries(make_client):
    client = make_client("nobody", timeout_seconds=0.2, retry_attempts=2, backoff_seconds=0.05)
    started = time.monotonic()
    with pytest.raises(RecorderUnreachable, match="/nobody/get_status not available within 0.2s after 3 attempt"):
        client.get_status()
    elapsed = time.monotonic() - started
    assert client.attempts == 3
    assert 0.6 <= elapsed < 2.0, elapsed


def test_service_slower_than_the_timeout_is_a_timeout_and_its_late_reply_is_ignored(
    rclpy_double, make_client, recorder
):
    servers = serve_recorder(rclpy_double.graph, RecorderServices(recorder), delay=0.6)
    client = make_client(timeout_seconds=0.2, retry_attempts=3)
    started = time.monotonic()
    with pytest.raises(RecorderTimeout, match="did not answer /axon/get_status within 0.2s"):
        client.get_status()
    assert time.monotonic() - started < 0.6
    assert client.attempts == 1, "a call that went out is never repeated"
    # the server answers later; the client has forgotten the request, so nothing completes
    get_status_client = client._clients["get_status"]
    wait_until(lambda: get_status_client.ignored_responses == 1, timeout=3)
    assert servers["get_status"].requests == 1


def test_refused_start_carries_the_recorders_message(rclpy_double, make_client, tmp_path, write_config):
    recorder = SimulatedRecorder(tmp_path / "faulty", "robot-1", faults={"fail_start": True})
    serve_recorder(rclpy_double.graph, RecorderServices(recorder))
    client = make_client()
    with pytest.raises(RecorderRefused, match="simulated start failure") as refused:
        client.start_recording(write_config("task-refused"))
    assert refused.value.operation == "start_recording"
    assert client.get_status().last_error.startswith("failed to start recording")


def test_bad_config_is_refused_before_any_call(rclpy_double, make_client, recorder, tmp_path):
    servers = serve_recorder(rclpy_double.graph, RecorderServices(recorder))
    client = make_client()
    bad = tmp_path / "bad.yaml"
    bad.write_text("task_id: t1\n")  # no device_id
    with pytest.raises(RecordingConfigError, match="device_id"):
        client.start_recording(str(bad))
    with pytest.raises(RecordingConfigError, match="file not found"):
        client.update_config(str(tmp_path / "missing.yaml"))
    assert servers["start_recording"].requests == servers["update_config"].requests == 0
    assert recorder.state == "idle"


def test_recorder_dying_mid_recording_fails_status_calls_never_hangs(rclpy_double, make_client, recorder, write_config):
    serve_recorder(rclpy_double.graph, RecorderServices(recorder))
    client = make_client(timeout_seconds=0.3, retry_attempts=1, backoff_seconds=0.05)
    client.start_recording(write_config("task-dies"))
    for op in SERVICES:
        rclpy_double.graph.kill(f"/axon/{op}")
    started = time.monotonic()
    with pytest.raises(RecorderUnreachable, match="not available"):
        client.get_status()
    assert time.monotonic() - started < 2.0


def test_server_dying_with_the_request_in_flight_is_a_timeout_that_says_so(rclpy_double, make_client, recorder):
    serve_recorder(rclpy_double.graph, RecorderServices(recorder), delay=5.0)
    client = make_client(timeout_seconds=0.3)
    threading.Timer(0.1, rclpy_double.graph.kill, args=("/axon/get_status",)).start()
    with pytest.raises(RecorderTimeout, match="no longer available"):
        client.get_status()


def test_reply_of_the_wrong_shape_is_a_protocol_error(rclpy_double, make_client):
    # a server of another interface version: its reply lacks fields our GetStatus promises
    rclpy_double.graph.serve("/axon/get_status", FakeServiceServer(SRV.GetStatus, lambda req: SRV.UpdateConfig.Response()))
    with pytest.raises(RecorderProtocolError, match="has no field 'is_recording'"):
        make_client().get_status()


def test_close_shuts_everything_down_and_rclpy_only_if_it_initialised_it(rclpy_double, recorder):
    serve_recorder(rclpy_double.graph, RecorderServices(recorder))
    first = Ros2Recorder(rclpy_module=rclpy_double, srv_module=SRV)
    second = Ros2Recorder(rclpy_module=rclpy_double, srv_module=SRV)
    assert rclpy_double.init_calls == 1 and rclpy_double.ok()
    spin_thread = first._spin_thread
    wait_until(lambda: first._executor.spinning)

    first.close()
    first.close()  # idempotent
    assert not spin_thread.is_alive() and not first._executor.spinning
    assert first._node.destroyed and all(c.destroyed for c in first._node.clients)
    assert rclpy_double.ok(), "the second client still uses the context"
    assert second.get_status().is_recording is False
    with pytest.raises(RecorderError, match="closed"):
        first.get_status()

    second.close()
    assert rclpy_double.shutdown_calls == 1 and not rclpy_double.ok()


def test_a_context_the_host_initialised_is_left_running(rclpy_double):
    rclpy_double.init()
    with Ros2Recorder(rclpy_module=rclpy_double, srv_module=SRV) as client:
        assert client._executor.nodes == [client._node]
    assert rclpy_double.init_calls == 1 and rclpy_double.shutdown_calls == 0 and rclpy_double.ok()


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"namespace": "9lives"}, "invalid ROS namespace"),
        ({"namespace": "a b"}, "invalid ROS namespace"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"retry_attempts": -1}, "retry_attempts"),
    ],
)
def test_bad_arguments_are_refused_before_rclpy_is_touched(rclpy_double, kwargs, words):
    with pytest.raises(ValueError, match=words):
        Ros2Recorder(rclpy_module=rclpy_double, srv_module=SRV, **kwargs)
    assert rclpy_double.init_calls == 0 and rclpy_double.nodes == []


def test_available_topics_come_from_the_ros2_graph(rclpy_double, make_client):
    rclpy_double.graph.publish("/imu", "sensor_msgs/msg/Imu")
    rclpy_double.graph.publish("/cmd_vel", "geometry_msgs/msg/Twist", count=0)  # subscribed only
    assert make_client().available_topics() == {"/imu": "sensor_msgs/msg/Imu"}

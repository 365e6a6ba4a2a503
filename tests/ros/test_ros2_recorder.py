"""Ros2Recorder against the simulator as a real ROS 2 node (rclpy + Fast DDS from the PyPI wheels,
our interface package built by rosidl), over a real ROS 2 graph on loopback — no test double.

Each test that hurts its recorder (stops it, kills it, gives it faults) has a simulator of its
own under a namespace no other test uses; the healthy ones share one per module.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from axon_dagster.recorder import (
    RecorderClient,
    RecorderError,
    RecorderRefused,
    RecorderTimeout,
    RecorderUnreachable,
    RecordingConfigError,
)
from axon_dagster.recorder.ros2 import Ros2Recorder
from axon_dagster.storage.digest import dataset_digest
from axon_dagster.storage.recording import Sidecar, sidecar_path
from ros_support import kill, new_namespace, spawn_sim, wait_sim, wait_until


@pytest.fixture
def clients(ros2_ready):
    """Clients made by a test, closed after it."""
    made: list[Ros2Recorder] = []
    yield made
    for client in made:
        client.close()


def client_of(clients, sim_or_namespace, **kwargs) -> Ros2Recorder:
    namespace = getattr(sim_or_namespace, "namespace", sim_or_namespace)
    kwargs.setdefault("timeout_seconds", 30.0)  # the first finish imports lance in the simulator
    kwargs.setdefault("retry_attempts", 0)
    clients.append(Ros2Recorder(namespace, **kwargs))
    return clients[-1]


def test_full_cycle_over_ros2_writes_a_dataset_whose_digest_matches(shared_ros2_sim, clients, write_config):
    client = client_of(clients, shared_ros2_sim, retry_attempts=3)  # discovery of a new peer takes a moment
    assert isinstance(client, RecorderClient)
    config_path = write_config("task-r2-1", topics=["/imu", "/joint_states"])

    assert client.get_status().is_recording is False
    assert client.update_config(config_path).success
    assert "task-r2-1" in client.start_recording(config_path).message
    assert client.start_recording(config_path).message == "already recording task task-r2-1"  # duplicate press
    time.sleep(0.3)
    status = client.get_status()
    # Axon records its own subscriptions, whatever the config's topics say
    assert status.is_recording and status.active_topics == ["/camera/image_raw", "/imu", "/joint_states"]
    assert all(isinstance(n, int) and n > 0 for n in status.batch_sizes)  # array('i') from rosidl, as lists
    stopped = client.stop_recording()
    assert stopped.success and stopped.flushed_batches >= 1

    dataset = shared_ros2_sim.data_dir / "task-r2-1.lance"
    sidecar = Sidecar.read(sidecar_path(dataset))
    assert sidecar.dataset_digest == dataset_digest(dataset)
    assert set(sidecar.topics) == {"/camera/image_raw", "/imu", "/joint_states"}
    after = client.get_status()
    assert (after.is_recording, after.dataset_path) == (False, str(dataset))
    # the recorder really was the ROS 2 node (no HTTP server in that process)
    assert "axon-sim listening on" not in shared_ros2_sim.log()


def test_stop_with_nothing_recording_is_refused_with_the_recorders_reason(shared_ros2_sim, clients):
    client = client_of(clients, shared_ros2_sim, retry_attempts=3)
    with pytest.raises(RecorderRefused, match="nothing to stop: recorder is idle") as refused:
        client.stop_recording()
    assert refused.value.operation == "stop_recording"


def test_unavailable_service_is_unreachable_after_bounded_retries(clients):
    client = client_of(clients, new_namespace("nobody"), timeout_seconds=0.3, retry_attempts=2, backoff_seconds=0.05)
    started = time.monotonic()
    with pytest.raises(RecorderUnreachable, match=r"/nobody_\w+/get_status not available within 0.3s after 3 attempt"):
        client.get_status()
    elapsed = time.monotonic() - started
    assert client.attempts == 3
    assert 0.9 <= elapsed < 3.0, elapsed


def test_a_recorder_that_comes_up_late_is_reached_by_the_retries(ros2_ready, clients, tmp_path):
    namespace = new_namespace("late")
    client = client_of(clients, namespace, timeout_seconds=2.0, retry_attempts=10, backoff_seconds=0.1)
    sim = spawn_sim("ros2", tmp_path, namespace)  # not up yet: the interpreter and rclpy still load
    try:
        status = client.get_status()
        assert status.is_recording is False
        assert client.attempts >= 1
        wait_sim(sim)
    finally:
        kill(sim)


def test_a_hung_recorder_is_a_timeout_never_repeated_and_its_late_reply_is_ignored(start_ros2_sim, clients):
    sim = start_ros2_sim()
    client = client_of(clients, sim, timeout_seconds=1.0, retry_attempts=3)
    assert client.get_status().is_recording is False
    os.kill(sim.proc.pid, signal.SIGSTOP)  # the request goes out; nobody answers
    try:
        started = time.monotonic()
        with pytest.raises(RecorderTimeout, match=r"did not answer /sim2_\w+/get_status within 1s"):
            client.get_status()
        assert time.monotonic() - started < 3.0  # the 1 s timeout, plus a busy machine's slack
        assert client.attempts == 2, "a call that went out is never repeated"
    finally:
        os.kill(sim.proc.pid, signal.SIGCONT)
    # the recorder now answers the old request too; the client forgot it, so the next call gets its own reply
    assert client.get_status().is_recording is False
    wait_until(lambda: sim.log().count("get_status ->") == 3, timeout=10)


def test_recorder_killed_mid_call_is_a_timeout_that_says_so_then_unreachable(start_ros2_sim, clients, write_config):
    sim = start_ros2_sim()
    client = client_of(clients, sim, timeout_seconds=7.0, retry_attempts=0)
    client.start_recording(write_config("task-killed"))
    os.kill(sim.proc.pid, signal.SIGSTOP)
    threading.Timer(0.5, sim.proc.kill).start()  # dies with the request in flight, without leaving the graph
    started = time.monotonic()
    with pytest.raises(RecorderTimeout, match="no longer available"):
        client.get_status()  # the loopback profile's 4 s lease tells the client the peer is gone
    assert time.monotonic() - started < 10.0
    started = time.monotonic()
    with pytest.raises(RecorderUnreachable, match="not available within 7s"):
        client.get_status()
    assert time.monotonic() - started < 10.0


def test_refused_start_carries_the_recorders_message(start_ros2_sim, clients, write_config):
    sim = start_ros2_sim(faults='{"fail_start": true}')
    client = client_of(clients, sim, retry_attempts=3)
    with pytest.raises(RecorderRefused, match="simulated start failure") as refused:
        client.start_recording(write_config("task-refused"))
    assert refused.value.operation == "start_recording"
    assert client.get_status().last_error.lower().startswith("failed to start recording")
    assert not any(sim.data_dir.glob("task-refused*"))


def test_bad_config_is_refused_before_any_call(clients, tmp_path):
    client = client_of(clients, new_namespace("unused"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("task_id: t1\n")  # no device_id
    with pytest.raises(RecordingConfigError, match="device_id"):
        client.start_recording(str(bad))
    with pytest.raises(RecordingConfigError, match="file not found"):
        client.update_config(str(tmp_path / "missing.yaml"))
    assert client.attempts == 0


def test_close_releases_rclpy_only_after_the_last_client_and_only_if_it_initialised_it(shared_ros2_sim, ros2_ready):
    import rclpy

    assert not rclpy.ok(), "another test left rclpy running"
    first = Ros2Recorder(shared_ros2_sim.namespace, timeout_seconds=10, retry_attempts=3)
    second = Ros2Recorder(shared_ros2_sim.namespace, timeout_seconds=10, retry_attempts=3)
    spinner = first._spinner
    assert rclpy.ok() and spinner.spinning
    first.close()
    first.close()  # idempotent
    assert not spinner.spinning
    assert rclpy.ok(), "the second client still uses the context"
    assert second.get_status().is_recording is False
    with pytest.raises(RecorderError, match="closed"):
        first.get_status()
    second.close()
    assert not rclpy.ok()

    rclpy.init()  # a host that initialised rclpy itself keeps it
    try:
        with Ros2Recorder(shared_ros2_sim.namespace, timeout_seconds=10, retry_attempts=3) as third:
            assert third.get_status().is_recording is False
        assert rclpy.ok()
    finally:
        rclpy.shutdown()


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"namespace": "9lives"}, "invalid ROS namespace"),
        ({"namespace": "a b"}, "invalid ROS namespace"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"retry_attempts": -1}, "retry_attempts"),
    ],
)
def test_bad_arguments_are_refused_before_rclpy_is_touched(ros2_ready, kwargs, words):
    import rclpy

    with pytest.raises(ValueError, match=words):
        Ros2Recorder(**kwargs)
    assert not rclpy.ok()


def test_available_topics_come_from_the_ros2_graph(clients):
    from std_msgs.msg import String

    client = client_of(clients, new_namespace("graph"))
    topic = f"/{new_namespace('topic')}"
    publisher = client._node.create_publisher(String, topic, 10)
    try:
        topics = wait_until(lambda: client.available_topics().get(topic) and client.available_topics())
        assert topics[topic] == "std_msgs/msg/String"
    finally:
        client._node.destroy_publisher(publisher)

"""Ros1Recorder against a real rosmaster and the simulator serving the four services as a real
ROS 1 node (``axon-sim --transport ros1``), plus in-process rospy services for the misbehaving
peers (too slow, another service type, a handler that raises)."""

from __future__ import annotations

import threading
import time

import pytest

from axon_dagster.recorder import (
    RecorderClient,
    RecorderProtocolError,
    RecorderRefused,
    RecorderTimeout,
    RecorderUnreachable,
    RecordingConfigError,
)
from axon_dagster.recorder.genpy_build import build, import_generated, load_srv_module
from axon_dagster.recorder.ros1 import Ros1Recorder, ensure_node
from axon_dagster.recorder.ros1_env import import_ros1
from axon_dagster.storage.digest import dataset_digest
from axon_dagster.storage.recording import Sidecar, sidecar_path
from ros_support import HangUpServicePeer, new_namespace, wait_until


@pytest.fixture
def rospy_node(rosmaster):
    """This test process's own rospy node, for in-process services and publishers."""
    return ensure_node(10.0)


@pytest.fixture
def in_process_services(rospy_node):
    advertised = []

    def advertise(name: str, srv_type, handler):
        advertised.append(rospy_node.Service(name, srv_type, handler))
        return advertised[-1]

    yield advertise
    for service in advertised:
        service.shutdown("test over")


def test_full_cycle_through_the_ros1_simulator_writes_a_dataset_whose_digest_matches(shared_ros1_sim, write_config):
    sim = shared_ros1_sim
    client = sim.client()
    assert isinstance(client, RecorderClient)
    config_path = write_config("task-ros1-1", topics=["/camera/image_raw", "/imu"])

    assert client.get_status().is_recording is False
    assert client.update_config(config_path).success
    started = client.start_recording(config_path)
    assert "task-ros1-1" in started.message
    assert client.start_recording(config_path).message == "already recording task task-ros1-1"  # duplicate press
    time.sleep(0.3)
    status = client.get_status()
    # Axon records its own subscriptions, whatever the config's topics say
    assert status.is_recording and status.active_topics == ["/camera/image_raw", "/imu", "/joint_states"]
    assert status.dataset_path == str(sim.data_dir / "task-ros1-1.lance")
    assert len(status.batch_sizes) == 3 and all(n > 0 for n in status.batch_sizes)

    stopped = client.stop_recording()
    assert stopped.success and stopped.flushed_batches >= 1
    dataset = sim.data_dir / "task-ros1-1.lance"
    sidecar = Sidecar.read(sidecar_path(dataset))
    assert sidecar.dataset_digest == dataset_digest(dataset)
    assert sidecar.task_id == "task-ros1-1" and set(sidecar.topics) == {"/camera/image_raw", "/imu", "/joint_states"}
    assert sidecar.metadata["scene"] == "warehouse"
    after = client.get_status()
    assert (after.is_recording, after.dataset_path) == (False, str(dataset))
    with pytest.raises(RecorderRefused, match="nothing to stop: recorder is idle"):
        client.stop_recording()


def test_bad_config_is_refused_here_and_changes_nothing_on_the_recorder(shared_ros1_sim, tmp_path):
    sim = shared_ros1_sim
    client = sim.client()
    before = sorted(p.name for p in sim.data_dir.iterdir()) if sim.data_dir.exists() else []
    calls = lambda: sim.log().count("start_recording ->") + sim.log().count("update_config ->")  # noqa: E731
    calls_before = calls()
    bad = tmp_path / "bad.yaml"
    bad.write_text("task_id: t1\ndevice_id: robot-1\ntopics: [imu]\n")  # a topic without '/'
    with pytest.raises(RecordingConfigError, match="invalid topic 'imu'"):
        client.start_recording(str(bad))
    with pytest.raises(ValueError, match="non-empty path"):
        client.update_config("")
    assert client.get_status().is_recording is False
    assert (sorted(p.name for p in sim.data_dir.iterdir()) if sim.data_dir.exists() else []) == before
    assert calls() == calls_before, "the recorder never saw the bad requests"


def test_recorder_down_is_unreachable_after_bounded_retries(rosmaster):
    client = Ros1Recorder(new_namespace("nobody"), timeout_seconds=0.3, retry_attempts=2, backoff_seconds=0.05)
    started = time.monotonic()
    with pytest.raises(RecorderUnreachable, match=r"get_status failed after 3 attempt\(s\).*not available within 0.3s"):
        client.get_status()
    elapsed = time.monotonic() - started
    assert client.attempts == 3
    assert 0.9 <= elapsed < 4.0, elapsed


def test_slower_than_the_timeout_is_a_timeout_and_frees_the_worker(in_process_services):
    srv = load_srv_module()
    namespace = new_namespace("slow")
    release = threading.Event()

    def slow(request):
        release.wait(10)  # bounded: the test never hangs even if the client misbehaves
        return srv.GetStatusResponse()

    in_process_services(f"/{namespace}/get_status", srv.GetStatus, slow)
    client = Ros1Recorder(namespace, timeout_seconds=0.5, retry_attempts=3)
    started = time.monotonic()
    try:
        with pytest.raises(RecorderTimeout, match=f"did not answer /{namespace}/get_status within 0.5s"):
            client.get_status()
        assert time.monotonic() - started < 2.0
        assert client.attempts == 1, "a call that went out is never repeated"
        # the call's connection was closed on timeout, so its worker thread ends at once
        worker = f"ros1-call /{namespace}/get_status"
        wait_until(lambda: not any(t.name == worker for t in threading.enumerate()), timeout=3)
    finally:
        release.set()


def test_start_refused_by_the_recorder_carries_its_message(start_ros1_sim, write_config):
    sim = start_ros1_sim(faults='{"fail_start": true}')
    client = sim.client()
    with pytest.raises(RecorderRefused, match="simulated start failure") as refused:
        client.start_recording(write_config("task-refused"))
    assert refused.value.operation == "start_recording"
    status = client.get_status()
    assert status.is_recording is False and "fail_start" in status.last_error


def test_recorder_dying_mid_recording_fails_the_status_call_never_hangs(start_ros1_sim, write_config):
    sim = start_ros1_sim(faults='{"die_after_seconds": 0.5}')
    client = sim.client(timeout_seconds=0.5, retry_attempts=1, backoff_seconds=0.05)
    client.start_recording(write_config("task-dies"))
    assert sim.proc.wait(timeout=10) == 1, "the simulated crash exits with status 1"
    started = time.monotonic()
    with pytest.raises((RecorderUnreachable, RecorderTimeout)):
        client.get_status()
    assert time.monotonic() - started < 4.0


def test_a_service_of_another_type_is_a_protocol_error(in_process_services, tmp_path):
    # an older recorder whose GetStatus lacks fields: same name, another md5sum
    srv_dir = tmp_path / "other_srv"
    srv_dir.mkdir()
    (srv_dir / "GetStatus.srv").write_text("---\nbool is_recording\nstring dataset_path\n")
    other = import_generated(build(tmp_path / "other_build", srv_dir=srv_dir, package="axon_old_msgs"), "axon_old_msgs")
    namespace = new_namespace("old")
    in_process_services(f"/{namespace}/get_status", other.GetStatus, lambda req: other.GetStatusResponse(True, "/x"))
    with pytest.raises(RecorderProtocolError, match="another type than ours.*md5sum"):
        Ros1Recorder(namespace, timeout_seconds=2, retry_attempts=3).get_status()


def test_a_handler_that_raises_is_a_refusal_with_its_message(in_process_services):
    srv = load_srv_module()
    namespace = new_namespace("broken")

    def broken(request):
        raise RuntimeError("disk full")

    in_process_services(f"/{namespace}/update_config", srv.UpdateConfig, broken)
    in_process_services(f"/{namespace}/stop_recording", srv.StopRecording, broken)
    with pytest.raises(RecorderRefused, match="disk full"):
        Ros1Recorder(namespace, timeout_seconds=2, retry_attempts=0).stop_recording()


def test_available_topics_come_from_the_master(rospy_node):
    std_msgs = import_ros1("std_msgs.msg")
    topic = f"/{new_namespace('topics')}/imu"
    publisher = rospy_node.Publisher(topic, std_msgs.String, queue_size=1)
    try:
        client = Ros1Recorder(timeout_seconds=2, retry_attempts=0)
        assert wait_until(lambda: client.available_topics().get(topic), timeout=5) == "std_msgs/String"
    finally:
        publisher.unregister()


@pytest.fixture
def hang_up_peer(rospy_node):
    srv = load_srv_module()
    peers = []

    def make(service: str, srv_type):
        peer = HangUpServicePeer(srv_type._md5sum, srv_type._type)
        peer.register(service, rospy_node.core.get_node_uri())
        peers.append(peer)
        return peer

    yield make, srv
    for peer in peers:
        peer.close()


def test_a_start_lost_mid_call_is_not_repeated_but_a_status_read_is(hang_up_peer, write_config):
    make, srv = hang_up_peer
    namespace = new_namespace("hangup")
    start_peer = make(f"/{namespace}/start_recording", srv.StartRecording)
    status_peer = make(f"/{namespace}/get_status", srv.GetStatus)
    client = Ros1Recorder(namespace, timeout_seconds=2, retry_attempts=2, backoff_seconds=0.01)

    with pytest.raises(RecorderUnreachable, match=f"connection to the recorder was lost during /{namespace}/start_recording"):
        client.start_recording(write_config("task-lost"))
    assert start_peer.requests == 1, "a start that may have been acted on is never sent twice"

    with pytest.raises(RecorderUnreachable, match=r"failed after 3 attempt\(s\)"):
        client.get_status()
    assert status_peer.requests == 3, "a status read is safe to repeat"

"""The robot's upload path end to end over real HTTP: the real control-plane API (grants, plans,
the file store's signed ingest endpoint or S3 pre-signed URLs on moto's server, completion with
SHA-256 checks), the real recorder simulator and the agent. The cloud's sensor is played by the
admin client (``grant_upload``), the data flow's publication by ``transition_task(UPLOADED)``."""

from __future__ import annotations

import hashlib
import json
import os
import time

import httpx
import pytest
from edge_support import RECORDER_TIMEOUT, wait_for
from test_durability import record_one

from axon_dagster.storage.edge_cache import CacheState


def staged_bytes(edge_env, task_id: str, name: str) -> bytes:
    store = edge_env.control_plane.staging_store
    return store.get_bytes(f"staging/{edge_env.robot_id}/{task_id}/{name}")


def dataset(edge_env, task_id: str) -> dict:
    return edge_env.admin.get_dataset(task_id)


def test_a_granted_recording_is_uploaded_verified_and_released_once_published(edge_env, monkeypatch):
    from axon_dagster.storage.object_stores import local_parts
    from axon_edge import recordings
    from axon_edge.upload import uploader

    def no_second_pass(*_a, **_k):
        raise AssertionError("an extra hash pass")

    # One hash pass per side: the robot sends parts to the ingest endpoint without an MD5 each, and
    # the control plane completes from the SHA-256 it computed as they came (no re-read of the file).
    monkeypatch.setattr(uploader, "md5_hex", no_second_pass)
    monkeypatch.setattr(local_parts, "_sha256_of_fd", no_second_pass)
    # ... and the MCAP is read once on the robot, after the report (axon_edge.verification), not
    # before it: reported with Axon's checksum as its digest, verified while the grant is awaited.
    monkeypatch.setattr(recordings, "verify_recording", no_second_pass)
    [task_id] = edge_env.dispatch_order()
    running = edge_env.start_agent()
    agent = running.agent
    http = httpx.Client(base_url=running.url, timeout=RECORDER_TIMEOUT)
    wait_for(lambda: edge_env.admin.get_task(task_id)["status"] == "READY", what="READY")
    executed = record_one(http, task_id)
    wait_for(lambda: edge_env.admin.get_task(task_id)["status"] == "EXECUTED", what="EXECUTED in the cloud")
    assert dataset(edge_env, task_id)["status"] == "RECORDED"
    entry = agent.cache.get(task_id)
    assert entry.state is CacheState.CACHED and executed["dataset_path"] == str(entry.path)

    mcap = next(f for f in entry.manifest["files"] if f["name"].endswith(".mcap"))
    axon_checksum = json.loads((entry.entry_dir / f"{task_id}.json").read_text())["recording"]["checksum_sha256"]
    assert mcap["sha256"] == axon_checksum == hashlib.sha256((entry.entry_dir / mcap["name"]).read_bytes()).hexdigest()
    wait_for(lambda: agent.checks.verdict(task_id)[0] == "verified", what="Axon's checksum verified on the robot")
    grant = edge_env.admin.grant_upload(task_id, ttl_seconds=300)
    wait_for(lambda: dataset(edge_env, task_id)["status"] == "STAGED", timeout=30, what="STAGED in the cloud")
    for f in entry.manifest["files"]:
        assert staged_bytes(edge_env, task_id, f["name"]) == (entry.entry_dir / f["name"]).read_bytes()
    record = agent.uploads.uploader.state.get(task_id)
    assert record.state == "completed" and record.grant_id == grant["grant_id"] and record.parts_skipped == 0
    status = http.get("/status").json()["uploads"]
    assert status["completed"] == 1 and status["measured_mbps"] > 0
    metrics = http.get("/metrics").text
    assert 'axon_edge_uploads_total{outcome="completed",robot_id="robot-1"} 1.0' in metrics
    assert agent.cache.get(task_id).state is CacheState.CACHED, "not published yet: the robot keeps it"

    edge_env.admin.transition_task(task_id, "UPLOADED")  # the data flow published it
    wait_for(lambda: agent.cache.get(task_id).state is CacheState.UPLOADED, what="the cached copy released")
    robots = {r["robot_id"]: r for r in edge_env.admin.list_robots()}
    assert robots["robot-1"]["uplink"]["mbps"] > 0, "the measured uplink is reported"


class CorruptingRecorder:
    """The real recorder, whose MCAP loses a byte after Axon wrote its checksum (a bad disk block)."""

    def __init__(self, real):
        self.real = real

    def __getattr__(self, name):
        return getattr(self.real, name)

    def stop_recording(self, *args, **kwargs):
        response = self.real.stop_recording(*args, **kwargs)
        before = os.stat(response.output_path)
        with open(response.output_path, "r+b") as fh:  # in place: the same inode the robot caches
            fh.seek(fh.seek(0, 2) // 2)
            byte = fh.read(1)
            fh.seek(-1, 1)
            fh.write(bytes([byte[0] ^ 0xFF]))
        os.utime(response.output_path, ns=(before.st_atime_ns, before.st_mtime_ns))  # a silent corruption
        return response


def test_a_recording_that_does_not_match_axons_checksum_fails_and_never_uploads(edge_env):
    from axon_dagster.client import ControlPlaneError
    from axon_dagster.recorder.axon_http import AxonHttpRecorder

    [task_id] = edge_env.dispatch_order()
    running = edge_env.start_agent(recorder=CorruptingRecorder(AxonHttpRecorder(edge_env.recorder.url, timeout_seconds=RECORDER_TIMEOUT)))
    agent = running.agent
    http = httpx.Client(base_url=running.url, timeout=RECORDER_TIMEOUT)
    wait_for(lambda: edge_env.admin.get_task(task_id)["status"] == "READY", what="READY")
    stopped = record_one(http, task_id)
    assert stopped["status"] == "EXECUTED", "reported before the one read of the file"
    wait_for(lambda: edge_env.admin.get_task(task_id)["status"] == "FAILED", timeout=30, what="FAILED in the cloud")
    reason = edge_env.admin.get_task(task_id)["failure_reason"]
    assert "recording corrupt" in reason and "does not match the recorder's checksum" in reason, reason
    assert agent.checks.verdict(task_id)[0] == "mismatch"
    assert agent.cache.get(task_id).state is CacheState.REJECTED
    queue = edge_env.admin.upload_queue()
    assert task_id not in {c["task_id"] for c in queue["candidates"]}, "the bandwidth sensor never sees it"
    with pytest.raises(ControlPlaneError) as refused:
        edge_env.admin.grant_upload(task_id, ttl_seconds=300)
    assert refused.value.status_code == 409 and "FAILED" in refused.value.detail
    assert agent.uploads.uploader.state.get(task_id) is None, "no byte of it went on the uplink"


@pytest.mark.parametrize("policy", ["keep", "delete"])
def test_a_gate_rejected_recording_never_uses_the_uplink(edge_env, policy):
    from axon_edge.settings import DataPathSettings

    [task_id] = edge_env.dispatch_order(requirements={"required_topics": ["/camera/image_raw", "/lidar/front"]})
    running = edge_env.start_agent(data_path=DataPathSettings(gate_rejected=policy))
    agent = running.agent
    http = httpx.Client(base_url=running.url, timeout=RECORDER_TIMEOUT)
    wait_for(lambda: edge_env.admin.get_task(task_id)["status"] == "READY", what="READY")
    record_one(http, task_id)
    wait_for(lambda: edge_env.admin.get_task(task_id)["status"] == "FAILED", what="FAILED in the cloud")
    cloud = edge_env.admin.get_task(task_id)
    assert "edge gate" in cloud["failure_reason"] and "/lidar/front" in cloud["failure_reason"]
    with pytest.raises(Exception):
        edge_env.admin.grant_upload(task_id, ttl_seconds=300)  # nothing to grant: the gate failed
    wait_for(lambda: agent.get_task(task_id).status.value == "FAILED", what="FAILED on the robot")
    if policy == "keep":
        entry = agent.cache.get(task_id)
        assert entry.state is CacheState.REJECTED and entry.path.exists(), "kept (gate_rejected=keep), evictable"
    else:
        assert agent.cache.list() == [] and not (agent.cache.root / "datasets" / task_id).exists()
    assert agent.uploads.uploader.state.get(task_id) is None, "no upload was ever started"
    assert not list(edge_env.control_plane.staging_store.root.rglob(f"*{task_id}*")), "nothing staged"


def test_eviction_on_the_robot_waits_for_publication(edge_env):
    """A cache over quota keeps every recording whose task is not UPLOADED; publication (the task
    turning UPLOADED in a pull) makes the robot's copy evictable, and eviction takes it then."""
    from axon_edge.settings import DataPathSettings

    first, second = edge_env.dispatch_order(task_count=2)
    running = edge_env.start_agent(data_path=DataPathSettings(cache_max_gb=1e-9, cache_policy="fifo"))  # 1 byte
    agent = running.agent
    http = httpx.Client(base_url=running.url, timeout=RECORDER_TIMEOUT)
    wait_for(lambda: all(edge_env.admin.get_task(t)["status"] == "READY" for t in (first, second)), what="READY")
    record_one(http, first)
    record_one(http, second)
    assert agent.cache.usage().pressure
    assert [e.dataset_id for e in agent.cache.list()] == [first, second], "over quota, yet nothing unpublished goes"
    assert agent.cache.evict() == []

    wait_for(lambda: edge_env.admin.get_task(first)["status"] == "EXECUTED", what="EXECUTED in the cloud")
    edge_env.admin.transition_task(first, "UPLOADED")
    wait_for(lambda: [e.dataset_id for e in agent.cache.list()] == [second], what="the published recording evicted")
    assert not (agent.cache.root / "datasets" / first).exists()
    assert agent.cache.get(second).path.exists() and agent.cache.get(second).state is CacheState.CACHED


def test_a_lance_era_recording_moves_in_and_uploads_file_by_file(edge_env):
    edge_env.recorder.recording_format = "lance"
    edge_env.recorder.restart()
    [task_id] = edge_env.dispatch_order()
    running = edge_env.start_agent()
    agent = running.agent
    http = httpx.Client(base_url=running.url, timeout=RECORDER_TIMEOUT)
    wait_for(lambda: edge_env.admin.get_task(task_id)["status"] == "READY", what="READY")
    executed = record_one(http, task_id)
    entry = agent.cache.get(task_id)
    assert entry.recording_format == "lance" and executed["dataset_path"] == str(entry.path)
    names = [f["name"] for f in entry.manifest["files"]]
    assert f"{task_id}.json" in names and all(n == f"{task_id}.json" or n.startswith(f"{task_id}.lance/") for n in names)
    assert not any(edge_env.recorder.data_dir.glob(f"{task_id}*")), "moved out of the recorder's directory"
    wait_for(lambda: edge_env.admin.get_task(task_id)["status"] == "EXECUTED", what="EXECUTED in the cloud")
    edge_env.admin.grant_upload(task_id, ttl_seconds=300)
    wait_for(lambda: dataset(edge_env, task_id)["status"] == "STAGED", timeout=30, what="STAGED in the cloud")
    for f in entry.manifest["files"]:
        staged = staged_bytes(edge_env, task_id, f["name"])
        assert hashlib.sha256(staged).hexdigest() == f["sha256"] == hashlib.sha256((entry.entry_dir / f["name"]).read_bytes()).hexdigest()


def test_the_agent_reports_its_recorder_to_the_cloud_when_it_changes(edge_env):
    running = edge_env.start_agent(recorder_report_interval=0.1, recorder_report_heartbeat=3600)
    reporter = running.agent.recorder_reporter

    def reported():
        return {r["robot_id"]: r for r in edge_env.admin.list_robots()}["robot-1"]["recorder"]

    wait_for(lambda: reported() is not None, what="the recorder report in the cloud")
    first = reported()
    assert first["reachable"] is True and first["last_error"] == "" and first["reported_at"]
    sent = reporter.sent
    time.sleep(0.5)  # five ticks, nothing changed: nothing sent
    assert reporter.sent == sent and reported()["reported_at"] == first["reported_at"]
    edge_env.recorder.stop()  # the recorder dies: the next report says so
    wait_for(lambda: reported()["reachable"] is False, timeout=30, what="the unreachable recorder reported")
    assert reported()["error"]


def test_an_old_uplink_measurement_is_reported_as_not_measured(edge_env):
    """The cloud holds uploads back from a robot whose measured uplink is below its minimum, and a
    robot measures only by uploading: an old low figure must expire, or the robot never uploads
    again. Fresh, the figure is reported; past its age, 'not measured' (then granted as a probe)."""
    running = edge_env.start_agent()
    worker = running.agent.uploads

    def reported() -> dict:
        return {r["robot_id"]: r for r in edge_env.admin.list_robots()}[edge_env.robot_id]["uplink"]

    worker.measured_mbps, worker.measured_at, worker._uplink_due = 2.5, time.monotonic(), 0.0
    worker.report_uplink_if_due()
    assert reported()["mbps"] == 2.5

    worker.measured_at, worker._uplink_due = time.monotonic() - worker.measurement_max_age_seconds - 1, 0.0
    worker.report_uplink_if_due()
    assert reported()["mbps"] is None and worker.measured_mbps is None

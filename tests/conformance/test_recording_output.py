"""AXON_V04.md, "Recording output (per task)": what Axon writes to disk, and in which order.

``..._sim``: the simulator writes it so. ``..._client``: our side (edge agent, storage readers,
ingestion) handles it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path

import pytest
from edge_support import wait_for
from mcap.reader import make_reader

from axon_dagster.domain import TaskStatus
from tests.conformance.conftest import assert_taken_from_recorder
from axon_dagster.storage.axon_recording import (
    ChecksumMismatch,
    IncompleteRecording,
    find_recording,
    is_complete,
    read_axon_metadata,
    verify_checksum,
    wait_complete,
)

AXON_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def _summary(path: Path):
    with open(path, "rb") as fh:
        reader = make_reader(fh)
        return reader.get_summary(), list(reader.iter_messages())


def _ready_task(edge_env, agent) -> str:
    (task_id,) = edge_env.dispatch_order()
    wait_for(lambda: any(t.task_id == task_id and t.status is TaskStatus.READY for t in agent.list_tasks()), what="READY")
    return task_id


def _agent(edge_env, **options):
    agent = edge_env.build_agent(**options)
    agent.start()
    edge_env._cleanup.append(agent.stop)
    return agent


# -- one MCAP file, <task_id>.mcap, zstd by default -------------------------------------------


def test_one_mcap_named_after_the_task_zstd_sim(axon):
    path = axon.record("task-7")
    assert path.name == "task-7.mcap" and path.parent == axon.data_dir
    with open(path, "rb") as fh:
        chunks = make_reader(fh).get_summary().chunk_indexes
    assert chunks and {c.compression for c in chunks} == {"zstd"}


def test_one_mcap_named_after_the_task_client(edge_env):
    agent = _agent(edge_env)
    task_id = _ready_task(edge_env, agent)
    agent.teleop(task_id, "start")
    time.sleep(0.2)
    task = agent.teleop(task_id, "stop")
    assert task.status is TaskStatus.EXECUTED
    assert_taken_from_recorder(edge_env, task)


# -- schemas: name = ROS type, ros2msg/ros1msg, EMPTY data; channels cdr/ros1 ------------------


@pytest.mark.parametrize("encoding, schema_enc, channel_enc, type_name", [
    ("ros2", "ros2msg", "cdr", "sensor_msgs/msg/Imu"),
    ("ros1", "ros1msg", "ros1", "sensor_msgs/Imu"),
])
def test_schemas_and_channel_encodings_sim(start_axon, encoding, schema_enc, channel_enc, type_name):
    axon = start_axon(encoding=encoding)
    summary, _messages = _summary(axon.record())
    assert {s.encoding for s in summary.schemas.values()} == {schema_enc}
    assert {c.message_encoding for c in summary.channels.values()} == {channel_enc}
    assert all(s.data == b"" for s in summary.schemas.values()), "schema data is empty by default"
    assert type_name in {s.name for s in summary.schemas.values()}


def test_empty_schemas_are_decoded_by_type_name_client(axon, tmp_path):
    """Our ingestion decodes Axon's empty-schema MCAP with a type store."""
    import lance

    from axon_dagster.ingest import mcap_to_lance

    mcap_path = axon.record(seconds=0.4)
    out = tmp_path / "task-1.lance"
    mcap_to_lance.ingest_mcap(mcap_path, out)
    table = lance.dataset(str(out)).to_table(columns=["topic", "header_stamp_ns", "decode_error"])
    imu = [i for i, t in enumerate(table.column("topic").to_pylist()) if t == "/imu"]
    assert imu and all(table.column("header_stamp_ns")[i].as_py() for i in imu)
    assert not any(table.column("decode_error").to_pylist())


# -- log_time = publish_time; channel metadata axon.source / axon.plugin -----------------------


def test_log_time_equals_publish_time_and_channel_metadata_sim(axon):
    summary, messages = _summary(axon.record())
    assert messages and all(m.log_time == m.publish_time for _s, _c, m in messages)
    assert all(set(c.metadata) >= {"axon.source", "axon.plugin"} for c in summary.channels.values())


# -- axon.* metadata records, present without a sidecar; file_size_bytes patched ---------------


def test_metadata_records_even_without_sidecar_sim(start_axon):
    axon = start_axon(sidecar_mode="none")
    path = axon.record()
    assert not path.with_suffix(".json").exists()
    with open(path, "rb") as fh:
        records = {m.name: m.metadata for m in make_reader(fh).iter_metadata()}
    assert set(records) == {"axon.sidecar", "axon.task", "axon.device", "axon.recording", "axon.topics"}
    assert int(records["axon.recording"]["file_size_bytes"]) == path.stat().st_size, "patched after close"
    assert isinstance(json.loads(records["axon.topics"]["topics_summary"]), list)


def test_metadata_records_without_sidecar_client(edge_env, start_axon):
    """Without a sidecar the recording is still complete (.mcap.done) and its facts readable."""
    axon = start_axon(sidecar_mode="none")
    path = axon.record()
    files = find_recording(axon.data_dir, "task-1")
    assert is_complete(files)
    metadata = read_axon_metadata(path)
    assert metadata["axon.task"]["task_id"] == "task-1"
    digest = verify_checksum(files)  # nothing to compare with: computed
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()


# -- the v1.0 sidecar: .tmp + rename, keys, times, duration (pauses included), checksum, sanitised


def test_sidecar_v1_sim(axon):
    config = {"task_id": "task-s", "device_id": "robot-1", "scene": "warehouse", "factory": "plant-a",
              "operator_name": "ana\x1b[31m", "skills": ["pick"], "order_id": ""}
    assert axon.post("/rpc/config", {"task_config": config}).json()["success"]
    axon.post("/rpc/begin", {"task_id": "task-s"})
    time.sleep(0.2)
    axon.post("/rpc/pause", {})
    time.sleep(0.3)
    axon.post("/rpc/resume", {})
    time.sleep(0.1)
    axon.post("/rpc/finish", {"task_id": "task-s"})
    sidecar = json.loads((axon.data_dir / "task-s.json").read_text())
    assert sidecar["version"] == "1.0" and sidecar["mcap_file"] == "task-s.mcap"
    assert "order_id" not in sidecar["task"] and "subscene" not in sidecar["task"], "empty keys are left out"
    assert sidecar["task"]["operator_name"] == "ana[31m", "control characters stripped"
    assert set(sidecar["device"]) >= {"device_id", "hostname", "ros_distro"}
    rec = sidecar["recording"]
    assert AXON_TIME.fullmatch(rec["recording_started_at"]) and AXON_TIME.fullmatch(rec["recording_finished_at"])
    assert rec["duration_sec"] >= 0.55, "wall time, pauses included"
    assert rec["checksum_sha256"] == hashlib.sha256((axon.data_dir / "task-s.mcap").read_bytes()).hexdigest()
    assert rec["file_size_bytes"] == (axon.data_dir / "task-s.mcap").stat().st_size
    assert [t["topic"] for t in sidecar["topics_summary"]] == rec["topics_recorded"]
    assert all(t["frequency_hz"] == 0.0 for t in sidecar["topics_summary"])
    assert not list(axon.data_dir.glob("*.tmp")), "written to .tmp, then renamed"


def test_checksum_is_verified_before_executed_client(edge_env):
    """A recording whose bytes do not match Axon's checksum is not reported EXECUTED."""
    agent = _agent(edge_env)
    task_id = _ready_task(edge_env, agent)
    edge_env.recorder.sim.set_faults({"truncate": True})  # damaged after Axon hashed it
    agent.teleop(task_id, "start")
    time.sleep(0.2)
    with pytest.raises(Exception, match="not usable"):
        agent.teleop(task_id, "stop")
    task = agent.get_task(task_id)
    assert task.status is TaskStatus.FAILED
    assert "checksum" in task.failure_reason or "not closed" in task.failure_reason


def test_checksum_mismatch_is_named_client(axon):
    path = axon.record()
    before = path.stat()
    with open(path, "r+b") as fh:  # bit rot: same size, same times, other bytes
        fh.seek(100)
        fh.write(b"\x00\x01\x02")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    with pytest.raises(ChecksumMismatch):
        verify_checksum(find_recording(axon.data_dir, "task-1"))


# -- <task_id>.mcap.done contains "done\n", written last ----------------------------------------


def test_done_marker_written_last_sim(axon):
    path = axon.record()
    done = path.with_name(path.name + ".done")
    assert done.read_text() == "done\n"
    assert done.stat().st_mtime_ns >= path.with_suffix(".json").stat().st_mtime_ns >= path.stat().st_mtime_ns


def test_completeness_is_waited_for_client(axon, tmp_path):
    """The agent's reader waits for .mcap.done / sidecar; an unfinished file is not complete."""
    axon.post("/rpc/config", {"task_config": {"task_id": "task-w", "device_id": "robot-1"}})
    axon.post("/rpc/begin", {"task_id": "task-w"})
    files = find_recording(axon.data_dir, "task-w")
    assert files is not None and not is_complete(files), "the file exists from begin on, unfinished"
    with pytest.raises(IncompleteRecording):
        wait_complete(files, timeout_s=0.2, poll_s=0.05)
    axon.post("/rpc/finish", {"task_id": "task-w"})
    assert wait_complete(files, timeout_s=5) is files


# -- re-recording the same task id overwrites ---------------------------------------------------


def test_rerecording_overwrites_sim(axon):
    first = axon.record(seconds=0.1).read_bytes()
    second_path = axon.record(seconds=0.4)
    assert second_path.read_bytes() != first
    sidecar = json.loads(second_path.with_suffix(".json").read_text())
    assert sidecar["recording"]["checksum_sha256"] == hashlib.sha256(second_path.read_bytes()).hexdigest()


def test_stale_markers_of_an_earlier_recording_do_not_count_client(axon):
    path = axon.record()
    old = time.time() - 60
    for marker in (path.with_suffix(".json"), path.with_name(path.name + ".done")):
        os.utime(marker, (old, old))  # markers older than the .mcap: left from an earlier recording
    assert not is_complete(find_recording(axon.data_dir, "task-1"))

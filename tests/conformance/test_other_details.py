"""AXON_V04.md, "Other details": message timestamps vs pauses, counts at finish, frequency_hz."""

from __future__ import annotations

import json
import time

from mcap.reader import make_reader

from axon_dagster.demo.sim.axon_mcap import typestore_for


def _record_with_a_pause(axon, pause_s: float = 0.6):
    axon.post("/rpc/config", {"task_config": {"task_id": "t1", "device_id": "robot-1"}})
    axon.post("/rpc/begin", {"task_id": "t1"})
    time.sleep(0.4)
    axon.post("/rpc/pause", {})
    time.sleep(pause_s)
    axon.post("/rpc/resume", {})
    time.sleep(0.4)
    axon.post("/rpc/finish", {"task_id": "t1"})
    return axon.data_dir / "t1.mcap"


def test_timestamps_are_receive_clock_minus_pause_time_sim(axon):
    path = _record_with_a_pause(axon)
    store = typestore_for("ros2")
    log_times, leads = [], []
    with open(path, "rb") as fh:
        for schema, channel, message in make_reader(fh).iter_messages(log_time_order=True):
            if channel.topic != "/imu":
                continue
            msg = store.deserialize_cdr(message.data, schema.name)
            stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
            log_times.append(message.log_time)
            leads.append(stamp - message.log_time)
    gaps = [b - a for a, b in zip(log_times, log_times[1:])]
    assert max(gaps) < 0.1e9, "log time runs on through the pause (pause time subtracted)"
    assert leads[0] < 0 < leads[-1] and leads[-1] > 0.5e9, "header stamps run ahead by the pause after it"


def test_pause_time_is_accounted_for_client(axon, tmp_path):
    """Our QC reads a paused Axon recording as healthy: header-vs-log skew and the wall time are
    explained by the pause, not flagged."""
    from axon_dagster.inspection.checks import HEADER_STAMP_SKEW, PAUSES_ACCOUNTED
    from axon_dagster.inspection.cli import ingest_for_inspection
    from axon_dagster.inspection.inspector import inspect_recording

    path = _record_with_a_pause(axon)
    dataset = ingest_for_inspection(path, tmp_path)
    report = inspect_recording(dataset, {})
    checks = {c.name: c for c in report.checks}
    assert checks[HEADER_STAMP_SKEW].passed, checks[HEADER_STAMP_SKEW]
    assert checks[PAUSES_ACCOUNTED].passed, checks[PAUSES_ACCOUNTED]


def test_counts_reset_at_finish_and_final_counts_in_the_sidecar_sim(axon):
    path = axon.record(seconds=0.3)
    stats = axon.get("/rpc/stats").json()["data"]
    assert all(c == {"received": 0, "written": 0, "dropped": 0} for c in stats["topic_message_counts"].values())
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sum(t["message_count"] for t in sidecar["topics_summary"]) == sidecar["recording"]["message_count"] > 0


def test_counts_after_finish_client(axon, write_config):
    client = axon.client()
    client.start_recording(write_config("t1"))
    time.sleep(0.2)
    client.stop_recording()
    status = client.get_status()
    assert status.active_topics == [] and status.batch_sizes == [] and not status.is_recording
    assert status.output_path.endswith("t1.mcap"), "the final file is named in stats.metadata"


def test_frequency_hz_is_zero_sim(axon):
    sidecar = json.loads(axon.record().with_suffix(".json").read_text())
    assert {t["frequency_hz"] for t in sidecar["topics_summary"]} == {0.0}

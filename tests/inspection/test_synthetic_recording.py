"""write_recording produces real Lance recordings whose contents, sidecar and faults are as specified."""

from __future__ import annotations

import json
from collections import defaultdict

import lance
import numpy as np
import pytest

from axon_dagster.domain import InvalidIdError
from axon_dagster.demo.sim import synthetic
from axon_dagster.demo.sim.synthetic import DEFAULT_TOPICS, Faults, TopicSpec, default_topics, write_recording
from axon_dagster.storage.digest import DigestMismatch, dataset_digest
from axon_dagster.storage.recording import Sidecar, recording_schema, sidecar_path


def _rows_by_topic(path):
    table = lance.dataset(str(path)).to_table()
    out = defaultdict(list)
    for row in table.to_pylist():
        out[row["topic"]].append(row)
    return table, out


def test_clean_recording_has_every_message_at_its_rate_and_a_matching_sidecar(make_recording, start_ns, duration_s):
    path = make_recording("clean")
    table, by_topic = _rows_by_topic(path)
    sidecar = Sidecar.read(sidecar_path(path))

    assert table.schema == recording_schema()
    assert set(by_topic) == set(DEFAULT_TOPICS)
    for topic, spec in DEFAULT_TOPICS.items():
        rows = by_topic[topic]
        assert len(rows) == int(spec.rate_hz * duration_s)
        assert [r["sequence"] for r in rows] == list(range(len(rows)))
        times = [r["log_time_ns"] for r in rows]
        assert times == sorted(times) and len(set(times)) == len(times)
        assert start_ns <= times[0] and times[-1] < start_ns + duration_s * 1e9
        assert {r["message_type"] for r in rows} == {spec.message_type}
        assert {len(r["payload"]) for r in rows} == {spec.payload_bytes}
        assert sidecar.topics[topic].count == len(rows)
        assert (sidecar.topics[topic].first_ns, sidecar.topics[topic].last_ns) == (times[0], times[-1])
    # Jitter: periods are not all exactly nominal.
    steps = np.diff([r["log_time_ns"] for r in by_topic["/imu"]])
    assert steps.std() > 0
    # Rows are interleaved in arrival order, as a recorder writes them.
    all_times = table["log_time_ns"].to_pylist()
    assert all_times == sorted(all_times)
    # Camera frames differ from frame to frame.
    frames = [r["payload"] for r in by_topic["/camera/image_raw"]]
    assert len(set(frames)) == len(frames)
    assert len({f[16:] for f in frames}) > 1  # not only the header varies

    assert sidecar.task_id == "clean" and sidecar.robot_id == "robot-1"
    assert sidecar.row_count == table.num_rows
    assert sidecar.start_ns == start_ns and sidecar.end_ns == start_ns + int(duration_s * 1e9)
    assert sidecar.dataset_digest == dataset_digest(path)
    sidecar.verify(path)
    assert sidecar.extra["synthetic"] is True


def test_camera_payload_size_is_configurable(make_recording):
    path = make_recording("big", topics=default_topics(camera_payload_bytes=100_000), duration_s=1.0)
    _, by_topic = _rows_by_topic(path)
    assert {len(r["payload"]) for r in by_topic["/camera/image_raw"]} == {100_000}


def test_same_seed_same_content_other_seed_other_content(make_recording):
    def content(path):
        return lance.dataset(str(path)).to_table().to_pylist()

    a = content(make_recording("a", seed=7, faults=Faults(drop_rate=0.2)))
    b = content(make_recording("b", seed=7, faults=Faults(drop_rate=0.2)))
    c = content(make_recording("c", seed=8, faults=Faults(drop_rate=0.2)))
    assert a == b
    assert a != c


def test_drops_leave_sequence_holes(make_recording, duration_s):
    path = make_recording("drops", faults=Faults(drop_rate=0.1))
    _, by_topic = _rows_by_topic(path)
    for topic, spec in DEFAULT_TOPICS.items():
        expected = int(spec.rate_hz * duration_s)
        seqs = [r["sequence"] for r in by_topic[topic]]
        assert 0.8 * expected < len(seqs) < 0.97 * expected
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)  # holes, never repeats
        assert max(seqs) >= expected - 5


def test_gap_is_a_hole_in_every_topic(make_recording, start_ns):
    path = make_recording("gap", faults=Faults(gap_seconds=2.0, gap_at_fraction=0.4))
    _, by_topic = _rows_by_topic(path)
    hole_lo, hole_hi = start_ns + 2.0e9, start_ns + 4.0e9
    for topic in DEFAULT_TOPICS:
        times = np.array([r["log_time_ns"] for r in by_topic[topic]])
        assert not ((times > hole_lo + 0.05e9) & (times < hole_hi - 0.05e9)).any()
        assert np.diff(times).max() >= 1.9e9
        assert (times > hole_hi).any()  # the topic resumes after the stall


def test_missing_frozen_and_backwards_faults(make_recording):
    faults = Faults(missing_topics=("/imu",), frozen_topics=("/camera/image_raw",), clock_backwards_at_fraction=0.5)
    path = make_recording("faulty", faults=faults)
    _, by_topic = _rows_by_topic(path)
    assert set(by_topic) == {"/camera/image_raw", "/joint_states"}
    assert "/imu" not in Sidecar.read(sidecar_path(path)).topics
    assert len({r["payload"] for r in by_topic["/camera/image_raw"]}) == 1
    for topic in by_topic:
        times = np.array([r["log_time_ns"] for r in by_topic[topic]])  # rows of a topic in sequence order
        assert (np.diff(times) < 0).sum() == 1


def test_truncate_leaves_a_dataset_that_cannot_be_read_and_fails_verification(make_recording):
    path = make_recording("truncated", faults=Faults(truncate=True))
    sidecar = Sidecar.read(sidecar_path(path))
    with pytest.raises(Exception, match="Not found"):
        lance.dataset(str(path)).to_table()
    with pytest.raises(DigestMismatch):
        sidecar.verify(path)


def test_refuses_to_overwrite_an_existing_recording(make_recording):
    path = make_recording("once")
    before = dataset_digest(path)
    with pytest.raises(FileExistsError):
        write_recording(path, task_id="once", robot_id="robot-1", start_ns=0, duration_s=1.0)
    assert dataset_digest(path) == before


def test_a_failure_mid_write_leaves_nothing_behind(tmp_path, monkeypatch):
    calls = {"n": 0}
    real_window = synthetic._Generator._window

    def failing_window(self, window):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("disk on fire")
        return real_window(self, window)

    monkeypatch.setattr(synthetic._Generator, "_window", failing_window)
    with pytest.raises(Exception, match="disk on fire"):
        write_recording(tmp_path / "x.lance", task_id="x", robot_id="r", start_ns=0, duration_s=5.0)
    assert calls["n"] == 3
    assert list(tmp_path.iterdir()) == []


def test_rows_are_generated_in_bounded_windows(start_ns):
    gen = synthetic._Generator(DEFAULT_TOPICS, Faults(), start_ns, 3.5, seed=0)
    sizes = [batch.num_rows for batch in gen.batches()]
    per_second = sum(spec.rate_hz for spec in DEFAULT_TOPICS.values())
    assert len(sizes) == 4
    assert sum(sizes) == sum(int(np.ceil(s.rate_hz * 3.5)) for s in DEFAULT_TOPICS.values())
    assert max(sizes) <= per_second


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"duration_s": 0}, ValueError),
        ({"duration_s": float("nan")}, ValueError),
        ({"start_ns": -1}, ValueError),
        ({"task_id": "../escape"}, InvalidIdError),
        ({"robot_id": ""}, InvalidIdError),
        ({"topics": {}}, ValueError),
        ({"topics": {"no_slash": TopicSpec(10.0, "std_msgs/String", 4)}}, ValueError),
        ({"metadata": {"when": object()}}, ValueError),
        ({"faults": {"drop_rate": 0.1}}, ValueError),
    ],
)
def test_bad_arguments_are_refused_and_write_nothing(tmp_path, kwargs, error):
    args = {"task_id": "t", "robot_id": "r", "start_ns": 0, "duration_s": 1.0, **kwargs}
    with pytest.raises(error):
        write_recording(tmp_path / "t.lance", **args)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "bad",
    [
        {"drop_rate": 1.0},
        {"drop_rate": -0.1},
        {"gap_seconds": -1},
        {"gap_at_fraction": 1.5},
        {"missing_topics": "/imu"},
        {"clock_backwards_at_fraction": "half"},
        {"truncate": "yes"},
        {"no_such_fault": 1},
    ],
)
def test_bad_faults_are_refused(bad):
    with pytest.raises(ValueError):
        Faults.from_dict(bad)


def test_faults_round_trip_through_json():
    faults = Faults(drop_rate=0.1, missing_topics=("/imu",), clock_backwards_at_fraction=0.3, truncate=True)
    assert Faults.from_dict(json.loads(json.dumps(faults.to_dict()))) == faults
    assert Faults().any is False and faults.any is True


def test_bad_topic_specs_are_refused():
    with pytest.raises(ValueError):
        TopicSpec(0, "sensor_msgs/Imu", 10)
    with pytest.raises(ValueError):
        TopicSpec(10, "sensor_msgs/Imu", -1)
    with pytest.raises(ValueError):
        TopicSpec(10, "", 10)


def test_topic_specs_for_a_task_config():
    specs = synthetic.topic_specs_for(["/imu", "/gripper/state", "/imu"])
    assert specs == {"/imu": DEFAULT_TOPICS["/imu"], "/gripper/state": synthetic.FALLBACK_TOPIC}
    assert synthetic.topic_specs_for([]) == dict(DEFAULT_TOPICS)

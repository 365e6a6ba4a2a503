"""Reading Axon v0.4's on-disk output: real MCAP files (mcap writer, zstd, empty schemas, axon.*
metadata records), the v1.0 sidecar and ``.mcap.done``; bad input refused with a clear error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from axon_dagster.domain.errors import InvalidIdError
from axon_dagster.storage.axon_recording import (
    AxonRecordingError,
    AxonRecordingFiles,
    AxonSidecar,
    ChecksumMismatch,
    IncompleteRecording,
    SidecarError,
    completeness_problem,
    find_recording,
    format_axon_time,
    is_complete,
    load_sidecar,
    parse_axon_time,
    read_axon_metadata,
    verify_checksum,
    wait_complete,
)
from axon_dagster.storage.digest import DigestMismatch

try:
    from tests.axon_mcap_fixture import write_axon_mcap
except ModuleNotFoundError:
    from axon_mcap_fixture import write_axon_mcap  # type: ignore[no-redef]


def test_find_a_finished_recording_by_task_id_and_read_its_sidecar(tmp_path):
    w = write_axon_mcap(tmp_path, "task-7")
    files = find_recording(tmp_path, "task-7")
    assert files == AxonRecordingFiles(tmp_path / "task-7.mcap", tmp_path / "task-7.json", tmp_path / "task-7.mcap.done")
    assert files.task_id == "task-7"
    assert is_complete(files)
    sc = AxonSidecar.read(files.sidecar_path)
    assert sc.version == "1.0" and sc.mcap_file == "task-7.mcap" and sc.task_id == "task-7"
    assert sc.task.skills == ("pick_place",) and sc.task.subscene == "aisle_1" and sc.device.device_id == "robot-1"
    assert sc.checksum_sha256 == w.checksum_sha256
    assert sc.recording.message_count == len(w.messages)
    assert sc.recording.file_size_bytes == w.mcap_path.stat().st_size
    assert sc.topic_counts()["/imu"] == 200 and sc.topic_counts()["/camera/image_raw"] == 20
    assert sc.recording.started_at_ns < w.messages[0].log_time_ns < w.messages[-1].log_time_ns < sc.recording.finished_at_ns
    assert sc.to_dict() == json.loads(files.sidecar_path.read_text())  # round trip, same shape as Axon's
    assert verify_checksum(files) == w.checksum_sha256
    assert find_recording(tmp_path, "task-8") is None


def test_the_sidecar_path_replaces_the_extension_not_appends_to_it(tmp_path):
    files = AxonRecordingFiles.for_mcap(tmp_path / "t1.mcap")
    assert files.sidecar_path.name == "t1.json" and files.done_path.name == "t1.mcap.done"
    with pytest.raises(ValueError, match="not an MCAP recording path"):
        AxonRecordingFiles.for_mcap(tmp_path / "t1.lance")


@pytest.mark.parametrize("task_id", ["../etc/passwd", "a/b", "..", "", ".hidden", "x\x00y", "a\\b", "a" * 200])
def test_unsafe_task_ids_are_refused_before_touching_the_disk(tmp_path, task_id):
    outside = tmp_path / "etc"
    outside.mkdir()
    (outside / "passwd.mcap").write_bytes(b"secret")
    inner = tmp_path / "out"
    inner.mkdir()
    with pytest.raises(InvalidIdError):
        find_recording(inner, task_id)


def test_the_axon_metadata_records_stand_in_for_a_missing_sidecar(tmp_path):
    w = write_axon_mcap(tmp_path, "nosc", sidecar=False, encoding="ros1")
    files = find_recording(tmp_path, "nosc")
    records = read_axon_metadata(files.mcap_path)
    assert set(records) == {"axon.sidecar", "axon.task", "axon.device", "axon.recording", "axon.topics"}
    assert records["axon.task"]["skills"] == '["pick_place"]'
    assert int(records["axon.recording"]["file_size_bytes"]) == w.mcap_path.stat().st_size  # patched after close
    sc = load_sidecar(files)
    assert sc.source == "mcap-metadata" and sc.checksum_sha256 is None
    assert sc.task.skills == ("pick_place",) and sc.device.ros_distro == "noetic"
    from collections import Counter

    assert sc.topic_counts() == dict(Counter(m.topic for m in w.messages))
    assert sum(sc.topic_counts().values()) == len(w.messages) == sc.recording.message_count
    # complete by .mcap.done alone; without a sidecar the checksum is computed but has nothing to compare with
    assert is_complete(files)
    assert verify_checksum(files) == w.checksum_sha256
    assert verify_checksum(files, expected=w.checksum_sha256.upper()) == w.checksum_sha256
    with pytest.raises(ChecksumMismatch, match="recorder"):
        verify_checksum(files, expected="0" * 64)


def test_a_plain_mcap_without_axon_records_is_named_as_such(tmp_path):
    write_axon_mcap(tmp_path, "plain", sidecar=False, metadata=False)
    with pytest.raises(SidecarError, match="no axon.sidecar, axon.task"):
        load_sidecar(AxonRecordingFiles.for_mcap(tmp_path / "plain.mcap"))


def test_a_wrong_checksum_is_refused_by_name(tmp_path):
    write_axon_mcap(tmp_path, "t", sidecar_edit=lambda d: d["recording"].__setitem__("checksum_sha256", "ab" * 32))
    files = find_recording(tmp_path, "t")
    with pytest.raises(ChecksumMismatch) as err:
        verify_checksum(files)
    assert isinstance(err.value, DigestMismatch) and err.value.expected == "ab" * 32 and err.value.source == "sidecar"


def test_a_modified_mcap_no_longer_matches_its_sidecar(tmp_path):
    w = write_axon_mcap(tmp_path, "t")
    raw = bytearray(w.mcap_path.read_bytes())
    raw[100] ^= 0xFF
    w.mcap_path.write_bytes(bytes(raw))
    os.utime(w.done_path)  # still looks complete: only the checksum can tell
    with pytest.raises(ChecksumMismatch, match="does not match"):
        verify_checksum(find_recording(tmp_path, "t"))


def test_a_sidecar_describing_another_file_is_refused(tmp_path):
    write_axon_mcap(tmp_path, "t", sidecar_edit=lambda d: d.__setitem__("mcap_file", "other.mcap"))
    with pytest.raises(SidecarError, match="describes 'other.mcap'"):
        verify_checksum(find_recording(tmp_path, "t"))


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d.__setitem__("version", "2.0"), "version '2.0' is not supported"),
        (lambda d: d.pop("mcap_file"), "mcap_file is missing"),
        (lambda d: d.__setitem__("mcap_file", "../x.mcap"), "plain '<task_id>.mcap'"),
        (lambda d: d["task"].pop("task_id"), "task.task_id is missing"),
        (lambda d: d["task"].__setitem__("task_id", "../up"), "task.task_id"),
        (lambda d: d["task"].__setitem__("skills", "pick"), "task.skills must be a list of strings"),
        (lambda d: d["recording"].__setitem__("message_count", -1), "recording.message_count must be a non-negative integer"),
        (lambda d: d["recording"].__setitem__("message_count", "12"), "recording.message_count"),
        (lambda d: d["recording"].pop("checksum_sha256"), "checksum_sha256 is missing"),
        (lambda d: d["recording"].__setitem__("checksum_sha256", "xyz"), "is not a hex SHA-256"),
        (lambda d: d["recording"].__setitem__("recording_started_at", "yesterday"), "recording_started_at 'yesterday'"),
        (lambda d: d["recording"].__setitem__("recording_finished_at", "2000-01-01T00:00:00.000Z"), "finished .* before it started"),
        (lambda d: d.__setitem__("topics_summary", {"a": 1}), "topics_summary must be a list"),
        (lambda d: d["topics_summary"].append(dict(d["topics_summary"][0])), "lists a topic twice"),
        (lambda d: d.__setitem__("recording", []), "recording must be an object"),
    ],
)
def test_malformed_sidecars_are_refused_with_the_offending_field(tmp_path, edit, message):
    write_axon_mcap(tmp_path, "t", sidecar_edit=edit)
    with pytest.raises(SidecarError, match=message):
        AxonSidecar.read(tmp_path / "t.json")


def test_unparsable_and_missing_sidecars(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(SidecarError, match="not valid JSON"):
        AxonSidecar.read(tmp_path / "bad.json")
    with pytest.raises(SidecarError, match="file not found"):
        AxonSidecar.read(tmp_path / "none.json")
    with pytest.raises(SidecarError, match=r"\(top level\) must be an object"):
        AxonSidecar.from_dict([1, 2])


def test_an_unfinished_recording_is_not_complete_and_waiting_times_out_with_the_reason(tmp_path):
    w = write_axon_mcap(tmp_path, "t", sidecar=False, done=False)
    files = find_recording(tmp_path, "t")
    assert not is_complete(files)
    assert "neither t.mcap.done nor t.json exists" in completeness_problem(files)
    with pytest.raises(IncompleteRecording, match="not complete.*waited 0.2s"):
        wait_complete(files, timeout_s=0.2, poll_s=0.05)
    with pytest.raises(IncompleteRecording):
        verify_checksum(files)
    # a file still being written has no closing magic, even if a marker says done
    w.mcap_path.write_bytes(w.mcap_path.read_bytes()[:-200])
    (tmp_path / "t.mcap.done").write_text("done\n")
    assert "not closed" in completeness_problem(files)
    with pytest.raises(AxonRecordingError, match="not a readable MCAP"):
        read_axon_metadata(w.mcap_path)


def test_markers_from_an_earlier_recording_of_the_same_task_do_not_count(tmp_path):
    w = write_axon_mcap(tmp_path, "t")
    old = time.time() - 60
    os.utime(w.done_path, (old, old))
    os.utime(w.sidecar_path, (old, old))
    assert "older than the .mcap" in completeness_problem(find_recording(tmp_path, "t"))


def test_wait_complete_returns_once_the_recorder_writes_the_done_marker(tmp_path):
    import threading

    write_axon_mcap(tmp_path, "t", sidecar=False, done=False)
    files = find_recording(tmp_path, "t")
    timer = threading.Timer(0.3, lambda: files.done_path.write_text("done\n"))
    timer.start()
    t0 = time.monotonic()
    assert wait_complete(files, timeout_s=10, poll_s=0.05) is files
    assert 0.2 < time.monotonic() - t0 < 5
    timer.join()


def test_axon_times_round_trip():
    ns = parse_axon_time("2026-06-01T12:34:56.789Z")
    assert format_axon_time(ns) == "2026-06-01T12:34:56.789Z"
    assert ns % 1_000_000_000 == 789_000_000
    with pytest.raises(ValueError):
        parse_axon_time("2026-06-01 12:34:56")


def test_the_reader_module_imports_nothing_heavy():
    """The edge agent uses it on the robot: stdlib + mcap only, and mcap only when metadata is read."""
    code = (
        "import sys, axon_dagster.storage.axon_recording as a; "
        "print(sorted(m for m in ('pyarrow', 'lance', 'daft', 'dagster', 'ray', 'mcap', 'numpy', 'rosbags') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

"""The recording jobs' asset metadata for an Axon MCAP recording (simulator's writer, real files)."""

from __future__ import annotations

import pytest

from axon_dagster.defs.recording import lance_dataset_metadata
from axon_dagster.demo.sim.axon_mcap import write_axon_recording
from axon_dagster.storage.axon_recording import ChecksumMismatch, IncompleteRecording
from axon_dagster.storage.recording import sidecar_path


def _record(tmp_path, **kwargs):
    return write_axon_recording(tmp_path, task_config={"task_id": "t-1", "scene": "lab", "skills": ["wave"]},
                                device_id="robot-9", started_at_ns=1_780_000_000_000_000_000, duration_s=1.0, **kwargs)


def test_an_mcap_recording_is_described_from_axons_sidecar(tmp_path):
    rec = _record(tmp_path)
    assert sidecar_path(rec.mcap_path) == rec.sidecar_path  # x.json, not x.mcap.json
    meta = lance_dataset_metadata(rec.mcap_path)
    assert meta["recording_format"] == "mcap" and meta["task_id"] == "t-1" and meta["robot_id"] == "robot-9"
    assert meta["row_count"] == rec.message_count and meta["axon_checksum_sha256"] == rec.checksum_sha256 == meta["mcap_sha256"]
    assert meta["topics"].data == sorted(t["topic"] for t in rec.topics_summary)


def test_a_damaged_or_unfinished_mcap_is_refused(tmp_path):
    rec = _record(tmp_path / "a")
    raw = bytearray(rec.mcap_path.read_bytes())
    raw[len(raw) // 2] ^= 1
    rec.mcap_path.write_bytes(bytes(raw))
    rec.done_path.touch()
    with pytest.raises(ChecksumMismatch):
        lance_dataset_metadata(rec.mcap_path)
    rec = _record(tmp_path / "b", sidecar_mode="none")
    rec.done_path.unlink()
    with pytest.raises(IncompleteRecording):
        lance_dataset_metadata(rec.mcap_path)

"""``axon-dagster inspect`` (axon_dagster.inspection.cli), run as a real process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from axon_dagster.inspection.checks import CHECK_NAMES
from axon_dagster.inspection.cli import main
from axon_dagster.demo.sim.synthetic import Faults


def inspect(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "axon_dagster.inspection.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def test_approved_recording_prints_a_table_and_exits_0(make_recording):
    path = make_recording("clean")
    done = inspect(path)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert f"QC report: {path}" in out
    for name in CHECK_NAMES:
        assert name in out
    assert "FAIL" not in out and "score 1.000 -> approved" in out
    assert "/camera/image_raw" in out and "per topic" in out
    assert "inspected" in done.stderr  # progress is logged on stderr


def test_needs_review_as_json_exits_1(make_recording):
    path = make_recording("frozen", faults=Faults(frozen_topics=("/camera/image_raw",)))
    done = inspect(path, "--json", "--quiet")
    assert done.returncode == 1, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["outcome"] == "needs_review" and 0.6 <= report["score"] < 0.9
    assert [c["name"] for c in report["checks"]] == list(CHECK_NAMES)
    frozen = next(c for c in report["checks"] if c["name"] == "frozen_streams")
    assert frozen["passed"] is False and frozen["value"] > 4.5 and frozen["threshold"] == 1.0
    assert all({"name", "passed", "value", "threshold", "weight", "detail"} <= set(c) for c in report["checks"])
    assert done.stderr == ""  # --quiet: no progress lines


def test_rejected_by_requirements_from_yaml_exits_2(make_recording, tmp_path, capsys):
    """In-process (main(argv) is what `axon-dagster inspect` calls); each process start costs seconds."""
    path = make_recording("no-imu", faults=Faults(missing_topics=("/imu",)))
    req = tmp_path / "req.yaml"
    req.write_text("required_topics:\n  - /imu\n  - /joint_states\nmax_gap_seconds: 0.5\n")
    assert main(["inspect", str(path), "--requirements", str(req)]) == 2
    out = capsys.readouterr().out
    assert "missing /imu" in out and "[/imu, /joint_states]" in out and "rejected" in out


@pytest.mark.parametrize("content, suffix, message", [
    ('{"colour": "red"}', ".json", "unknown requirement key(s): colour"),
    ("[1, 2]", ".yaml", "must hold a mapping"),
    ("{not json", ".json", "not valid JSON"),
    (None, ".yaml", "cannot read requirements file"),
])
def test_bad_requirements_file_exits_3_before_inspecting(make_recording, tmp_path, content, suffix, message):
    path = make_recording("r")
    req = tmp_path / f"req{suffix}"
    if content is not None:
        req.write_text(content)
    done = inspect(path, "--requirements", req)
    assert done.returncode == 3
    assert message in done.stderr and "inspecting" not in done.stderr
    assert done.stdout == ""


def test_what_cannot_be_inspected_exits_3(tmp_path):
    done = inspect(tmp_path / "nowhere.lance", "--json")
    assert done.returncode == 3
    assert json.loads(done.stdout) == {"dataset_path": str(tmp_path / "nowhere.lance"), "outcome": None,
                                       "error": f"cannot inspect {tmp_path / 'nowhere.lance'}: dataset directory not found"}
    usage = inspect("--runner", "spark", tmp_path)
    assert usage.returncode == 3 and "invalid choice: 'spark'" in usage.stderr


def test_unreachable_ray_exits_3_quickly(make_recording):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = inspect(make_recording("r"), "--runner", "ray", "--ray-address", f"127.0.0.1:{port}", timeout=60)
    assert done.returncode == 3
    assert f"Ray cluster unreachable at 127.0.0.1:{port}" in done.stderr


# ------------------------------------------------------------------------------ MCAP recordings

def _axon_mcap(tmp_path, name="rec", **kwargs):
    from axon_dagster.demo.sim.axon_mcap import write_axon_recording

    return write_axon_recording(tmp_path / "robot", task_config={"task_id": name, "scene": "warehouse", "skills": ["pick"]},
                                device_id="robot-1", started_at_ns=1_780_000_000_000_000_000, duration_s=3.0, seed=1, **kwargs)


def test_an_mcap_is_ingested_to_a_temporary_lance_dataset_then_inspected(tmp_path):
    rec = _axon_mcap(tmp_path, pauses=((1.0, 0.5),))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    done = subprocess.run([sys.executable, "-m", "axon_dagster.inspection.cli", str(rec.mcap_path), "--json"],
                          capture_output=True, text=True, timeout=180, env={**os.environ, "TMPDIR": str(scratch)})
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["outcome"] == "approved" and report["dataset_path"] == str(rec.mcap_path)
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["nonfinite_values"]["weight"] == 1 and checks["header_stamp_skew"]["passed"]
    assert "matches the sidecar" in checks["sidecar_consistency"]["detail"]
    assert report["row_count"] == rec.message_count
    assert "ingested rec.mcap" in done.stderr  # ingestion progress on stderr
    assert list(scratch.iterdir()) == []  # the temporary dataset is gone


def test_an_mcap_with_a_content_fault_needs_review(tmp_path, capsys):
    rec = _axon_mcap(tmp_path, faults=Faults(nan_topics=("/imu",)))
    assert main(["inspect", str(rec.mcap_path), "--json", "--quiet"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert {c["name"] for c in report["checks"] if not c["passed"]} == {"nonfinite_values"}


def test_an_mcap_changed_after_recording_is_rejected(tmp_path, capsys):
    rec = _axon_mcap(tmp_path, compression="none")
    raw = bytearray(rec.mcap_path.read_bytes())
    at = len(raw) // 3
    raw[at] ^= 0x01  # one bit in a message body: still readable, no longer what Axon hashed
    rec.mcap_path.write_bytes(bytes(raw))
    assert main(["inspect", str(rec.mcap_path), "--json", "--quiet"]) == 2
    report = json.loads(capsys.readouterr().out)
    check = next(c for c in report["checks"] if c["name"] == "sidecar_consistency")
    assert not check["passed"] and "rec.mcap SHA-256" in check["detail"] and "Axon's checksum" in check["detail"]


def test_a_truncated_mcap_is_rejected_and_a_missing_one_could_not_be_inspected(tmp_path, capsys):
    rec = _axon_mcap(tmp_path)
    rec.mcap_path.write_bytes(rec.mcap_path.read_bytes()[:1000])
    assert main(["inspect", str(rec.mcap_path), "--quiet"]) == 2  # the bytes are there and bad: a verdict
    assert "not a readable MCAP" in capsys.readouterr().out
    assert main(["inspect", str(tmp_path / "none.mcap"), "--quiet"]) == 3
    assert "MCAP file not found" in capsys.readouterr().err

"""The whole product, end to end, the way a newcomer runs it: `axon-dagster demo`."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from axon_dagster.storage.digest import dataset_digest, file_sha256
from axon_dagster.storage.recording import Sidecar

pytestmark = pytest.mark.slow


def test_demo_uploads_every_task_with_a_verified_cloud_copy(tmp_path):
    out = tmp_path / "demo.json"
    proc = subprocess.run(
        [sys.executable, "-m", "axon_dagster.cli", "demo", "--robots", "2", "--tasks-per-skill", "2",
         "--duration", "2", "--workdir", str(tmp_path / "work"), "--json", str(out)],
        capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    tasks = json.loads(out.read_text())["tasks"]
    assert len(tasks) == 4
    assert {t["robot_id"] for t in tasks} == {"robot-1", "robot-2"}
    assert len({t["batch_id"] for t in tasks}) == 2
    cloud_root = tmp_path / "work" / "cloud" / "lake"
    for task in tasks:
        assert task["status"] == "UPLOADED" and task["approved"] is True and task["qc_score"] >= 0.9
        # Independently of the product's own verification: hash the cloud copy on disk.
        cloud_dir = Path(task["cloud_path"].removeprefix("file://"))
        assert cloud_dir.is_relative_to(cloud_root) and cloud_dir.name.endswith(".lance")
        assert cloud_dir.relative_to(cloud_root).parts[:2] == ("warehouse", "aisle_1")
        sidecar = Sidecar.read(cloud_dir.with_suffix(".json"))
        assert dataset_digest(cloud_dir) == sidecar.dataset_digest == task["dataset_digest"]
        assert sidecar.task_id == task["task_id"]
        stem = cloud_dir.name[: -len(".lance")]
        assert cloud_dir.with_name(stem + ".qc.json").exists()
        # The demo records MCAP (Axon v0.4): the cloud copy is Lance with decoded columns, and
        # the original MCAP (whose SHA-256 is Axon's checksum in its sidecar) sits beside it.
        original = cloud_dir.with_name(stem + ".mcap")
        axon_sidecar = json.loads(cloud_dir.with_name(stem + ".axon.json").read_text())
        assert file_sha256(original) == axon_sidecar["recording"]["checksum_sha256"]
        assert axon_sidecar["task"]["task_id"] == task["task_id"]
        import lance

        columns = set(lance.dataset(str(cloud_dir)).schema.names)
        assert {"topic", "log_time_ns", "payload", "header_stamp_ns"} <= columns

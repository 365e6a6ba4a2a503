"""The whole product, end to end, the way a newcomer runs it: `axon-dagster demo`."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from axon_dagster.storage.digest import dataset_digest
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
    cloud_root = tmp_path / "work" / "cloud"
    for task in tasks:
        assert task["status"] == "UPLOADED" and task["approved"] is True and task["qc_score"] >= 0.9
        # Independently of the product's own verification: hash the cloud copy on disk.
        cloud_dir = Path(task["cloud_path"].removeprefix("file://"))
        assert cloud_dir.is_relative_to(cloud_root) and cloud_dir.name.endswith(".lance")
        assert cloud_dir.relative_to(cloud_root).parts[:2] == ("warehouse", "aisle_1")
        sidecar = Sidecar.read(cloud_dir.with_suffix(".json"))
        assert dataset_digest(cloud_dir) == sidecar.dataset_digest == task["dataset_digest"]
        assert sidecar.task_id == task["task_id"]
        assert cloud_dir.with_name(cloud_dir.name[: -len(".lance")] + ".qc.json").exists()

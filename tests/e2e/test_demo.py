"""The whole product, end to end, the way a newcomer runs it: `axon-dagster demo`."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from demo_checks import CAN_ISOLATE, check_isolation, check_published

from axon_dagster.demo import isolation

pytestmark = pytest.mark.slow


def test_demo_uploads_every_task_with_a_verified_cloud_copy(demo_workdir, tmp_path):
    out = tmp_path / "demo.json"
    proc = subprocess.run(
        [sys.executable, "-m", "axon_dagster.cli", "demo", "--robots", "2", "--tasks-per-skill", "2",
         "--duration", "2", "--workdir", str(demo_workdir), "--json", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    result = json.loads(out.read_text())
    tasks = result["tasks"]
    assert len(tasks) == 4
    assert {t["robot_id"] for t in tasks} == {"robot-1", "robot-2"}
    assert len({t["batch_id"] for t in tasks}) == 2
    # as root (CI): each robot its own OS user with a 0700 directory, the cloud another, unable to read them
    check_isolation(result["isolation"], ["robot-1", "robot-2"])
    assert "isolation: " in proc.stdout
    for task in tasks:
        assert task["robot_user"] == (isolation.robot_user(task["robot_id"]) if CAN_ISOLATE else result["isolation"]["cloud_user"])
    lake = demo_workdir / "cloud" / "lake"
    check_published(tasks, lake)
    for task in tasks:
        cloud_dir = Path(task["cloud_path"].removeprefix("file://"))
        import lance

        columns = set(lance.dataset(str(cloud_dir)).schema.names)
        assert {"topic", "log_time_ns", "payload", "header_stamp_ns"} <= columns

"""Checks the end-to-end tests share: every task UPLOADED with a verified published copy, and, where
the demo can make users, robots and cloud as separate OS users that cannot read each other."""

from __future__ import annotations

import json
from pathlib import Path

from axon_dagster.demo import isolation
from axon_dagster.storage.digest import dataset_digest, file_sha256
from axon_dagster.storage.recording import Sidecar

CAN_ISOLATE = isolation.why_not_isolated() is None


def check_published(tasks: list[dict], lake: Path) -> None:
    """Independently of the product's own verification: hash every published copy on disk."""
    for task in tasks:
        assert task["status"] == "UPLOADED" and task["approved"] is True and task["digest_verified"] is True, task
        cloud_dir = Path(task["cloud_path"].removeprefix("file://"))
        assert cloud_dir.is_relative_to(lake) and cloud_dir.name.endswith(".lance")
        assert cloud_dir.relative_to(lake).parts[:2] == ("warehouse", "aisle_1")
        sidecar = Sidecar.read(cloud_dir.with_suffix(".json"))
        assert dataset_digest(cloud_dir) == sidecar.dataset_digest == task["dataset_digest"]
        assert sidecar.task_id == task["task_id"]
        stem = cloud_dir.name[: -len(".lance")]
        # The demo records MCAP (Axon v0.4): the original (whose SHA-256 is Axon's checksum in its
        # sidecar) sits beside the Lance dataset, with the QC report.
        assert cloud_dir.with_name(stem + ".qc.json").exists()
        axon_sidecar = json.loads(cloud_dir.with_name(stem + ".axon.json").read_text())
        assert file_sha256(cloud_dir.with_name(stem + ".mcap")) == axon_sidecar["recording"]["checksum_sha256"]
        assert axon_sidecar["task"]["task_id"] == task["task_id"]
    # nothing of the robots' uploads is left in staging once published
    staging = lake / "staging"
    assert not staging.exists() or not [p for p in staging.rglob("*") if p.is_file()]


def check_isolation(report: dict, robots: list[str], transport: str = "http") -> None:
    """The demo's --json `isolation`: who ran what (read from /proc while it ran) and what the
    cloud's user got when it tried to read each robot's directory."""
    if not CAN_ISOLATE:
        assert report["enabled"] is False and report["reason"].startswith("no isolation: ")
        return
    assert report["enabled"] is True
    assert report["cloud_user"] == "axon-cloud"
    assert report["cloud"]["processes"] == {"control-plane": "axon-cloud", "dagster": "axon-cloud"}
    assert sorted(report["robots"]) == sorted(robots)
    for robot_id in robots:
        entry = report["robots"][robot_id]
        user = isolation.robot_user(robot_id)
        assert entry["user"] == user and report["robot_users"][robot_id] == user and entry["isolated"] is True
        expected = {"recorder", "edge_agent"} | ({"rosmaster"} if transport == "ros1" else set())
        assert set(entry["processes"]) == expected and set(entry["processes"].values()) == {user}, entry
        assert entry["data_dir_mode"] == "0700"
        assert len(entry["cloud_read_attempt"]) == 2
        assert all(outcome.startswith("denied") for outcome in entry["cloud_read_attempt"].values()), entry

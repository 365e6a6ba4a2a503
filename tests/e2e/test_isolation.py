"""The demo's robots and cloud as separate OS users (axon_dagster.demo.isolation): as root, each
robot's processes run as its own user with a 0700 directory and the cloud's as axon-cloud, and the
cloud's user really cannot read a robot's directory (tried, not assumed); where users cannot be
made, the demo says why and runs as the invoking user."""

import json
import os
import pwd
from pathlib import Path

import pytest

from axon_dagster.demo import isolation
from axon_dagster.demo.fleet import SimulatedFleet
from axon_dagster.demo.isolation import IsolationUnavailable, try_to_read, uid_of

can_isolate = isolation.why_not_isolated() is None
needs_root = pytest.mark.skipif(not can_isolate, reason=f"isolation needs root with useradd: {isolation.why_not_isolated()}")


@pytest.fixture
def workdir(demo_workdir):
    return demo_workdir


def test_not_root_runs_without_isolation_and_says_why(monkeypatch, tmp_path):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    plan = isolation.plan("auto", ["robot-1"], tmp_path)
    assert not plan.enabled and plan.robots == {}
    assert "not root (uid 1000)" in plan.reason and "every process runs as" in plan.reason
    assert plan.robot("robot-1").isolated is False and plan.robot("robot-1").popen_kwargs() == {}
    with pytest.raises(IsolationUnavailable, match="--isolation on: not root"):
        isolation.plan("on", ["robot-1"], tmp_path)


def test_no_useradd_runs_without_isolation_and_says_why(monkeypatch, tmp_path):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(isolation.shutil, "which", lambda name: None)
    plan = isolation.plan("auto", ["robot-1"], tmp_path)
    assert not plan.enabled and "useradd is not installed" in plan.reason


def test_bad_mode_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown isolation mode 'maybe'"):
        isolation.plan("maybe", ["robot-1"], tmp_path)


def test_robot_user_names():
    assert isolation.robot_user("robot-1") == "axon-robot-1"
    assert isolation.robot_user("arm-7") == "axon-robot-arm-7"


@needs_root
def test_each_robot_and_the_cloud_run_as_their_own_users_and_the_cloud_cannot_read_a_robot(workdir):
    with SimulatedFleet(workdir, robots=2, isolation="on") as fleet:
        assert fleet.plan.enabled
        cloud = pwd.getpwnam("axon-cloud")
        assert fleet.cloud_ran_as["control-plane"] == "axon-cloud"
        assert (fleet.cloud_dir.stat().st_uid, fleet.cloud_dir.stat().st_mode & 0o777) == (cloud.pw_uid, 0o700)
        for robot in fleet.robot_processes:
            user = pwd.getpwnam(f"axon-{robot.robot_id}")
            # what /proc says now, not what we meant to start
            assert {uid_of(p.pid) for p in robot.processes} == {user.pw_uid}
            assert (robot.data_dir.stat().st_uid, robot.data_dir.stat().st_mode & 0o777) == (user.pw_uid, 0o700)
            environ = Path(f"/proc/{robot.processes[-1].pid}/environ").read_bytes().decode()
            assert "AXON_ROBOT_TOKEN=" in environ
            assert "AXON_ADMIN_TOKEN=" not in environ and "AXON_DATABASE_URL=" not in environ
        # the robots' agents have written their databases by now: real files to try
        robot_1, robot_2 = fleet.robot_processes
        files = [p for p in (robot_1.data_dir / "edge").rglob("*") if p.is_file()]
        assert files, "the edge agent wrote nothing under its data dir"
        targets = [robot_1.data_dir, robot_1.recordings_dir, robot_1.data_dir / "edge", files[0]]
        tried = try_to_read(fleet.plan.cloud, targets)
        assert all(outcome.startswith("denied") for outcome in tried.values()), tried
        # robots cannot read each other either
        tried = try_to_read(fleet.plan.robot("robot-2"), [robot_1.data_dir, files[0]])
        assert all(outcome.startswith("denied") for outcome in tried.values()), tried
        # ... while a robot reads its own (the probe can succeed: it is not denying everything)
        assert set(try_to_read(fleet.plan.robot("robot-1"), [files[0]]).values()) == {"read"}
        report = fleet.isolation_report()
    json.dumps(report)  # what --json carries
    assert report["enabled"] and report["cloud"]["user"] == "axon-cloud"
    for robot_id in ("robot-1", "robot-2"):
        entry = report["robots"][robot_id]
        assert entry["user"] == f"axon-{robot_id}" and entry["data_dir_mode"] == "0700"
        assert set(entry["processes"].values()) == {f"axon-{robot_id}"}
        assert entry["cloud_read_attempt"] and all(v.startswith("denied") for v in entry["cloud_read_attempt"].values())

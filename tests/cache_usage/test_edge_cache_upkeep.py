"""The robot keeps its own edge cache (issue 13: robots and the cloud share no disk): the edge agent
applies retention and eviction on a timer and after each release, and reports its cache's usage to
the control plane itself. Real parts throughout: an ``axon-edge run`` process or an agent in this
process, a real control plane over HTTP, a real cache on disk."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from axon_dagster.client import ControlPlaneClient, EdgeSyncClient
from axon_dagster.domain import TaskStatus
from axon_dagster.storage.edge_cache import CacheState, EdgeCache
from axon_edge.cache_upkeep import CacheUpkeep, usage_key
from axon_edge.settings import DataPathSettings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "edge"))  # the edge suite's real servers, reused
from edge_support import ADMIN_TOKEN, edge_environment, migrated_template_db, wait_for  # noqa: E402


@pytest.fixture(scope="module")
def _migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return migrated_template_db(tmp_path_factory.mktemp("cache-upkeep-template"))


@pytest.fixture
def edge_env(tmp_path: Path, _migrated_db: Path):
    with edge_environment(tmp_path, _migrated_db, "cache upkeep robot") as env:
        yield env


def samples(url: str) -> dict[tuple[str, tuple], float]:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in text_string_to_metric_families(text) for s in f.samples}


def reported(env) -> dict | None:
    with ControlPlaneClient(env.control_plane.url, token=ADMIN_TOKEN) as admin:  # no pooled connection idle past keep-alive
        return next((c for c in admin.list_cache_usage() if c["robot_id"] == env.robot_id), None)


def test_a_running_agent_applies_retention_and_its_usage_appears_in_the_control_plane(edge_env, stage):
    """``axon-edge run`` with AXON_EDGE_CACHE_RETENTION_DAYS=2: of the recordings already in its
    cache, only those published or rejected more than 2 days ago go; the control plane shows what is
    left under the robot's id, and so do the agent's own gauges."""
    cache = EdgeCache(edge_env.data_dir / "cache")  # where the agent keeps it (<data dir>/cache)
    stage(cache, "old-published", 10_000, state="published", age_days=5)
    stage(cache, "old-rejected", 10_000, state="rejected", age_days=5)
    stage(cache, "new-published", 20_000, state="published", age_days=1)
    stage(cache, "new-rejected", 20_000, state="rejected")
    stage(cache, "old-pending", 30_000, age_days=30)  # never published: retention never touches it
    kept = {e.dataset_id: e.size_bytes for e in cache.list() if e.dataset_id in ("new-published", "new-rejected", "old-pending")}

    agent = edge_env.agent_process(extra_env={
        "AXON_EDGE_CACHE_RETENTION_DAYS": "2", "AXON_EDGE_CACHE_MAX_GB": "1", "AXON_EDGE_CACHE_REPORT_SECONDS": "0.5",
    })
    usage = wait_for(lambda: reported(edge_env), timeout=20, what="the agent's cache usage in the control plane")
    assert usage["cache_id"] == "robot-1"
    assert usage["datasets"] == {
        "cached": {"count": 1, "bytes": kept["old-pending"]},
        "uploaded": {"count": 1, "bytes": kept["new-published"]},
        "rejected": {"count": 1, "bytes": kept["new-rejected"]},
    }
    assert usage["used_bytes"] == sum(kept.values()) and usage["quota_bytes"] == 1_000_000_000 and usage["pressure"] is False
    assert usage["report"]["retention_days"] == 2 and usage["report"]["pending_upload_bytes"] == kept["old-pending"]
    assert {e.dataset_id for e in cache.list()} == set(kept)
    datasets = edge_env.data_dir / "cache" / "datasets"
    assert sorted(p.name for p in datasets.iterdir()) == sorted(kept)

    robot = (("robot_id", "robot-1"),)
    s = samples(agent.url)
    assert s[("axon_edge_cache_used_bytes", robot)] == usage["used_bytes"]
    assert s[("axon_edge_cache_quota_bytes", robot)] == 1_000_000_000
    assert s[("axon_edge_cache_removed_total", (("reason", "retention"), ("robot_id", "robot-1")))] == 2
    assert s[("axon_edge_cache_usage_reports_total", (("outcome", "sent"), ("robot_id", "robot-1")))] >= 1
    status = httpx.get(f"{agent.url}/status", timeout=5).json()
    assert sorted(status["edge_cache_upkeep"]["last_upkeep"]["retained"]) == ["old-published", "old-rejected"]
    cloud = samples(edge_env.control_plane.url)
    assert cloud[("axon_edge_cache_used_bytes", robot)] == usage["used_bytes"]
    log = agent.log()
    assert "edge cache upkeep: retention (2 days) removed 2 recording(s)" in log and "edge cache usage reported" in log
    assert agent.terminate() == 0


def test_a_release_is_followed_by_upkeep_and_a_report_at_once(edge_env, stage):
    """Reports are spaced by report_seconds (60 here); the cloud letting a recording go (its task
    UPLOADED) runs the upkeep and reports straight away."""
    settings = DataPathSettings(cache_max_gb=0.00005, cache_report_seconds=60, cache_report_heartbeat_seconds=600)  # quota 50 kB
    running = edge_env.start_agent(data_path=settings)
    agent = running.agent
    wait_for(lambda: reported(edge_env), timeout=20, what="the first report")
    stage(agent.cache, "t-1", 40_000)
    stage(agent.cache, "t-2", 40_000)  # over quota now, nothing evictable: kept
    assert reported(edge_env)["datasets"]["cached"]["count"] == 0  # not due for a minute
    agent._release_cached("t-1", TaskStatus.UPLOADED)  # what a pull of the task's cloud move does
    usage = wait_for(lambda: (r := reported(edge_env)) and r["datasets"]["cached"]["count"] == 1 and r, timeout=10,
                     what="the report after the release")
    assert usage["datasets"]["uploaded"]["count"] == 0, "published and over quota: evicted"
    assert usage["pressure"] is False and [e.dataset_id for e in agent.cache.list()] == ["t-2"]


def test_a_robot_offline_reports_its_usage_once_the_control_plane_is_back(edge_env, stage):
    settings = DataPathSettings(cache_report_seconds=0.3, cache_report_heartbeat_seconds=600)
    running = edge_env.start_agent(data_path=settings)
    agent = running.agent
    wait_for(lambda: reported(edge_env), timeout=20, what="the first report")
    edge_env.control_plane.stop()
    stage(agent.cache, "while-offline", 5_000)
    wait_for(lambda: agent.cache_upkeep.reporter.last_error, timeout=10, what="a failed report while the control plane is down")
    edge_env.control_plane.start()  # the same port, the same database
    usage = wait_for(lambda: (r := reported(edge_env)) and r["datasets"]["cached"]["count"] == 1 and r, timeout=20,
                     what="the report once the control plane is back")
    assert usage["used_bytes"] == agent.cache.usage().used_bytes and agent.cache_upkeep.reporter.last_error is None


def test_reports_go_when_the_usage_changed_at_most_every_interval_and_with_a_heartbeat(sqlite_control_plane, tmp_path, stage):
    now = [1000.0]
    cache = EdgeCache(tmp_path / "cache", max_size_gb=0.00005, retention_days=1)  # quota 50 kB
    with sqlite_control_plane.robot("robot-1") as client:
        upkeep = CacheUpkeep(cache, client, "robot-1", upkeep_seconds=3600, report_seconds=30, heartbeat_seconds=300,
                             clock=lambda: now[0])
        upkeep.tick()  # the first tick: upkeep and a report
        assert upkeep.reporter.sent == 1
        first = sqlite_control_plane.list_cache_usage()[0]
        now[0] += 30
        upkeep.tick()  # unchanged (reported_at and the disk's free space do not count): nothing sent
        assert upkeep.reporter.sent == 1 and sqlite_control_plane.list_cache_usage()[0]["reported_at"] == first["reported_at"]
        stage(cache, "pending-1", 60_000)  # over quota on its own, never evictable
        stage(cache, "old-published", 1_000, state="published", age_days=3)
        upkeep.tick()  # changed: sent; the upkeep is not due yet, so the old one is still there
        assert upkeep.reporter.sent == 2
        stored = sqlite_control_plane.list_cache_usage()[0]
        assert stored["pressure"] is True and stored["datasets"]["uploaded"]["count"] == 1
        now[0] += 3600
        upkeep.tick()  # the upkeep is due: retention drops the old published one, the pending one stays
        assert upkeep.last_upkeep.retained == ["old-published"] and upkeep.last_upkeep.evicted == []
        assert upkeep.last_upkeep.pressure is True and {e.dataset_id for e in cache.list()} == {"pending-1"}
        assert cache.list()[0].state is CacheState.CACHED
        assert upkeep.reporter.sent == 3
        now[0] += 299
        upkeep.tick()
        assert upkeep.reporter.sent == 3
        now[0] += 1
        upkeep.tick()  # the heartbeat
        assert upkeep.reporter.sent == 4
        stored = sqlite_control_plane.list_cache_usage()[0]
        assert stored["datasets"]["uploaded"]["count"] == 0 and stored["pressure"] is True


def test_an_unreachable_control_plane_is_tried_again_and_a_refusal_changes_nothing(sqlite_control_plane, tmp_path, stage):
    cache = EdgeCache(tmp_path / "cache")
    stage(cache, "p", 1_000)
    with EdgeSyncClient("http://127.0.0.1:9", "t") as down:  # nothing listens on the discard port
        upkeep = CacheUpkeep(cache, down, "robot-1", report_seconds=1, heartbeat_seconds=10)
        upkeep.tick()
        assert upkeep.reporter.sent == 0 and upkeep.reporter.last_error
    upkeep._client = sqlite_control_plane.robot("robot-1")  # the link is back: the next tick sends
    upkeep.tick()
    assert upkeep.reporter.sent == 1 and upkeep.reporter.last_error is None
    assert [c["robot_id"] for c in sqlite_control_plane.list_cache_usage()] == ["robot-1"]

    class Tampered:  # a report the control plane must refuse (422): logged, the cloud's copy kept
        def report_cache_usage(self, usage):
            return upkeep_client.report_cache_usage({**usage, "used_bytes": -1})

    upkeep_client = upkeep._client
    stage(cache, "q", 1_000)
    before = sqlite_control_plane.list_cache_usage()
    upkeep._client = Tampered()
    upkeep.tick()
    assert upkeep.reporter.sent == 1 and "422" in upkeep.reporter.last_error
    assert sqlite_control_plane.list_cache_usage() == before
    upkeep_client.close()


def test_usage_key_ignores_only_the_clock_and_the_disk():
    a = {"used_bytes": 1, "reported_at": "x", "filesystem": {"free_bytes": 1}, "datasets": {}}
    assert usage_key(a) == usage_key({**a, "reported_at": "y", "filesystem": {"free_bytes": 2}})
    assert usage_key(a) != usage_key({**a, "used_bytes": 2})


# ------------------------------------------------------------------ settings

def test_the_cache_upkeep_settings_come_from_the_environment():
    s = DataPathSettings.from_env({
        "AXON_EDGE_CACHE_RETENTION_DAYS": "7.5", "AXON_EDGE_CACHE_UPKEEP_SECONDS": "600",
        "AXON_EDGE_CACHE_REPORT_SECONDS": "10", "AXON_EDGE_CACHE_REPORT_HEARTBEAT_SECONDS": "120",
    })
    assert (s.cache_retention_days, s.cache_upkeep_seconds, s.cache_report_seconds, s.cache_report_heartbeat_seconds) == (7.5, 600, 10, 120)
    d = DataPathSettings.from_env({})
    assert (d.cache_retention_days, d.cache_upkeep_seconds, d.cache_report_seconds, d.cache_report_heartbeat_seconds) == (None, 3600, 30, 300)


@pytest.mark.parametrize("env, message", [
    ({"AXON_EDGE_CACHE_RETENTION_DAYS": "a week"}, "AXON_EDGE_CACHE_RETENTION_DAYS must be a number"),
    ({"AXON_EDGE_CACHE_RETENTION_DAYS": "0"}, "AXON_EDGE_CACHE_RETENTION_DAYS must be a positive number of days"),
    ({"AXON_EDGE_CACHE_RETENTION_DAYS": "nan"}, "AXON_EDGE_CACHE_RETENTION_DAYS must be a positive number of days"),
    ({"AXON_EDGE_CACHE_UPKEEP_SECONDS": "-1"}, "AXON_EDGE_CACHE_UPKEEP_SECONDS must be a positive number of seconds"),
    ({"AXON_EDGE_CACHE_REPORT_SECONDS": "0"}, "AXON_EDGE_CACHE_REPORT_SECONDS must be a positive number of seconds"),
    ({"AXON_EDGE_CACHE_REPORT_SECONDS": "60", "AXON_EDGE_CACHE_REPORT_HEARTBEAT_SECONDS": "30"}, "must not be shorter"),
])
def test_bad_cache_upkeep_settings_are_clear_errors(env, message):
    with pytest.raises(ValueError, match=message):
        DataPathSettings.from_env(env)


def test_the_agent_refuses_to_start_on_a_bad_retention(edge_env):
    import subprocess

    env = {"AXON_ROBOT_ID": "robot-1", "AXON_CONTROL_PLANE_URL": edge_env.control_plane.url, "AXON_ROBOT_TOKEN": edge_env.robot_token,
           "AXON_EDGE_DATA_DIR": str(edge_env.data_dir), "AXON_RECORDER_URL": edge_env.recorder.url,
           "AXON_EDGE_CACHE_RETENTION_DAYS": "-3", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-m", "axon_edge.cli", "run"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "AXON_EDGE_CACHE_RETENTION_DAYS must be a positive number of days" in out.stderr
    assert not (edge_env.data_dir / "cache").exists()

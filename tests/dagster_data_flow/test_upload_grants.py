"""Upload grants: the pure rules (order priority then age, per robot, windows, reported uplink) and
the grant sensor against a real control-plane API (SQLite, local staging store), robots reporting
their uplink and EXECUTED events with manifests through their own API clients."""

from __future__ import annotations

import hashlib
import itertools
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import dagster as dg
import pytest

from axon_dagster.api.app import create_app
from axon_dagster.api.server import ApiThread
from axon_dagster.client import ControlPlaneClient, EdgeSyncClient
from axon_dagster.control_plane.persistence import upgrade
from axon_dagster.defs.resources import ControlPlaneResource
from axon_dagster.defs.uploads import GrantRules, UploadGrantPolicy, evaluate_grants, in_windows, plan_grants
from axon_dagster.observability import metrics
from axon_dagster.settings.uploads import UploadApiSettings
from axon_dagster.storage.object_stores import LocalDirObjectStore

NOON = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)
_n = itertools.count(1)


def candidate(dataset_id: str, robot_id: str, priority: int = 0) -> dict:
    return {"dataset_id": dataset_id, "task_id": dataset_id, "robot_id": robot_id, "priority": priority}


def robot(robot_id: str, mbps=None, windows=(), tz="UTC") -> dict:
    return {"robot_id": robot_id, "uplink": {"mbps": mbps, "windows": list(windows), "timezone": tz}}


# ------------------------------------------------------------------------------ the rules


def test_the_queue_order_is_kept_and_each_robot_gets_at_most_its_share():
    queue = {"candidates": [candidate("a1", "a", 5), candidate("a2", "a", 5), candidate("b1", "b", 1), candidate("a3", "a", 0)],
             "active_grants": [], "robots": [robot("a", 50), robot("b", 50)]}
    plan = plan_grants(queue, GrantRules(max_grants_per_robot=1, min_bandwidth_mbps=10), NOON)
    assert [c["dataset_id"] for c in plan.grant] == ["a1", "b1"]
    assert plan.skipped == {"robot_busy": 2}
    plan = plan_grants(queue, GrantRules(max_grants_per_robot=2, min_bandwidth_mbps=10), NOON)
    assert [c["dataset_id"] for c in plan.grant] == ["a1", "a2", "b1"]


def test_active_grants_count_against_the_robot():
    queue = {"candidates": [candidate("a2", "a"), candidate("b1", "b")], "active_grants": [{"robot_id": "a", "status": "ACTIVE"}],
             "robots": [robot("a", 50), robot("b", 50)]}
    assert [c["dataset_id"] for c in plan_grants(queue, GrantRules(), NOON).grant] == ["b1"]


def test_a_robot_is_granted_only_inside_its_windows_in_its_time_zone():
    assert in_windows([{"start": "11:00", "end": "13:00"}], "UTC", NOON)
    assert not in_windows([{"start": "13:00", "end": "14:00"}], "UTC", NOON)
    assert in_windows([{"start": "22:00", "end": "06:00"}], "UTC", NOON.replace(hour=23))  # past midnight
    assert in_windows([{"start": "22:00", "end": "06:00"}], "UTC", NOON.replace(hour=3))
    assert not in_windows([{"start": "22:00", "end": "06:00"}], "UTC", NOON)
    assert in_windows([{"start": "12:30", "end": "14:00"}], "Europe/Berlin", NOON)  # 13:00 in Berlin
    assert in_windows([], "UTC", NOON) and in_windows([{"start": "00:00", "end": "00:00"}], "UTC", NOON)
    queue = {"candidates": [candidate("a1", "a"), candidate("b1", "b")], "active_grants": [],
             "robots": [robot("a", 50, [{"start": "01:00", "end": "05:00"}]), robot("b", 50, [{"start": "11:00", "end": "13:00"}])]}
    plan = plan_grants(queue, GrantRules(), NOON)
    assert [c["dataset_id"] for c in plan.grant] == ["b1"] and plan.skipped == {"outside_window": 1}


def test_a_slow_reported_uplink_holds_the_robot_back_and_an_unmeasured_one_does_not():
    queue = {"candidates": [candidate("a1", "a"), candidate("b1", "b"), candidate("c1", "c")], "active_grants": [],
             "robots": [robot("a", 2.5), robot("b", None), robot("c", 10)]}
    plan = plan_grants(queue, GrantRules(min_bandwidth_mbps=10), NOON)
    assert [c["dataset_id"] for c in plan.grant] == ["b1", "c1"]
    assert plan.skipped == {"uplink_too_slow": 1} and plan.unmeasured == {"b"}
    assert "a reports 2.5 Mbit/s < 10" in plan.summary()


def test_an_unreadable_uplink_report_is_a_skip_with_its_reason_not_a_crash():
    queue = {"candidates": [candidate("a1", "a")], "active_grants": [], "robots": [robot("a", 50, [{"start": "25:99"}], "Mars/Base")]}
    plan = plan_grants(queue, GrantRules(), NOON)
    assert plan.grant == [] and plan.skipped == {"bad_uplink_report": 1}


def test_bad_rules_are_refused():
    with pytest.raises(ValueError, match="max_grants_per_robot"):
        GrantRules(max_grants_per_robot=0)
    with pytest.raises(Exception, match="min_bandwidth_mbps"):
        UploadGrantPolicy(min_bandwidth_mbps=-1)


# ------------------------------------------------------------------------------ the sensor, for real


class Fleet:
    def __init__(self, url: str):
        self.admin = ControlPlaneClient(url)
        self.robots = {r: EdgeSyncClient(url, self.admin.register_robot(r)["token"]) for r in ("robot-a", "robot-b")}
        self.resources = {"control_plane": ControlPlaneResource(url=url)}

    def recorded(self, robot_id: str, priority: int) -> str:
        """One task of a new order of ``priority`` on ``robot_id``, reported EXECUTED with a manifest."""
        order_id = f"order-{next(_n)}"
        self.admin.create_order(order_id, "warehouse", ["pick"], priority=priority)
        task_id = self.admin.plan_order(order_id, task_count=1)["tasks"][0]["task_id"]
        self.admin.dispatch_order(order_id, [robot_id])
        data = b"mcap bytes of " + task_id.encode()
        sha = hashlib.sha256(data).hexdigest()
        events = [{"event_id": f"{task_id}-{s}", "task_id": task_id, "status": s} for s in ("READY", "EXECUTING")]
        events.append({"event_id": f"{task_id}-EXECUTED", "task_id": task_id, "status": "EXECUTED", "data": {
            "recording_format": "mcap", "manifest": {"files": [{"name": f"{task_id}.mcap", "size": len(data), "sha256": sha}],
                                                     "dataset_digest": sha},
            "gate": {"passed": True, "reasons": [], "checks": {}}}})
        assert all(r["result"] == "applied" for r in self.robots[robot_id].push_events(events))
        return task_id

    def tick(self, policy: UploadGrantPolicy, now: datetime | None = None):
        with dg.build_sensor_context(instance=dg.DagsterInstance.ephemeral(), resources={**self.resources, "upload_grants": policy}) as ctx:
            return evaluate_grants(ctx, self.resources["control_plane"], policy, now=now)

    def granted(self) -> dict[str, str]:
        return {g["dataset_id"]: g["robot_id"] for g in self.admin.upload_queue()["active_grants"]}


@pytest.fixture
def fleet(tmp_path) -> Iterator[Fleet]:
    url = f"sqlite:///{tmp_path / 'cp.db'}"
    upgrade(url)
    store = LocalDirObjectStore(tmp_path / "cloud")
    settings = UploadApiSettings(object_store_url=f"file://{tmp_path / 'cloud'}", signing_key="k" * 40)
    server = ApiThread(create_app(url, admin_token="", staging_store=store, upload_settings=settings)).start()
    f = Fleet(server.url)
    try:
        yield f
    finally:
        for c in (f.admin, *f.robots.values()):
            c.close()
        server.stop()


def test_the_sensor_grants_by_priority_then_age_one_per_robot(fleet):
    old_low = fleet.recorded("robot-a", 0)
    high = fleet.recorded("robot-a", 9)
    b_low = fleet.recorded("robot-b", 1)
    for r in fleet.robots.values():
        r.report_uplink(100.0, [], "UTC")
    before = metrics.UPLOAD_GRANTS._value.get()
    result = fleet.tick(UploadGrantPolicy(min_bandwidth_mbps=10))
    assert fleet.granted() == {high: "robot-a", b_low: "robot-b"}  # robot-a's most urgent first; old_low waits
    assert "2 upload(s) granted" in result.skip_reason.skip_message and "1 robot_busy" in result.skip_reason.skip_message
    assert metrics.UPLOAD_GRANTS._value.get() == before + 2
    # the robot sees its grant on its next pull
    pulled = {t["task_id"]: t["upload"] for t in fleet.robots["robot-a"].pull_tasks(0, 100)["tasks"]}
    assert pulled[high]["grant_id"] and pulled[old_low] is None
    # a second tick grants nothing new while the grants are active
    fleet.tick(UploadGrantPolicy(min_bandwidth_mbps=10))
    assert set(fleet.granted()) == {high, b_low}


def test_the_sensor_respects_reported_windows_and_uplink(fleet):
    a, b = fleet.recorded("robot-a", 0), fleet.recorded("robot-b", 0)
    fleet.robots["robot-a"].report_uplink(100.0, [{"start": "01:00", "end": "02:00"}], "UTC")
    fleet.robots["robot-b"].report_uplink(3.0, [], "UTC")
    result = fleet.tick(UploadGrantPolicy(min_bandwidth_mbps=10), now=NOON)
    assert fleet.granted() == {} and "outside_window" in result.skip_reason.skip_message and "uplink_too_slow" in result.skip_reason.skip_message
    fleet.tick(UploadGrantPolicy(min_bandwidth_mbps=10), now=NOON.replace(hour=1, minute=30))
    assert fleet.granted() == {a: "robot-a"}
    fleet.robots["robot-b"].report_uplink(30.0, [], "UTC")
    fleet.tick(UploadGrantPolicy(min_bandwidth_mbps=10), now=NOON)
    assert fleet.granted() == {a: "robot-a", b: "robot-b"}


def test_an_expired_grant_is_granted_again(fleet):
    task_id = fleet.recorded("robot-a", 0)
    fleet.tick(UploadGrantPolicy(min_bandwidth_mbps=0, grant_ttl_seconds=10))  # the shortest the control plane gives
    [first] = fleet.admin.upload_queue()["active_grants"]
    time.sleep(10.5)  # the robot was offline for the grant's whole life
    fleet.tick(UploadGrantPolicy(min_bandwidth_mbps=0, grant_ttl_seconds=60))
    [second] = fleet.admin.upload_queue()["active_grants"]
    assert second["dataset_id"] == task_id and second["grant_id"] != first["grant_id"]
    assert datetime.fromisoformat(second["expires_at"]) - datetime.fromisoformat(second["granted_at"]) >= timedelta(seconds=59)

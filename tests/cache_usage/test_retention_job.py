"""The edge_cache_retention job under Dagster's testing API, against a real control plane and a real
edge cache: only uploaded-and-verified or rejected datasets go, an un-uploaded dataset survives even
over quota, and the control plane shows the reported usage and pressure."""

from __future__ import annotations

import dagster as dg
import httpx
import pytest

from axon_dagster.defs import build_definitions
from axon_dagster.defs.resources import EdgeCacheResource
from axon_dagster.defs import retention as retention_area
from axon_dagster.defs.retention import edge_cache_retention, edge_cache_retention_schedule
from axon_dagster.storage.edge_cache import CacheState

from .test_cache_usage_api import scrape

OP = "apply_edge_cache_retention"


def run(control_plane, edge_cache: EdgeCacheResource, cache_id: str | None = None) -> dg.ExecuteInProcessResult:
    run_config = {"ops": {OP: {"config": {"cache_id": cache_id}}}} if cache_id else None
    return edge_cache_retention.execute_in_process(
        resources={"edge_cache": edge_cache, "control_plane": control_plane.resource()},
        run_config=run_config,
        instance=dg.DagsterInstance.ephemeral(),
    )


def output_metadata(result: dg.ExecuteInProcessResult) -> dict:
    [event] = [e for e in result.all_node_events if e.is_successful_output]
    return {k: v.value for k, v in event.event_specific_data.metadata.items()}


def test_over_quota_only_uploaded_or_rejected_data_goes_and_pressure_is_reported(tmp_path, stage, control_plane, caplog):
    resource = EdgeCacheResource(root=str(tmp_path / "cache"), max_size_gb=0.001, retention_days=1)  # quota 1,000,000 B
    cache = resource.cache()
    stage(cache, "old-uploaded", 300_000, state="uploaded", age_days=3)
    stage(cache, "rejected-1", 300_000, state="rejected")
    stage(cache, "pending-1", 1_200_000)  # not uploaded: over quota on its own, and must stay
    assert cache.usage().used_bytes > 1_800_000

    result = run(control_plane, resource, cache_id="site-a")
    assert result.success

    left = {e.dataset_id: e for e in resource.cache().list()}
    assert set(left) == {"pending-1"}
    assert left["pending-1"].state is CacheState.CACHED and left["pending-1"].path.is_dir()
    assert not (tmp_path / "cache" / "datasets" / "old-uploaded").exists()
    assert not (tmp_path / "cache" / "datasets" / "rejected-1").exists()

    out = result.output_for_node(OP)
    assert out["retained"] == ["old-uploaded"]  # by retention (3 days > 1 day)
    assert out["evicted"] == ["rejected-1"]  # by the quota
    meta = output_metadata(result)
    assert meta["cache_id"] == "site-a"
    assert meta["retention_removed"] == ["old-uploaded"] and meta["evicted"] == ["rejected-1"]
    assert meta["pressure"] is True and meta["quota_bytes"] == 1_000_000
    used = left["pending-1"].size_bytes
    assert meta["used_bytes"] == used == meta["pending_upload_bytes"]

    [reported] = control_plane.client.list_cache_usage()
    assert reported["cache_id"] == "site-a"
    assert reported["used_bytes"] == used and reported["quota_bytes"] == 1_000_000 and reported["pressure"] is True
    assert reported["datasets"] == {
        "cached": {"count": 1, "bytes": used},
        "uploaded": {"count": 0, "bytes": 0},
        "rejected": {"count": 0, "bytes": 0},
    }
    assert reported["report"]["retention_days"] == 1
    samples = scrape(control_plane.url)
    labels = (("cache_id", "site-a"),)
    assert samples[("axon_edge_cache_used_bytes", labels)] == used
    assert samples[("axon_edge_cache_quota_bytes", labels)] == 1_000_000
    assert samples[("axon_edge_cache_pressure", labels)] == 1

    # Running again changes nothing on disk and reports the same usage (the schedule is hourly).
    again = run(control_plane, resource, cache_id="site-a")
    assert again.output_for_node(OP)["retained"] == [] and again.output_for_node(OP)["evicted"] == []
    assert {e.dataset_id for e in resource.cache().list()} == {"pending-1"}
    assert [c["used_bytes"] for c in control_plane.client.list_cache_usage()] == [used]


def test_retention_only_removes_data_older_than_retention_and_uses_the_env_cache_id(tmp_path, stage, control_plane, monkeypatch):
    monkeypatch.setenv("AXON_EDGE_CACHE_ID", "robot-7-cache")
    resource = EdgeCacheResource(root=str(tmp_path / "cache"), retention_days=2)  # no quota
    cache = resource.cache()
    stage(cache, "old-uploaded", 1_000, state="uploaded", age_days=5)
    stage(cache, "old-rejected", 1_000, state="rejected", age_days=5)
    stage(cache, "new-uploaded", 1_000, state="uploaded", age_days=1)
    stage(cache, "old-pending", 1_000, age_days=30)  # never uploaded: retention never touches it

    result = run(control_plane, resource)
    assert result.success
    assert sorted(result.output_for_node(OP)["retained"]) == ["old-rejected", "old-uploaded"]
    assert result.output_for_node(OP)["evicted"] == []
    assert {e.dataset_id for e in resource.cache().list()} == {"new-uploaded", "old-pending"}

    [reported] = control_plane.client.list_cache_usage()
    assert reported["cache_id"] == "robot-7-cache"
    assert reported["quota_bytes"] is None and reported["pressure"] is False
    assert reported["datasets"]["cached"]["count"] == 1 and reported["datasets"]["uploaded"]["count"] == 1
    samples = scrape(control_plane.url)
    labels = (("cache_id", "robot-7-cache"),)
    assert samples[("axon_edge_cache_pressure", labels)] == 0
    assert ("axon_edge_cache_quota_bytes", labels) not in samples


def test_the_default_cache_id_and_no_retention(tmp_path, stage, control_plane, monkeypatch):
    monkeypatch.delenv("AXON_EDGE_CACHE_ID", raising=False)
    resource = EdgeCacheResource(root=str(tmp_path / "cache"))
    stage(resource.cache(), "old-uploaded", 1_000, state="uploaded", age_days=365)
    result = run(control_plane, resource)
    assert result.output_for_node(OP)["retained"] == []  # no retention_days: nothing by age
    assert [c["cache_id"] for c in control_plane.client.list_cache_usage()] == ["default"]


def test_a_bad_cache_id_fails_the_run_without_retries_and_reports_nothing(tmp_path, stage, control_plane):
    resource = EdgeCacheResource(root=str(tmp_path / "cache"))
    stage(resource.cache(), "p", 1_000)
    result = edge_cache_retention.execute_in_process(
        resources={"edge_cache": resource, "control_plane": control_plane.resource()},
        run_config={"ops": {OP: {"config": {"cache_id": "not a safe id"}}}},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert not result.success
    assert not [e for e in result.all_node_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
    assert control_plane.client.list_cache_usage() == []
    assert {e.dataset_id for e in resource.cache().list()} == {"p"}


def test_a_report_the_control_plane_refuses_fails_without_retries(tmp_path, stage, control_plane, monkeypatch):
    from axon_dagster.client import ControlPlaneClient

    resource = EdgeCacheResource(root=str(tmp_path / "cache"))
    stage(resource.cache(), "p", 1_000)
    real = ControlPlaneClient.report_cache_usage
    # A report the API must refuse (a state it does not know): 422 from the real server.
    monkeypatch.setattr(
        ControlPlaneClient, "report_cache_usage", lambda self, cid, usage: real(self, cid, {**usage, "datasets": {**usage["datasets"], "x": {}}})
    )
    result = edge_cache_retention.execute_in_process(
        resources={"edge_cache": resource, "control_plane": control_plane.resource()},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert not result.success
    [failure] = [e for e in result.all_node_events if e.is_step_failure]
    assert "422" in failure.event_specific_data.error.message or "422" in str(failure.event_specific_data.error)
    assert not [e for e in result.all_node_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
    assert control_plane.client.list_cache_usage() == []


def test_delete_after_upload_is_passed_to_the_cache(tmp_path, stage):
    resource = EdgeCacheResource(root=str(tmp_path / "cache"), delete_after_upload=True, retention_days=0.5)
    cache = resource.cache()
    assert cache.delete_after_upload is True and cache.retention_days == 0.5
    stage(cache, "up", 1_000, state="uploaded")  # removed right after its verified upload
    stage(cache, "pending", 1_000)
    assert {e.dataset_id for e in cache.list()} == {"pending"}
    assert EdgeCacheResource(root=str(tmp_path / "c2")).cache().delete_after_upload is False


def test_the_job_and_hourly_schedule_are_in_the_code_location():
    assert list(retention_area.defs.jobs) == [edge_cache_retention]
    assert list(retention_area.defs.schedules) == [edge_cache_retention_schedule]
    defs = build_definitions()
    assert defs.resolve_job_def("edge_cache_retention").name == "edge_cache_retention"
    schedule = defs.resolve_schedule_def("edge_cache_retention_schedule")
    assert schedule.job_name == "edge_cache_retention"
    assert schedule.cron_schedule == "0 * * * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert {"edge_cache", "control_plane"} <= set(defs.resources)

"""The edge cache's retention schedule: every hour, drop what retention and the quota allow, then
report the cache's disk usage to the control plane.

Only uploaded-and-verified or rejected datasets are ever removed (``EdgeCache.apply_retention`` and
``EdgeCache.evict`` keep that rule themselves), so the schedule runs by default. A cache over quota
with nothing evictable is reported with ``pressure: true`` (the ``AxonEdgeCacheNearQuota`` alert)."""

from typing import Any, Optional

import dagster as dg
from pydantic import Field

from axon_dagster.client import ControlPlaneError
from axon_dagster.domain import InvalidIdError, validate_id
from axon_dagster.settings.code_location import EdgeCacheSettings

from ..resources import ControlPlaneResource, EdgeCacheResource
from ..retry import NETWORK_RETRY

CACHE_ID_ENV = "AXON_EDGE_CACHE_ID"
DEFAULT_CACHE_ID = EdgeCacheSettings.cache_id


def default_cache_id() -> str:
    return EdgeCacheSettings.load().cache_id


class EdgeCacheRetentionConfig(dg.Config):
    cache_id: Optional[str] = Field(
        default=None,
        description=f"Id the usage is reported under in the control plane (default: ${CACHE_ID_ENV}, else {DEFAULT_CACHE_ID!r})",
    )


@dg.op(retry_policy=NETWORK_RETRY, tags={"kind": "edge-cache"})
def apply_edge_cache_retention(
    context: dg.OpExecutionContext,
    config: EdgeCacheRetentionConfig,
    edge_cache: EdgeCacheResource,
    control_plane: ControlPlaneResource,
) -> dg.Output[dict]:
    """Retention, then eviction down to the quota, then the usage report. A retry after a failed
    report repeats the (idempotent) removals and reports again."""
    try:
        cache_id = validate_id(config.cache_id or default_cache_id(), "cache_id")
    except InvalidIdError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    cache = edge_cache.cache()
    retained = cache.apply_retention()
    evicted = cache.evict()
    usage = cache.disk_usage()
    context.log.info(
        f"edge cache {cache_id} at {cache.root}: retention ({cache.retention_days} days) removed {len(retained)} "
        f"dataset(s) {retained}; eviction ({cache.policy}) removed {len(evicted)} dataset(s) {evicted}"
    )
    quota = usage["quota_bytes"]
    context.log.info(
        f"edge cache {cache_id}: {usage['used_bytes']} bytes used of {quota if quota is not None else 'no quota'}, "
        f"{usage['pending_upload_bytes']} bytes waiting for upload, datasets by state {usage['datasets']}"
    )
    if usage["pressure"]:
        context.log.warning(
            f"edge cache {cache_id} is over quota and nothing more may be evicted: the rest is not uploaded "
            "and verified or rejected yet, so it is kept"
        )
    try:
        with control_plane.client() as client:
            client.report_cache_usage(cache_id, usage)
    except ControlPlaneError as exc:
        # Unreachable or 502/503/504 (ControlPlaneUnavailable) is retried; a refusal will not change.
        raise dg.Failure(description=f"control plane refused the usage report of {cache_id}: {exc}", allow_retries=exc.status_code >= 500) from exc
    metadata: dict[str, Any] = {
        "cache_id": cache_id,
        "retention_removed": dg.MetadataValue.json(retained),
        "evicted": dg.MetadataValue.json(evicted),
        "used_bytes": dg.MetadataValue.int(usage["used_bytes"]),
        "quota_bytes": dg.MetadataValue.int(quota) if quota is not None else "none",
        "pressure": dg.MetadataValue.bool(usage["pressure"]),
        "pending_upload_bytes": dg.MetadataValue.int(usage["pending_upload_bytes"]),
        "datasets": dg.MetadataValue.json(usage["datasets"]),
    }
    return dg.Output({"cache_id": cache_id, "retained": retained, "evicted": evicted, "usage": usage}, metadata=metadata)


@dg.job(tags={"axon/flow": "edge-cache"})
def edge_cache_retention():
    apply_edge_cache_retention()


edge_cache_retention_schedule = dg.ScheduleDefinition(
    name="edge_cache_retention_schedule",
    job=edge_cache_retention,
    cron_schedule="0 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Hourly: retention and eviction of uploaded-and-verified or rejected datasets, then the usage report",
)

"""Robots' edge caches: each robot's edge agent reports its cache's usage (``PUT /api/v1/edge/cache-usage``,
authenticated by the robot's token); the control plane keeps the latest report per robot (the cache id
is the robot's id, never one from the body) and lists them (``GET /api/v1/edge-caches``, /metrics).

The cloud holds no robot's cache and reads no robot's disk: these reports are all it knows of them."""

from __future__ import annotations

import logging
import math
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError, model_validator

from axon_dagster.domain import utcnow, validate_id

from .errors import InvalidRequestError
from .persistence import EdgeCacheUsageRecord, SqlAlchemyUnitOfWork
from .validation import text
from .views import EdgeCacheUsageView

log = logging.getLogger(__name__)

UnitOfWork = SqlAlchemyUnitOfWork

CACHE_STATES = ("cached", "uploaded", "rejected")  # axon_dagster.storage.edge_cache.CacheState
MAX_BYTES = 2**63 - 1
MAX_RETENTION_DAYS = 36_500

ByteCount = Annotated[StrictInt, Field(ge=0, le=MAX_BYTES)]
ReportText = Annotated[str, AfterValidator(lambda v: text(v, "text"))]


class _Report(BaseModel):
    # Strict: a string or a float where a byte count belongs is refused, never coerced. Keys the
    # control plane does not keep (an agent newer than the API) are dropped.
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


class StateUsage(_Report):
    count: ByteCount
    bytes: ByteCount


class FilesystemUsage(_Report):
    total_bytes: ByteCount
    free_bytes: ByteCount


class CacheUsageReport(_Report):
    """An ``EdgeCache.disk_usage()`` report (the request body of ``PUT /edge/cache-usage``)."""

    used_bytes: ByteCount
    quota_bytes: ByteCount | None = None
    pressure: StrictBool
    datasets: dict[Literal["cached", "uploaded", "rejected"], StateUsage]
    evictable_bytes: ByteCount | None = None
    pending_upload_bytes: ByteCount | None = None
    root: ReportText | None = None
    policy: ReportText | None = None
    oldest_pending_staged_at: ReportText | None = None
    reported_at: ReportText | None = None
    filesystem: FilesystemUsage | None = None
    delete_after_upload: StrictBool | None = None
    retention_days: float | None = Field(None, gt=0, le=MAX_RETENTION_DAYS)

    @model_validator(mode="after")
    def _consistent(self) -> "CacheUsageReport":
        if self.retention_days is not None and not math.isfinite(self.retention_days):
            raise ValueError(f"retention_days must be a positive number or null, got {self.retention_days!r}")
        over = self.quota_bytes is not None and self.used_bytes > self.quota_bytes
        if self.pressure != over:
            raise ValueError(
                f"pressure={self.pressure} contradicts used_bytes={self.used_bytes} and quota_bytes={self.quota_bytes} (pressure means over quota)"
            )
        total = sum(d.bytes for d in self.datasets.values())
        if total != self.used_bytes:
            raise ValueError(f"used_bytes={self.used_bytes} differs from the sum of datasets bytes ({total})")
        return self


def parse_cache_usage(body: bytes) -> CacheUsageReport:
    """A request body as a :class:`CacheUsageReport`; anything else is an InvalidRequestError (422)
    naming each problem."""
    try:
        return CacheUsageReport.model_validate_json(body)
    except ValidationError as exc:
        problems = []
        for err in exc.errors()[:10]:
            where = ".".join(str(p) for p in err.get("loc", ())) or "body"
            problems.append(f"{where}: {err.get('msg', 'invalid')}")
        raise InvalidRequestError("bad cache usage report: " + "; ".join(problems)) from None


def report_cache_usage(uow: UnitOfWork, robot_id: str, usage: CacheUsageReport) -> EdgeCacheUsageView:
    """Store ``usage`` (an ``EdgeCache.disk_usage()`` report) as the current usage of the edge cache
    of ``robot_id`` (the authenticated robot), replacing its previous report. Everything is checked
    before anything is written."""
    robot_id = validate_id(robot_id, "robot_id")
    record = _cache_usage_record(robot_id, usage, utcnow())
    with uow.writing():
        uow.edge_caches.put(record)
        uow.commit()
    log.info(
        "robot %s: edge cache %d of %s bytes used, %s waiting for upload%s",
        robot_id, record.used_bytes, record.quota_bytes if record.quota_bytes is not None else "unlimited",
        record.report.get("pending_upload_bytes", "?"), " (PRESSURE)" if record.pressure else "",
    )
    return EdgeCacheUsageView.of(record)


def list_cache_usage(uow: UnitOfWork) -> list[EdgeCacheUsageView]:
    with uow.reading():
        return [EdgeCacheUsageView.of(r) for r in uow.edge_caches.list()]


def _cache_usage_record(robot_id: str, usage: CacheUsageReport, received_at: datetime) -> EdgeCacheUsageRecord:
    datasets = {state: (usage.datasets.get(state) or StateUsage(count=0, bytes=0)).model_dump() for state in CACHE_STATES}  # type: ignore[call-overload]
    kept = ("evictable_bytes", "pending_upload_bytes", "root", "policy", "oldest_pending_staged_at", "reported_at",
            "filesystem", "delete_after_upload", "retention_days")
    report: dict[str, Any] = usage.model_dump(include=set(kept), exclude_none=True)
    return EdgeCacheUsageRecord(
        cache_id=robot_id,  # a robot has one cache
        used_bytes=usage.used_bytes,
        quota_bytes=usage.quota_bytes,
        pressure=usage.pressure,
        datasets=datasets,
        report=report,
        reported_at=received_at,
    )

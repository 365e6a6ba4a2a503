"""What the service layer hands back: plain, immutable views shaped like the API's JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from datetime import datetime
from typing import Any, Literal

from pydantic import TypeAdapter

from axon_dagster.domain import Batch, Dataset, Order, RollupStatus, TaskStatus, UploadGrant, rollup

from .persistence import DatasetRecord, EdgeCacheUsageRecord, EventRecord, RobotRecord, TaskRecord


def _all_statuses(counts: dict[TaskStatus, int]) -> dict[str, int]:
    return {s.value: counts.get(s, 0) for s in TaskStatus}


def rollup_of(counts: dict[TaskStatus, int]) -> RollupStatus:
    # The roll-up depends only on which statuses occur, not on how often.
    return rollup(status for status, n in counts.items() if n > 0)


@dataclass(frozen=True)
class View:
    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of the view (what the API answers)."""
        return _adapter(type(self)).dump_python(self, mode="json")


@lru_cache(maxsize=None)
def _adapter(view_type: type) -> TypeAdapter[Any]:
    return TypeAdapter(view_type)


@dataclass(frozen=True)
class RobotView(View):
    robot_id: str
    name: str
    created_at: datetime
    last_seen_at: datetime | None
    tokens_revoked_at: datetime | None = None  # no token accepted until a new one is issued
    previous_token_valid_until: datetime | None = None  # a rotation's overlap: the old token works until then
    uplink: dict[str, Any] | None = None  # what the robot reported (PUT /edge/uplink): mbps, windows, timezone, reported_at
    recorder: dict[str, Any] | None = None  # what the robot reported of its recorder (PUT /edge/recorder), with reported_at

    @classmethod
    def of(cls, r: RobotRecord, uplink: dict[str, Any] | None = None, recorder: dict[str, Any] | None = None) -> "RobotView":
        return cls(r.robot_id, r.name, r.created_at, r.last_seen_at, r.tokens_revoked_at, r.previous_token_expires_at, uplink, recorder)


@dataclass(frozen=True)
class RegisteredRobot(View):
    robot_id: str
    token: str  # shown once; only its SHA-256 is stored
    previous_token_valid_until: datetime | None = None  # after a rotation: until when the old token still works


@dataclass(frozen=True)
class OrderView(View):
    order_id: str
    scene: str
    sub_scene: str
    skills: list[str]
    requirements: dict[str, Any]
    priority: int
    created_by: str
    created_at: datetime
    status: str
    task_counts: dict[str, int]

    @classmethod
    def of(cls, o: Order, counts: dict[TaskStatus, int]) -> "OrderView":
        return cls(
            order_id=o.order_id,
            scene=o.scene,
            sub_scene=o.sub_scene,
            skills=list(o.skills),
            requirements=o.requirements.to_dict(),
            priority=o.priority,
            created_by=o.created_by,
            created_at=o.created_at,
            status=rollup_of(counts).value,
            task_counts=_all_statuses(counts),
        )


@dataclass(frozen=True)
class BatchView(View):
    batch_id: str
    order_id: str
    scene: str
    sub_scene: str
    skills: list[str]
    task_count: int
    duration_seconds: float
    topics: list[str]
    created_at: datetime
    status: str
    task_counts: dict[str, int]

    @classmethod
    def of(cls, b: Batch, counts: dict[TaskStatus, int]) -> "BatchView":
        return cls(
            batch_id=b.batch_id,
            order_id=b.order_id,
            scene=b.scene,
            sub_scene=b.sub_scene,
            skills=list(b.skills),
            task_count=b.task_count,
            duration_seconds=float(b.duration_seconds),
            topics=list(b.topics),
            created_at=b.created_at,
            status=rollup_of(counts).value,
            task_counts=_all_statuses(counts),
        )


@dataclass(frozen=True)
class TaskView(View):
    task_id: str
    order_id: str
    batch_id: str
    scene: str
    sub_scene: str
    skills: list[str]
    duration_seconds: float
    topics: list[str]
    priority: int
    status: str
    robot_id: str | None
    data_collector_id: str | None
    config_path: str | None
    dataset_path: str | None
    failure_reason: str | None
    requirements: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    revision: int
    # While an ACTIVE upload grant exists for the task's recording: {grant_id, expires_at}.
    upload: dict[str, str] | None = None

    @classmethod
    def of(cls, record: TaskRecord, requirements: dict[str, Any], upload: dict[str, str] | None = None) -> "TaskView":
        """``requirements`` is the order's ``Requirements.to_dict()``, computed once per order."""
        t = record.task
        return cls(
            task_id=t.task_id,
            order_id=t.order_id,
            batch_id=t.batch_id,
            scene=t.scene,
            sub_scene=t.sub_scene,
            skills=list(t.skills),
            duration_seconds=float(t.duration_seconds),
            topics=list(t.topics),
            priority=t.priority,
            status=t.status.value,
            robot_id=t.robot_id,
            data_collector_id=t.data_collector_id,
            config_path=t.config_path,
            dataset_path=t.dataset_path,
            failure_reason=t.failure_reason,
            requirements=requirements,
            created_at=t.created_at,
            updated_at=t.updated_at,
            revision=record.revision,
            upload=upload,
        )


@dataclass(frozen=True)
class PlanView(View):
    order_id: str
    batches: list[BatchView]
    tasks: list[TaskView]


@dataclass(frozen=True)
class TaskPage(View):
    """A robot's pull: its tasks changed after the cursor, and the cursor to send next time."""

    tasks: list[TaskView]
    cursor: int


@dataclass(frozen=True)
class EventView(View):
    seq: int
    event_id: str
    task_id: str
    robot_id: str | None
    status: str
    occurred_at: datetime
    received_at: datetime
    data: dict[str, Any]

    @classmethod
    def of(cls, e: EventRecord) -> "EventView":
        assert e.seq is not None
        return cls(e.seq, e.event_id, e.task_id, e.robot_id, e.status.value, e.occurred_at, e.received_at, dict(e.data))


@dataclass(frozen=True)
class EventPage(View):
    events: list[EventView]
    cursor: int


EventOutcome = Literal["applied", "duplicate", "rejected"]


@dataclass(frozen=True)
class EventResult(View):
    event_id: str
    result: EventOutcome
    error: str | None = None


@dataclass(frozen=True)
class DatasetView(View):
    dataset_id: str
    task_id: str
    status: str
    source_path: str | None
    cache_path: str | None
    dataset_digest: str | None
    size_bytes: int | None
    qc_score: float | None
    qc_outcome: str | None
    reviewed_by: str | None
    review_comment: str | None
    cloud_uri: str | None
    inspection_report: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    last_upload_error: str | None  # why the last upload (or staging) failed for good; None once done
    recording_format: str | None = None  # mcap | lance (None: reported before manifests)
    manifest: dict[str, Any] | None = None  # {recording_format, files: [{name, size, sha256}], dataset_digest, ...}
    gate: dict[str, Any] | None = None  # the edge gate's {passed, reasons, checks}
    publish_attempts: int = 0

    @classmethod
    def of(cls, d: Dataset, created_at: datetime, report: dict[str, Any] | None) -> "DatasetView":
        return cls(
            dataset_id=d.dataset_id,
            task_id=d.task_id,
            status=d.status.value,
            source_path=d.source_path,
            cache_path=d.cache_path,
            dataset_digest=d.dataset_digest,
            size_bytes=d.size_bytes,
            qc_score=d.qc_score,
            qc_outcome=d.qc_outcome.value if d.qc_outcome else None,
            reviewed_by=d.reviewed_by,
            review_comment=d.review_comment,
            cloud_uri=d.cloud_uri,
            inspection_report=report,
            created_at=created_at,
            updated_at=d.updated_at,
            last_upload_error=d.last_upload_error,
            recording_format=d.manifest.recording_format if d.manifest else None,
            manifest=d.manifest.to_dict() if d.manifest else None,
            gate=d.gate.to_dict() if d.gate else None,
            publish_attempts=d.publish_attempts,
        )

    @classmethod
    def of_record(cls, r: DatasetRecord) -> "DatasetView":
        return cls.of(r.dataset, r.created_at, r.inspection_report)


@dataclass(frozen=True)
class UploadGrantView(View):
    grant_id: str
    dataset_id: str
    task_id: str
    robot_id: str
    status: str  # ACTIVE | USED | EXPIRED
    granted_at: datetime
    expires_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, g: UploadGrant) -> "UploadGrantView":
        return cls(g.grant_id, g.dataset_id, g.dataset_id, g.robot_id, g.status.value, g.granted_at, g.expires_at, g.finished_at)


@dataclass(frozen=True)
class UploadCandidateView(View):
    """A RECORDED dataset whose edge gate passed, waiting for a grant."""

    dataset_id: str
    task_id: str
    robot_id: str | None
    order_id: str
    priority: int
    size_bytes: int
    recorded_at: datetime
    age_seconds: float
    last_upload_error: str | None


@dataclass(frozen=True)
class UploadQueueView(View):
    """What the bandwidth sensor decides from: candidates (order priority, then age), the active
    grants, and every robot's reported uplink."""

    candidates: list[UploadCandidateView]
    active_grants: list[UploadGrantView]
    robots: list[RobotView]


@dataclass(frozen=True)
class MetricsSnapshot:
    tasks_by_status: dict[str, int] = field(default_factory=dict)
    orders_by_status: dict[str, int] = field(default_factory=dict)
    robots_last_seen: dict[str, float | None] = field(default_factory=dict)  # unix seconds
    batches_by_status: dict[str, int] = field(default_factory=dict)
    review_queue_length: int = 0
    review_queue_oldest_age_seconds: float = 0.0
    # 0003: the last usage report of each robot's edge cache, {robot_id: (used_bytes, quota_bytes | None, pressure)}.
    edge_caches: dict[str, tuple[int, int | None, bool]] = field(default_factory=dict)
    # 0009: datasets by status (GRANTED: a robot may upload; STAGED: uploaded, waiting for the data flow).
    datasets_by_status: dict[str, int] = field(default_factory=dict)
    active_upload_grants: int = 0


@dataclass(frozen=True)
class EdgeCacheUsageView(View):
    """The last disk-usage report of one robot's edge cache (``EdgeCache.disk_usage()`` as its edge
    agent sent it). A robot has one cache: ``cache_id`` is its ``robot_id``."""

    robot_id: str
    cache_id: str
    used_bytes: int
    quota_bytes: int | None
    pressure: bool
    datasets: dict[str, Any]  # {state: {"count": n, "bytes": b}}
    report: dict[str, Any]  # policy, filesystem, pending/evictable bytes, ... as the cache reported them
    reported_at: datetime  # when the control plane received the report

    @classmethod
    def of(cls, r: EdgeCacheUsageRecord) -> "EdgeCacheUsageView":
        return cls(
            robot_id=r.cache_id,
            cache_id=r.cache_id,
            used_bytes=r.used_bytes,
            quota_bytes=r.quota_bytes,
            pressure=r.pressure,
            datasets=r.datasets,
            report=r.report,
            reported_at=r.reported_at,
        )

"""Entities of the control flow and the data flow. Pure Python: no I/O, no framework."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import Any, Iterable, Mapping

from .errors import DomainError, InvalidIdError, PlanningError
from .layout import check_label_limits
from .ids import validate_id, validate_label
from .uploads import EdgeGate, RecordingManifest, UploadRefused
from .states import (
    DATASET_TRANSITIONS,
    TASK_TRANSITIONS,
    DatasetStatus,
    QcOutcome,
    TaskStatus,
    check_transition,
)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


# Times the product stores and compares: after the epoch, and far from datetime's year-9999 edge,
# so converting any accepted offset to UTC never overflows.
EARLIEST_TIME = datetime(1970, 1, 1, tzinfo=timezone.utc)
LATEST_TIME = datetime(9000, 1, 1, tzinfo=timezone.utc)


def bounded_utc(value: datetime, field: str) -> datetime:
    """``value`` in UTC (naive means UTC), or :class:`InvalidIdError` naming ``field`` when it lies
    outside [1970, 9000) or cannot be converted at all."""
    try:
        utc = value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=timezone.utc)
    except (OverflowError, ValueError):
        raise InvalidIdError(field, value.isoformat(), "is out of range") from None
    if not EARLIEST_TIME <= utc < LATEST_TIME:
        raise InvalidIdError(field, value.isoformat(), f"must lie between {EARLIEST_TIME:%Y} and {LATEST_TIME:%Y}")
    return utc


@dataclass(frozen=True)
class Requirements:
    """What an order asks of every recording; inspection checks recordings against it."""

    required_topics: tuple[str, ...] = ()
    expected_rates_hz: Mapping[str, float] = field(default_factory=dict)
    rate_tolerance: float = 0.2
    max_gap_seconds: float = 1.0
    min_duration_seconds: float = 0.0
    max_duration_seconds: float | None = None
    auto_approve: float = 0.9
    review_floor: float = 0.6
    # Share of a topic's messages lost in isolated sequence holes (holes inside a stall longer
    # than max_gap_seconds count as the gap, not as drops).
    max_drop_rate: float = 0.01
    # Cross-topic sync: for each sync_topic message, the offset to the nearest
    # sync_reference_topic message; the sync_percentile-th percentile of |offset| must be at most
    # max_sync_offset_seconds. None for either topic turns the check off.
    sync_topic: str | None = "/camera/image_raw"
    sync_reference_topic: str | None = "/joint_states"
    sync_percentile: float = 95.0
    max_sync_offset_seconds: float = 0.02
    # Frozen streams: the longest run of identical consecutive payloads on these topics must span
    # at most max_frozen_seconds.
    frozen_topics: tuple[str, ...] = ("/camera/image_raw", "/joint_states")
    max_frozen_seconds: float = 1.0
    # Content (recordings ingested from MCAP, with decoded columns): p95 of |log time - header
    # stamp| per topic, pauses taken out, must be at most max_stamp_skew_seconds; the recorder's
    # wall time (Axon's duration_sec) must be the data's span plus its pauses within
    # max_unaccounted_seconds.
    max_stamp_skew_seconds: float = 0.5
    max_unaccounted_seconds: float = 2.0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "Requirements":
        data = dict(data or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise PlanningError(f"unknown requirement key(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        if "required_topics" in data:
            topics = data["required_topics"]
            if not isinstance(topics, (list, tuple)) or not all(isinstance(t, str) for t in topics):
                raise PlanningError("requirement required_topics must be a list of topic names")
            data["required_topics"] = tuple(topics)
        if "expected_rates_hz" in data:
            rates = data["expected_rates_hz"]
            if not isinstance(rates, Mapping) or not all(
                isinstance(v, (int, float)) and v > 0 for v in rates.values()
            ):
                raise PlanningError("requirement expected_rates_hz must map topic names to positive rates")
            data["expected_rates_hz"] = {str(k): float(v) for k, v in rates.items()}
        if "frozen_topics" in data:
            topics = data["frozen_topics"]
            if not isinstance(topics, (list, tuple)) or not all(isinstance(t, str) for t in topics):
                raise PlanningError("requirement frozen_topics must be a list of topic names")
            data["frozen_topics"] = tuple(topics)
        for key in ("sync_topic", "sync_reference_topic"):
            if key in data and data[key] is not None and (not isinstance(data[key], str) or not data[key]):
                raise PlanningError(f"requirement {key} must be a topic name or null, got {data[key]!r}")
        for key in ("rate_tolerance", "max_gap_seconds", "min_duration_seconds", "auto_approve", "review_floor",
                    "max_drop_rate", "sync_percentile", "max_sync_offset_seconds", "max_frozen_seconds",
                    "max_stamp_skew_seconds", "max_unaccounted_seconds"):
            if key in data and (not isinstance(data[key], (int, float)) or isinstance(data[key], bool) or data[key] < 0):
                raise PlanningError(f"requirement {key} must be a non-negative number, got {data[key]!r}")
        if "max_drop_rate" in data and data["max_drop_rate"] > 1:
            raise PlanningError(f"requirement max_drop_rate must be a fraction in [0, 1], got {data['max_drop_rate']!r}")
        if "sync_percentile" in data and not 0 < data["sync_percentile"] <= 100:
            raise PlanningError(f"requirement sync_percentile must be in (0, 100], got {data['sync_percentile']!r}")
        max_duration = data.get("max_duration_seconds")
        if max_duration is not None and (not isinstance(max_duration, (int, float)) or max_duration < 0):
            raise PlanningError(f"requirement max_duration_seconds must be a non-negative number or null, got {max_duration!r}")
        req = cls(**data)
        if not 0 <= req.review_floor <= req.auto_approve <= 1:
            raise PlanningError("requirements need 0 <= review_floor <= auto_approve <= 1")
        if req.max_duration_seconds is not None and req.max_duration_seconds < req.min_duration_seconds:
            raise PlanningError("requirements need min_duration_seconds <= max_duration_seconds")
        return req

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["required_topics"] = list(self.required_topics)
        out["expected_rates_hz"] = dict(self.expected_rates_hz)
        out["frozen_topics"] = list(self.frozen_topics)
        return out

    def outcome_for(self, score: float) -> QcOutcome:
        if score >= self.auto_approve:
            return QcOutcome.APPROVED
        if score >= self.review_floor:
            return QcOutcome.NEEDS_REVIEW
        return QcOutcome.REJECTED


def _labels(scene: str, sub_scene: str, skills: Iterable[str]) -> tuple[str, str, tuple[str, ...]]:
    scene = validate_id(scene, "scene")
    sub_scene = validate_label(sub_scene or "", "sub_scene")
    skills = tuple(validate_id(s, "skill") for s in skills)
    if not skills:
        raise PlanningError("at least one skill is required")
    if len(set(skills)) != len(skills):
        raise PlanningError(f"duplicate skills in {list(skills)}")
    check_label_limits(scene, sub_scene, skills)
    return scene, sub_scene, skills


@dataclass
class Order:
    order_id: str
    scene: str
    skills: tuple[str, ...]
    sub_scene: str = ""
    requirements: Requirements = field(default_factory=Requirements)
    priority: int = 0
    created_by: str = ""
    created_at: datetime = field(default_factory=utcnow)

    def __post_init__(self) -> None:
        self.order_id = validate_id(self.order_id, "order_id")
        self.scene, self.sub_scene, self.skills = _labels(self.scene, self.sub_scene, self.skills)
        if not isinstance(self.priority, int) or isinstance(self.priority, bool):
            raise PlanningError(f"priority must be an integer, got {self.priority!r}")


@dataclass
class Batch:
    batch_id: str
    order_id: str
    scene: str
    skills: tuple[str, ...]
    sub_scene: str = ""
    task_count: int = 1
    duration_seconds: float = 60.0
    topics: tuple[str, ...] = ()
    created_at: datetime = field(default_factory=utcnow)

    def __post_init__(self) -> None:
        self.batch_id = validate_id(self.batch_id, "batch_id")
        self.order_id = validate_id(self.order_id, "order_id")
        self.scene, self.sub_scene, self.skills = _labels(self.scene, self.sub_scene, self.skills)
        if not isinstance(self.task_count, int) or isinstance(self.task_count, bool) or self.task_count < 1:
            raise PlanningError(f"batch {self.batch_id}: task_count must be a positive integer")
        if not isinstance(self.duration_seconds, (int, float)) or self.duration_seconds <= 0:
            raise PlanningError(f"batch {self.batch_id}: duration_seconds must be positive")
        self.topics = tuple(self.topics)


@dataclass
class Task:
    task_id: str
    order_id: str
    batch_id: str
    scene: str
    skills: tuple[str, ...]
    sub_scene: str = ""
    duration_seconds: float = 60.0
    topics: tuple[str, ...] = ()
    priority: int = 0
    status: TaskStatus = TaskStatus.PENDING
    robot_id: str | None = None
    data_collector_id: str | None = None
    config_path: str | None = None
    dataset_path: str | None = None
    failure_reason: str | None = None
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)

    def __post_init__(self) -> None:
        self.task_id = validate_id(self.task_id, "task_id")
        self.status = TaskStatus(self.status)

    def transition(self, target: TaskStatus | str, *, reason: str | None = None, at: datetime | None = None) -> bool:
        """Move to ``target``. Returns False for a replay of the current state (nothing changes);
        raises IllegalTransitionError for a move the table forbids."""
        target = TaskStatus(target)
        if not check_transition(TASK_TRANSITIONS, "task", self.task_id, self.status, target):
            return False
        if target is TaskStatus.FAILED:
            self.failure_reason = reason or "unspecified failure"
        self.status = target
        self.updated_at = at or utcnow()
        return True


class RollupStatus(str, Enum):
    PENDING = "pending"
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


def rollup(statuses: Iterable[TaskStatus | str]) -> RollupStatus:
    """Order and batch status derive from their tasks; they are never stored on their own."""
    seen = [TaskStatus(s) for s in statuses]
    if not seen or all(s is TaskStatus.PENDING for s in seen):
        return RollupStatus.PENDING
    if not all(s.terminal for s in seen):
        return RollupStatus.ACTIVE
    if any(s is TaskStatus.FAILED for s in seen):
        return RollupStatus.FAILED
    if all(s is TaskStatus.CANCELLED for s in seen):
        return RollupStatus.CANCELLED
    return RollupStatus.COMPLETED


class ReviewDecisionFinal(DomainError):
    pass


@dataclass
class Dataset:
    """One recording of one task (dataset_id is the task id: a re-recording is a new task)."""

    dataset_id: str
    task_id: str
    status: DatasetStatus = DatasetStatus.RECORDED
    source_path: str | None = None
    cache_path: str | None = None
    dataset_digest: str | None = None
    size_bytes: int | None = None
    qc_score: float | None = None
    qc_outcome: QcOutcome | None = None
    reviewed_by: str | None = None
    review_comment: str | None = None
    cloud_uri: str | None = None
    last_upload_error: str | None = None  # why the last upload (or staging) failed; cleared once done
    updated_at: datetime = field(default_factory=utcnow)
    # What the robot reported with its EXECUTED event (None for recordings reported before manifests).
    manifest: RecordingManifest | None = None
    gate: EdgeGate | None = None
    publish_attempts: int = 0  # data-flow runs started to publish it (run-attempt counts live here, not in run history)

    def __post_init__(self) -> None:
        self.dataset_id = validate_id(self.dataset_id, "dataset_id")
        self.task_id = validate_id(self.task_id, "task_id")
        self.status = DatasetStatus(self.status)
        if self.qc_outcome is not None:
            self.qc_outcome = QcOutcome(self.qc_outcome)

    def _move(self, target: DatasetStatus) -> bool:
        changed = check_transition(DATASET_TRANSITIONS, "dataset", self.dataset_id, self.status, target)
        self.status = target
        self.updated_at = utcnow()
        return changed

    def mark_cached(self, cache_path: str, digest: str, size_bytes: int) -> bool:
        if self.status is DatasetStatus.CACHED and self.dataset_digest == digest:
            return False
        self._move(DatasetStatus.CACHED)
        self.cache_path, self.dataset_digest, self.size_bytes = cache_path, digest, size_bytes
        return True

    def mark_granted(self) -> bool:
        """RECORDED -> GRANTED: the robot may upload it (only a recording whose edge gate passed)."""
        if self.manifest is None:
            raise UploadRefused(f"dataset {self.dataset_id} has no manifest: the robot did not report its files")
        if self.gate is None or not self.gate.passed:
            raise UploadRefused(f"dataset {self.dataset_id} did not pass its edge gate: it never uses the uplink")
        if self.status is not DatasetStatus.RECORDED:
            raise UploadRefused(f"dataset {self.dataset_id} is {self.status.value}, not RECORDED: nothing to grant")
        return self._move(DatasetStatus.GRANTED)

    def grant_lapsed(self, reason: str | None = None) -> bool:
        """GRANTED -> RECORDED: the grant expired, or the staged files were refused (``reason``)."""
        if self.status is not DatasetStatus.GRANTED:
            return False
        self._move(DatasetStatus.RECORDED)
        if reason:
            self.last_upload_error = reason
        return True

    def mark_staged(self) -> bool:
        """GRANTED -> STAGED: every file is in the staging area with the SHA-256 the robot reported."""
        if self.status is DatasetStatus.STAGED:
            return False
        self._move(DatasetStatus.STAGED)
        self.last_upload_error = None
        return True

    def count_publish_attempt(self) -> int:
        """A data-flow run starts to ingest and publish it: the attempt's number (1, 2, ...)."""
        if self.status in (DatasetStatus.RECORDED, DatasetStatus.GRANTED):
            raise UploadRefused(f"dataset {self.dataset_id} is {self.status.value}: nothing is staged to publish")
        self.publish_attempts += 1
        self.updated_at = utcnow()
        return self.publish_attempts

    def record_inspection(self, score: float, outcome: QcOutcome) -> bool:
        """An automatic inspection result. A human decision is final: re-inspection after a review
        updates the score but never the outcome."""
        self._move(DatasetStatus.INSPECTED)
        self.qc_score = score
        if self.reviewed_by is None:
            self.qc_outcome = QcOutcome(outcome)
            return True
        return False

    def record_review(self, reviewer: str, approve: bool, comment: str = "") -> None:
        if self.reviewed_by is not None:
            raise ReviewDecisionFinal(f"dataset {self.dataset_id} was already reviewed by {self.reviewed_by}")
        if self.status is not DatasetStatus.INSPECTED or self.qc_outcome is not QcOutcome.NEEDS_REVIEW:
            raise DomainError(f"dataset {self.dataset_id} is not waiting for review (status {self.status.value})")
        self.reviewed_by = validate_id(reviewer, "reviewer")
        self.review_comment = comment
        self.qc_outcome = QcOutcome.APPROVED if approve else QcOutcome.REJECTED
        self.updated_at = utcnow()

    def start_upload(self) -> bool:
        if self.status is DatasetStatus.UPLOADING:
            return False
        if self.qc_outcome is not QcOutcome.APPROVED:
            raise DomainError(
                f"dataset {self.dataset_id} is not approved for upload (outcome {self.qc_outcome and self.qc_outcome.value})"
            )
        return self._move(DatasetStatus.UPLOADING)

    def mark_uploaded(self, cloud_uri: str, digest: str) -> bool:
        if self.status is DatasetStatus.UPLOADED:
            return False
        if self.dataset_digest and digest != self.dataset_digest:
            raise DomainError(f"dataset {self.dataset_id}: cloud digest {digest} != cached digest {self.dataset_digest}")
        self._move(DatasetStatus.UPLOADED)
        self.cloud_uri = cloud_uri
        self.last_upload_error = None
        return True

    def upload_failed(self, reason: str) -> bool:
        """An upload that failed for good: back to INSPECTED (so it can be retried), keeping why.
        Only an UPLOADING dataset can fail its upload: a late failure report never un-uploads one."""
        if not reason:
            raise DomainError(f"dataset {self.dataset_id}: an upload failure needs a reason")
        if self.status is DatasetStatus.INSPECTED and self.last_upload_error == reason:
            return False  # the same failure reported again
        if self.status is not DatasetStatus.UPLOADING:
            raise DomainError(
                f"dataset {self.dataset_id} is not uploading (status {self.status.value}): cannot record an upload failure"
            )
        self._move(DatasetStatus.INSPECTED)
        self.last_upload_error = reason
        return True

"""Tables of the control-plane store (SQLAlchemy 2 typed models).

Rows are persistence only; the repositories translate them to and from the domain entities.
Migrations in ``migrations/versions`` create exactly these tables; a test compares the two.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, text, true
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

ID = String(128)  # domain ids are at most 128 characters (domain.ids.MAX_ID_LENGTH)
# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity column.
BigIntegerPK = BigInteger().with_variant(Integer(), "sqlite")

# 0005: the one counter left is the event publisher's (see EventRow); task revisions are per robot.
EVENT_SEQ_COUNTER = "events"


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both backends (SQLite hands back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the store only keeps timezone-aware UTC times")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    pass


class RobotRow(Base):
    __tablename__ = "robots"
    __table_args__ = (Index("ix_robots_previous_token_hash", "previous_token_hash"),)

    robot_id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(256), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # SHA-256 hex; the token itself is never stored
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_seen_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    # 0007: rotation keeps the previous token valid until ``previous_token_expires_at`` (overlap);
    # revocation ends both until a new token is issued.
    previous_token_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    previous_token_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    tokens_revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    # 0005: this robot's sync revision. Every change of one of its tasks that the robot did not
    # report itself (assignment, cloud-side moves) takes the next value(s) here, holding this row's
    # lock until commit: a robot's pull cursor (tasks.revision) is ordered and never skips a late
    # commit, and robots never wait on each other (no global counter).
    task_revision: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class OrderRow(Base):
    __tablename__ = "orders"

    order_id: Mapped[str] = mapped_column(ID, primary_key=True)
    scene: Mapped[str] = mapped_column(ID)
    sub_scene: Mapped[str] = mapped_column(ID, default="")
    skills: Mapped[list[str]] = mapped_column(JSON)
    requirements: Mapped[dict[str, Any]] = mapped_column(JSON)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str] = mapped_column(String(256), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # 0002: batches of an order with auto-approval are approved at planning time (today's flow).
    auto_approve_batches: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # 0002: the recording config template of the order's tasks (configs/recording/<name>.yaml).
    recording_template: Mapped[str] = mapped_column(String(64), default="default", server_default="default")


class BatchRow(Base):
    __tablename__ = "batches"

    batch_id: Mapped[str] = mapped_column(ID, primary_key=True)
    order_id: Mapped[str] = mapped_column(ID, ForeignKey("orders.order_id"), index=True)
    scene: Mapped[str] = mapped_column(ID)
    sub_scene: Mapped[str] = mapped_column(ID, default="")
    skills: Mapped[list[str]] = mapped_column(JSON)
    task_count: Mapped[int] = mapped_column(Integer)
    duration_seconds: Mapped[float] = mapped_column(Float)
    topics: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # 0002: domain.batch_review.BatchReviewStatus; only approved batches are dispatched.
    review_status: Mapped[str] = mapped_column(String(16), default="approved", server_default="approved")


class TaskRow(Base):
    __tablename__ = "tasks"
    __table_args__ = (
        # The edge pull: WHERE robot_id = :r AND revision > :after ORDER BY revision LIMIT :n.
        Index("ix_tasks_robot_revision", "robot_id", "revision"),
        # 0002: dataset search by scene / sub-scene.
        Index("ix_tasks_scene_sub_scene", "scene", "sub_scene"),
    )

    task_id: Mapped[str] = mapped_column(ID, primary_key=True)
    order_id: Mapped[str] = mapped_column(ID, ForeignKey("orders.order_id"), index=True)
    batch_id: Mapped[str] = mapped_column(ID, ForeignKey("batches.batch_id"), index=True)
    scene: Mapped[str] = mapped_column(ID)
    sub_scene: Mapped[str] = mapped_column(ID, default="")
    skills: Mapped[list[str]] = mapped_column(JSON)
    duration_seconds: Mapped[float] = mapped_column(Float)
    topics: Mapped[list[str]] = mapped_column(JSON)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), index=True)
    robot_id: Mapped[str | None] = mapped_column(ID, ForeignKey("robots.robot_id"), nullable=True)
    data_collector_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    config_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    dataset_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    failure_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # 0005: the task's robot's sync revision at its last change (robots.task_revision); 0 while
    # the task is unassigned (robots never see it then).
    revision: Mapped[int] = mapped_column(BigInteger)


class EventRow(Base):
    """Status events. 0005: two numbers per event.

    ``id`` is taken at insert, by concurrent transactions (robots push without waiting on each
    other), so ids may commit out of order. ``seq`` is the task-status sensor's cursor: NULL until
    the *publisher* (``EventRepository.publish``, run under the ``events`` counter-row lock before
    every read of the feed) hands committed, unpublished events the next consecutive values in id
    order, in one transaction. Publishers are serialized, so seqs become visible in order and
    without holes: ``WHERE seq > :cursor`` never skips or repeats an event. Events of one task keep
    their order: every writer of a task holds the task's row lock (or its order's, unassigned),
    so its events' ids follow commit order.
    """

    __tablename__ = "events"
    __table_args__ = (
        # The sensor feed: WHERE seq > :after ORDER BY seq LIMIT :n walks this index.
        Index("ux_events_seq", "seq", unique=True),
        # The publisher: WHERE seq IS NULL ORDER BY id -- only unpublished rows are in it.
        Index("ix_events_unpublished", "id", postgresql_where=text("seq IS NULL"), sqlite_where=text("seq IS NULL")),
        # 0008: event ids are unique per robot (one robot cannot take another's next event id).
        Index("ux_events_robot_event", "robot_id", "event_id", unique=True),
    )

    id: Mapped[int] = mapped_column(BigIntegerPK, primary_key=True, autoincrement=True)
    seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    event_id: Mapped[str] = mapped_column(ID)
    task_id: Mapped[str] = mapped_column(ID, ForeignKey("tasks.task_id"), index=True)
    robot_id: Mapped[str | None] = mapped_column(ID, nullable=True)  # None for a cloud-side move of an unassigned task
    status: Mapped[str] = mapped_column(String(16))
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime())
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())
    data: Mapped[dict[str, Any]] = mapped_column(JSON)


class DatasetRow(Base):
    __tablename__ = "datasets"
    # 0002: dataset search pages in creation order (and filters by --since).
    __table_args__ = (Index("ix_datasets_created_at", "created_at", "dataset_id"),)

    dataset_id: Mapped[str] = mapped_column(ID, primary_key=True)
    task_id: Mapped[str] = mapped_column(ID, ForeignKey("tasks.task_id"), unique=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    source_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    cache_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    dataset_digest: Mapped[str | None] = mapped_column(String(128), nullable=True)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    qc_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    qc_outcome: Mapped[str | None] = mapped_column(String(16), nullable=True, index=True)
    inspection_report: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    reviewed_by: Mapped[str | None] = mapped_column(ID, nullable=True)
    review_comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    cloud_uri: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # 0004: why the last upload failed for good (None once uploaded, or if no upload ever failed).
    last_upload_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # 0009: what the robot reported (validated manifest and edge gate; NULL for older recordings)
    # and how many data-flow runs started to publish it.
    recording_format: Mapped[str | None] = mapped_column(String(16), nullable=True)
    manifest: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    gate: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    gate_passed: Mapped[bool | None] = mapped_column(Boolean, nullable=True)  # gate.passed, for the upload queue's WHERE
    publish_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class AuditRow(Base):
    """0002: who changed what, when (batch review today). Append-only."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_entity", "entity_kind", "entity_id"),)

    seq: Mapped[int] = mapped_column(BigIntegerPK, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    actor: Mapped[str] = mapped_column(String(256))
    action: Mapped[str] = mapped_column(String(64))
    entity_kind: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str] = mapped_column(ID)
    order_id: Mapped[str | None] = mapped_column(ID, nullable=True, index=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON)


class EdgeCacheUsageRow(Base):
    """0003: the last disk-usage report of each edge cache (``EdgeCache.disk_usage()``), one row per cache;
    0011: a robot's edge agent reports it, so ``cache_id`` is the robot's id."""

    __tablename__ = "edge_cache_usage"

    cache_id: Mapped[str] = mapped_column(ID, primary_key=True)
    used_bytes: Mapped[int] = mapped_column(BigInteger)
    quota_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # None: no quota
    pressure: Mapped[bool] = mapped_column(Boolean)
    datasets: Mapped[dict[str, Any]] = mapped_column(JSON)  # {state: {"count": n, "bytes": b}}
    report: Mapped[dict[str, Any]] = mapped_column(JSON)  # the rest of the report (policy, filesystem, ...)
    reported_at: Mapped[datetime] = mapped_column(UtcDateTime())


class UploadGrantRow(Base):
    """0009: permission for a robot to upload one recording until ``expires_at`` (domain.UploadGrant)."""

    __tablename__ = "upload_grants"
    __table_args__ = (
        Index("ix_upload_grants_dataset", "dataset_id", "granted_at"),
        Index("ix_upload_grants_status_expires", "status", "expires_at"),
    )

    grant_id: Mapped[str] = mapped_column(ID, primary_key=True)
    dataset_id: Mapped[str] = mapped_column(ID, ForeignKey("datasets.dataset_id"))
    robot_id: Mapped[str] = mapped_column(ID, ForeignKey("robots.robot_id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    granted_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    upload_ids: Mapped[dict[str, str]] = mapped_column(JSON)  # manifest file name -> multipart upload id


class RobotUplinkRow(Base):
    """0009: the uplink a robot reports (``PUT /edge/uplink``): bandwidth and upload windows."""

    __tablename__ = "robot_uplinks"

    robot_id: Mapped[str] = mapped_column(ID, ForeignKey("robots.robot_id"), primary_key=True)
    mbps: Mapped[float | None] = mapped_column(Float, nullable=True)
    windows: Mapped[list[dict[str, str]]] = mapped_column(JSON)
    timezone: Mapped[str] = mapped_column(String(64))
    reported_at: Mapped[datetime] = mapped_column(UtcDateTime())


class RobotRecorderRow(Base):
    """0010: what a robot last reported of its recorder (``PUT /edge/recorder``)."""

    __tablename__ = "robot_recorders"

    robot_id: Mapped[str] = mapped_column(ID, ForeignKey("robots.robot_id"), primary_key=True)
    report: Mapped[dict[str, Any]] = mapped_column(JSON)
    reported_at: Mapped[datetime] = mapped_column(UtcDateTime())


class AccountRow(Base):
    """0006: people and services that act on the control plane. ``secret_hash``: scrypt of a
    password (``kind`` user) or SHA-256 of a service token (``kind`` service); NULL for SSO
    accounts, which only pin a role to an identity the trusted proxy vouches for."""

    __tablename__ = "accounts"

    name: Mapped[str] = mapped_column(ID, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    role: Mapped[str] = mapped_column(String(16))
    secret_hash: Mapped[str | None] = mapped_column(String(256), nullable=True, unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    disabled_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class SessionRow(Base):
    """0006: signed-in browser sessions. The cookie holds a random id; only its SHA-256 is stored."""

    __tablename__ = "sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    account: Mapped[str] = mapped_column(ID, ForeignKey("accounts.name", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())


class RevisionCounterRow(Base):
    """One row per counter. 0005: only ``events`` (the last published event seq); its row lock
    serializes the event publisher and nothing else."""

    __tablename__ = "revision_counter"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)

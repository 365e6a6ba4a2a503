"""Initial control-plane schema: robots, orders, batches, tasks, events, datasets, revision counter.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.String(128)
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "robots",
        sa.Column("robot_id", ID, primary_key=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_seen_at", TS, nullable=True),
    )
    op.create_table(
        "orders",
        sa.Column("order_id", ID, primary_key=True),
        sa.Column("scene", ID, nullable=False),
        sa.Column("sub_scene", ID, nullable=False),
        sa.Column("skills", sa.JSON(), nullable=False),
        sa.Column("requirements", sa.JSON(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "batches",
        sa.Column("batch_id", ID, primary_key=True),
        sa.Column("order_id", ID, sa.ForeignKey("orders.order_id"), nullable=False),
        sa.Column("scene", ID, nullable=False),
        sa.Column("sub_scene", ID, nullable=False),
        sa.Column("skills", sa.JSON(), nullable=False),
        sa.Column("task_count", sa.Integer(), nullable=False),
        sa.Column("duration_seconds", sa.Float(), nullable=False),
        sa.Column("topics", sa.JSON(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_batches_order_id", "batches", ["order_id"])
    op.create_table(
        "tasks",
        sa.Column("task_id", ID, primary_key=True),
        sa.Column("order_id", ID, sa.ForeignKey("orders.order_id"), nullable=False),
        sa.Column("batch_id", ID, sa.ForeignKey("batches.batch_id"), nullable=False),
        sa.Column("scene", ID, nullable=False),
        sa.Column("sub_scene", ID, nullable=False),
        sa.Column("skills", sa.JSON(), nullable=False),
        sa.Column("duration_seconds", sa.Float(), nullable=False),
        sa.Column("topics", sa.JSON(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("robot_id", ID, sa.ForeignKey("robots.robot_id"), nullable=True),
        sa.Column("data_collector_id", sa.String(256), nullable=True),
        sa.Column("config_path", sa.Text(), nullable=True),
        sa.Column("dataset_path", sa.Text(), nullable=True),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_tasks_order_id", "tasks", ["order_id"])
    op.create_index("ix_tasks_batch_id", "tasks", ["batch_id"])
    op.create_index("ix_tasks_status", "tasks", ["status"])
    op.create_index("ix_tasks_robot_revision", "tasks", ["robot_id", "revision"])
    op.create_table(
        "events",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("event_id", ID, nullable=False, unique=True),
        sa.Column("task_id", ID, sa.ForeignKey("tasks.task_id"), nullable=False),
        sa.Column("robot_id", ID, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
    )
    op.create_index("ix_events_task_id", "events", ["task_id"])
    op.create_table(
        "datasets",
        sa.Column("dataset_id", ID, primary_key=True),
        sa.Column("task_id", ID, sa.ForeignKey("tasks.task_id"), nullable=False, unique=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("source_path", sa.Text(), nullable=True),
        sa.Column("cache_path", sa.Text(), nullable=True),
        sa.Column("dataset_digest", sa.String(128), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("qc_score", sa.Float(), nullable=True),
        sa.Column("qc_outcome", sa.String(16), nullable=True),
        sa.Column("inspection_report", sa.JSON(), nullable=True),
        sa.Column("reviewed_by", ID, nullable=True),
        sa.Column("review_comment", sa.Text(), nullable=True),
        sa.Column("cloud_uri", sa.Text(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_index("ix_datasets_status", "datasets", ["status"])
    op.create_index("ix_datasets_qc_outcome", "datasets", ["qc_outcome"])
    counter = op.create_table(
        "revision_counter",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("value", sa.BigInteger(), nullable=False),
    )
    op.bulk_insert(counter, [{"name": "tasks", "value": 0}])


def downgrade() -> None:
    for table in ("revision_counter", "datasets", "events", "tasks", "batches", "orders", "robots"):
        op.drop_table(table)

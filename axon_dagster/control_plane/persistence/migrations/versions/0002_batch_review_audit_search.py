"""Batch review status, order review policy and recording template, audit log, search indexes.

Revision ID: 0002_batch_review_audit_search
Revises: 0001_initial
Create Date: 2026-11-26

Existing rows keep today's flow: batches become ``approved``, orders auto-approve their batches
and use the ``default`` recording template.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_batch_review_audit_search"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

ID = sa.String(128)
TS = sa.DateTime(timezone=True)
BigIntegerPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("auto_approve_batches", sa.Boolean(), nullable=False, server_default=sa.true()))
        batch.add_column(sa.Column("recording_template", sa.String(64), nullable=False, server_default="default"))
    with op.batch_alter_table("batches") as batch:
        batch.add_column(sa.Column("review_status", sa.String(16), nullable=False, server_default="approved"))
    op.create_index("ix_tasks_scene_sub_scene", "tasks", ["scene", "sub_scene"])
    op.create_index("ix_datasets_created_at", "datasets", ["created_at", "dataset_id"])
    op.create_table(
        "audit_log",
        sa.Column("seq", BigIntegerPK, primary_key=True, autoincrement=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("entity_kind", sa.String(32), nullable=False),
        sa.Column("entity_id", ID, nullable=False),
        sa.Column("order_id", ID, nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
    )
    op.create_index("ix_audit_log_entity", "audit_log", ["entity_kind", "entity_id"])
    op.create_index("ix_audit_log_order_id", "audit_log", ["order_id"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_order_id", table_name="audit_log")
    op.drop_index("ix_audit_log_entity", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_index("ix_datasets_created_at", table_name="datasets")
    op.drop_index("ix_tasks_scene_sub_scene", table_name="tasks")
    with op.batch_alter_table("batches") as batch:
        batch.drop_column("review_status")
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("recording_template")
        batch.drop_column("auto_approve_batches")

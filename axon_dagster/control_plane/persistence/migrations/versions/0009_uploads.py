"""Robots upload their own recordings (issue 13): manifests, edge gates, upload grants, uplinks.

Revision ID: 0009_uploads
Revises: 0008_event_ids_per_robot
Create Date: 2026-12-02

``datasets`` gains ``recording_format``, ``manifest`` and ``gate`` (what the robot reported with
its EXECUTED event; NULL for existing rows) and ``publish_attempts`` (0). New tables
``upload_grants`` and ``robot_uplinks``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_uploads"
down_revision = "0008_event_ids_per_robot"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
ID = sa.String(128)


def upgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.add_column(sa.Column("recording_format", sa.String(16), nullable=True))
        batch.add_column(sa.Column("manifest", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("gate", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("gate_passed", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("publish_attempts", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "upload_grants",
        sa.Column("grant_id", ID, primary_key=True),
        sa.Column("dataset_id", ID, sa.ForeignKey("datasets.dataset_id"), nullable=False),
        sa.Column("robot_id", ID, sa.ForeignKey("robots.robot_id"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("granted_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("upload_ids", sa.JSON(), nullable=False),
    )
    op.create_index("ix_upload_grants_dataset", "upload_grants", ["dataset_id", "granted_at"])
    op.create_index("ix_upload_grants_status_expires", "upload_grants", ["status", "expires_at"])
    op.create_index("ix_upload_grants_robot_id", "upload_grants", ["robot_id"])
    op.create_table(
        "robot_uplinks",
        sa.Column("robot_id", ID, sa.ForeignKey("robots.robot_id"), primary_key=True),
        sa.Column("mbps", sa.Float(), nullable=True),
        sa.Column("windows", sa.JSON(), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("reported_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("robot_uplinks")
    op.drop_index("ix_upload_grants_robot_id", table_name="upload_grants")
    op.drop_index("ix_upload_grants_status_expires", table_name="upload_grants")
    op.drop_index("ix_upload_grants_dataset", table_name="upload_grants")
    op.drop_table("upload_grants")
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("publish_attempts")
        batch.drop_column("gate_passed")
        batch.drop_column("gate")
        batch.drop_column("manifest")
        batch.drop_column("recording_format")

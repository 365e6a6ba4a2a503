"""What each robot last reported of its recorder (``PUT /edge/recorder``).

Revision ID: 0010_robot_recorders
Revises: 0009_uploads
Create Date: 2026-12-02

New table ``robot_recorders``: one row per robot, the validated report (JSON) and when it came.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_robot_recorders"
down_revision = "0009_uploads"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "robot_recorders",
        sa.Column("robot_id", sa.String(128), sa.ForeignKey("robots.robot_id"), primary_key=True),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("robot_recorders")

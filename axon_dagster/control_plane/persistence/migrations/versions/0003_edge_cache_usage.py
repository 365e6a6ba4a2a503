"""Edge-cache disk usage reported to the control plane: one row per edge cache.

Revision ID: 0003_edge_cache_usage
Revises: 0002_batch_review_audit_search
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_edge_cache_usage"
down_revision = "0002_batch_review_audit_search"
branch_labels = None
depends_on = None

ID = sa.String(128)
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "edge_cache_usage",
        sa.Column("cache_id", ID, primary_key=True),
        sa.Column("used_bytes", sa.BigInteger(), nullable=False),
        sa.Column("quota_bytes", sa.BigInteger(), nullable=True),
        sa.Column("pressure", sa.Boolean(), nullable=False),
        sa.Column("datasets", sa.JSON(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("reported_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("edge_cache_usage")

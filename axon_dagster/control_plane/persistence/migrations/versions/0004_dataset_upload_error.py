"""Why a dataset's last upload failed: ``datasets.last_upload_error``.

Revision ID: 0004_dataset_upload_error
Revises: 0003_edge_cache_usage
Create Date: 2026-11-26

Existing rows get NULL (no upload failure recorded).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_dataset_upload_error"
down_revision = "0003_edge_cache_usage"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.add_column(sa.Column("last_upload_error", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("last_upload_error")

"""Robot tokens can be rotated (with an overlap) and revoked.

Revision ID: 0007_robot_token_rotation
Revises: 0006_accounts_sessions
Create Date: 2026-12-02

``robots.previous_token_hash`` (SHA-256 of the token a rotation replaced, valid until
``previous_token_expires_at``) and ``robots.tokens_revoked_at`` (no token of the robot is accepted
until a new one is issued). Existing robots keep their one token, unrevoked.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_robot_token_rotation"
down_revision = "0006_accounts_sessions"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("robots", sa.Column("previous_token_hash", sa.String(64), nullable=True))
    op.add_column("robots", sa.Column("previous_token_expires_at", TS, nullable=True))
    op.add_column("robots", sa.Column("tokens_revoked_at", TS, nullable=True))
    op.create_index("ix_robots_previous_token_hash", "robots", ["previous_token_hash"])


def downgrade() -> None:
    op.drop_index("ix_robots_previous_token_hash", table_name="robots")
    with op.batch_alter_table("robots") as batch:
        batch.drop_column("tokens_revoked_at")
        batch.drop_column("previous_token_expires_at")
        batch.drop_column("previous_token_hash")

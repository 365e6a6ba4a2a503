"""Edge-cache usage is reported by each robot's edge agent, under its own robot id.

Revision ID: 0011_edge_cache_usage_per_robot
Revises: 0010_robot_recorders
Create Date: 2026-12-02

Before, the Dagster code location's retention job reported a directory on the cloud host under an
operator-chosen cache id (``default`` unless set): a cache no robot wrote to. Those rows say nothing
about any robot, so rows whose ``cache_id`` names no registered robot are dropped; from now on the
``cache_id`` of ``edge_cache_usage`` is the reporting robot's id (``PUT /api/v1/edge/cache-usage``).
Downgrade keeps the robots' rows (they fit the old shape).
"""

from __future__ import annotations

from alembic import op

revision = "0011_edge_cache_usage_per_robot"
down_revision = "0010_robot_recorders"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DELETE FROM edge_cache_usage WHERE cache_id NOT IN (SELECT robot_id FROM robots)")


def downgrade() -> None:
    pass

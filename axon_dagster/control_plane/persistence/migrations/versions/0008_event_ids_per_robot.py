"""Event ids are unique per robot, not across the fleet: one robot can no longer take another
robot's next event id (and so make the other's real event a "duplicate").

Revision ID: 0008_event_ids_per_robot
Revises: 0007_robot_token_rotation
Create Date: 2026-12-02

The table-wide unique constraint on ``events.event_id`` goes; a unique index on
``(robot_id, event_id)`` comes. Existing rows satisfy it (they were unique on ``event_id`` alone).
"""

from __future__ import annotations

from alembic import op

revision = "0008_event_ids_per_robot"
down_revision = "0007_robot_token_rotation"
branch_labels = None
depends_on = None

# 0001 created the constraint unnamed: PostgreSQL named it; SQLite gets a name to drop it by.
_SQLITE_NAMES = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("events", naming_convention=_SQLITE_NAMES, recreate="always") as batch:
            batch.drop_constraint("uq_events_event_id", type_="unique")
    else:
        op.drop_constraint("events_event_id_key", "events", type_="unique")
    op.create_index("ux_events_robot_event", "events", ["robot_id", "event_id"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_events_robot_event", table_name="events")
    with op.batch_alter_table("events") as batch:
        batch.create_unique_constraint("events_event_id_key", ["event_id"])

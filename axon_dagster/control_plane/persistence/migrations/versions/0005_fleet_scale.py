"""Writes that do not conflict stop serializing: per-robot task revisions, published event seqs.

Revision ID: 0005_fleet_scale
Revises: 0004_dataset_upload_error
Create Date: 2026-12-02

- ``robots.task_revision``: each robot's own sync counter. Every robot starts at the old global
  counter's value, so a cursor any robot already holds is never ahead of its new revisions.
- ``events.seq`` becomes ``events.id`` (taken at insert); a new nullable ``events.seq`` is given
  by the publisher. Existing events keep their numbers (``seq = id``), so the sensor's stored
  cursor stays valid.
- ``revision_counter``: the ``tasks`` row (the global write lock) goes; ``events`` (the last
  published seq) comes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_fleet_scale"
down_revision = "0004_dataset_upload_error"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("robots", sa.Column("task_revision", sa.BigInteger(), nullable=False, server_default="0"))
    op.execute("UPDATE robots SET task_revision = COALESCE((SELECT value FROM revision_counter WHERE name = 'tasks'), 0)")
    # Same statement on SQLite (3.25+) and PostgreSQL; the identity / rowid alias stays with it.
    op.execute("ALTER TABLE events RENAME COLUMN seq TO id")
    op.add_column("events", sa.Column("seq", sa.BigInteger(), nullable=True))
    op.execute("UPDATE events SET seq = id")
    op.create_index("ux_events_seq", "events", ["seq"], unique=True)
    op.create_index(
        "ix_events_unpublished", "events", ["id"], postgresql_where=sa.text("seq IS NULL"), sqlite_where=sa.text("seq IS NULL")
    )
    op.execute("DELETE FROM revision_counter WHERE name = 'tasks'")
    op.execute("INSERT INTO revision_counter (name, value) SELECT 'events', COALESCE(MAX(seq), 0) FROM events")


def downgrade() -> None:
    op.execute("DELETE FROM revision_counter WHERE name = 'events'")
    op.execute("INSERT INTO revision_counter (name, value) SELECT 'tasks', COALESCE(MAX(task_revision), 0) FROM robots")
    op.drop_index("ix_events_unpublished", "events")
    op.drop_index("ux_events_seq", "events")
    # Events keep their insert ids as their seq (the pre-0005 numbering).
    with op.batch_alter_table("events") as batch:
        batch.drop_column("seq")
    op.execute("ALTER TABLE events RENAME COLUMN id TO seq")
    with op.batch_alter_table("robots") as batch:
        batch.drop_column("task_revision")

"""Migration 0011 on SQLite and PostgreSQL: the usage rows the retired Dagster retention job wrote
(a cloud-host directory under an operator-chosen id such as ``default``) are dropped; rows that name
a registered robot are kept and keep working."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import text

from axon_dagster.control_plane import list_cache_usage
from axon_dagster.control_plane.persistence import UnitOfWorkFactory, make_engine, upgrade


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'old.db'}"
    return request.getfixturevalue("postgres_url")


def test_rows_that_name_no_robot_are_dropped_and_robots_rows_kept(empty_database_url):
    upgrade(empty_database_url, "0010_robot_recorders")
    engine = make_engine(empty_database_url)
    now = datetime(2026, 12, 1, tzinfo=timezone.utc)
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO robots (robot_id, name, created_at, token_hash) VALUES ('robot-1', '', :t, 'h')"), {"t": now})
            for cache_id in ("default", "site-a", "robot-1"):
                conn.execute(
                    text("INSERT INTO edge_cache_usage (cache_id, used_bytes, quota_bytes, pressure, datasets, report, reported_at) "
                         "VALUES (:c, 5, NULL, :p, :d, :r, :t)"),
                    {"c": cache_id, "p": False, "d": '{"cached": {"count": 1, "bytes": 5}}', "r": "{}", "t": now},
                )
        upgrade(empty_database_url)
        [row] = list_cache_usage(UnitOfWorkFactory(engine)())
        assert (row.robot_id, row.cache_id, row.used_bytes) == ("robot-1", "robot-1", 5)
    finally:
        engine.dispose()

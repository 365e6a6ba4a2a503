"""Fixtures of the control-plane suite: a migrated store on SQLite and on a real PostgreSQL
(``database_url`` is parametrized over both), units of work, and the API served by uvicorn
on a free localhost port."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from sqlalchemy import func, select, text

try:
    from tests.pg_fixture import _migrated_postgres_template, migrated_postgres_url, postgres_server, postgres_url  # noqa: F401
except ModuleNotFoundError:  # pytest started without the repository root on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.pg_fixture import _migrated_postgres_template, migrated_postgres_url, postgres_server, postgres_url  # noqa: F401

from axon_dagster.api.server import ApiThread
from axon_dagster.control_plane.persistence import UnitOfWorkFactory, make_engine, upgrade
from axon_dagster.control_plane.persistence.schema import Base


@pytest.fixture(scope="session")
def _migrated_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def _suite_postgres_url(postgres_server: Any, _migrated_postgres_template: str) -> str:
    return postgres_server.create_database(template=_migrated_postgres_template)


def _empty_postgres(url: str) -> str:
    """Empty every table of the suite's database: much cheaper than CREATE DATABASE per test."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("SET LOCAL lock_timeout = '10s'"))  # a leaked connection fails fast, not hangs
            tables = ", ".join(t for t in Base.metadata.tables if t != "revision_counter")
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
            conn.execute(text("UPDATE revision_counter SET value = 0"))
    finally:
        engine.dispose()
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, _migrated_sqlite_template: Path) -> str:
    """An empty database at the newest schema, on each backend in turn."""
    if request.param == "sqlite":
        target = tmp_path / "control-plane.db"
        shutil.copyfile(_migrated_sqlite_template, target)
        return f"sqlite:///{target}"
    return _empty_postgres(request.getfixturevalue("_suite_postgres_url"))


@pytest.fixture
def sqlite_url(tmp_path: Path, _migrated_sqlite_template: Path) -> str:
    target = tmp_path / "control-plane.db"
    shutil.copyfile(_migrated_sqlite_template, target)
    return f"sqlite:///{target}"


@pytest.fixture
def uow_factory(database_url: str) -> Iterator[UnitOfWorkFactory]:
    engine = make_engine(database_url)
    try:
        yield UnitOfWorkFactory(engine)
    finally:
        engine.dispose()


@pytest.fixture
def row_counts(database_url: str) -> Iterator[Callable[[], dict[str, int]]]:
    """Row count of every table, to prove a refused request wrote nothing."""
    engine = make_engine(database_url)

    def counts() -> dict[str, int]:
        with engine.connect() as conn:
            return {name: conn.execute(select(func.count()).select_from(table)).scalar_one() for name, table in Base.metadata.tables.items()}

    try:
        yield counts
    finally:
        engine.dispose()


@pytest.fixture
def serve_app() -> Iterator[Callable[[Any], ApiThread]]:
    """Serve an app with uvicorn on a free localhost port (real HTTP); stopped after the test."""
    started: list[ApiThread] = []

    def start(app: Any) -> ApiThread:
        server = ApiThread(app).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()

"""Reusable PostgreSQL fixtures (a pytest plugin): a real server started by the tests themselves.

Use from a suite with ``pytest_plugins = ["tests.pg_fixture"]`` in the root conftest, or import
the fixtures into a suite's conftest. If PostgreSQL cannot start, the fixture fails with the
reason; it never skips silently.

- ``postgres_server`` (session): the running :class:`EphemeralPostgres`.
- ``postgres_url`` (function): URL of a fresh, empty database.
- ``migrated_postgres_url`` (function): URL of a fresh database at the newest control-plane
  schema (a copy of a template migrated once per session, so it is cheap).
"""

from __future__ import annotations

from typing import Iterator

import pytest

from axon_dagster.control_plane.persistence.ephemeral_postgres import EphemeralPostgres

_TEMPLATE = "axon_migrated_template"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[EphemeralPostgres]:
    server = EphemeralPostgres().start()  # raises PostgresUnavailableError with the reason
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def _migrated_postgres_template(postgres_server: EphemeralPostgres) -> str:
    from axon_dagster.control_plane.persistence import upgrade

    upgrade(postgres_server.create_database(_TEMPLATE))
    return _TEMPLATE


@pytest.fixture
def postgres_url(postgres_server: EphemeralPostgres) -> str:
    return postgres_server.create_database()


@pytest.fixture
def migrated_postgres_url(postgres_server: EphemeralPostgres, _migrated_postgres_template: str) -> str:
    return postgres_server.create_database(template=_migrated_postgres_template)

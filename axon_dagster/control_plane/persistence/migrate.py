"""Schema migrations, configured in code so no ``alembic.ini`` has to travel with the package."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from .engine import make_engine

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


class SchemaOutOfDateError(RuntimeError):
    """The database is not at the schema the code expects: run ``axon-dagster db upgrade``."""


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation: a literal '%' (e.g. in an encoded password) must be doubled.
    cfg.set_main_option("sqlalchemy.url", make_url(url).render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> str:
    """Bring the database at ``url`` to ``revision`` (default: the newest). Idempotent.
    Returns the revision the database is at afterwards."""
    safe_url = make_url(url).render_as_string(hide_password=True)
    log.info("migrating %s to %s", safe_url, revision)
    command.upgrade(alembic_config(url), revision)
    engine = make_engine(url)
    try:
        current = current_revision(engine)
    finally:
        engine.dispose()
    log.info("database %s is at schema revision %s", safe_url, current)
    return current or ""


def head_revision() -> str:
    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    assert head is not None, "the migrations directory has no revisions"
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def check_schema(engine: Engine) -> None:
    """Raise :class:`SchemaOutOfDateError` unless the database is at the newest revision."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise SchemaOutOfDateError(
            f"database {engine.url.render_as_string(hide_password=True)} is at schema revision {current or 'none'}, "
            f"the code needs {head}: run `axon-dagster db upgrade` first"
        )

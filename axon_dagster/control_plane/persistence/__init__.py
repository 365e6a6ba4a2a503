"""Control-plane persistence: SQLAlchemy 2 + Alembic; SQLite by default, PostgreSQL by URL.

The repositories are the only code that knows the tables (``schema``): one module per area
(``fleet_``, ``order_``, ``task_``, ``dataset_``, ``identity_``, ``review_``, ``upload_repositories``),
the records they return in ``records``; ``unit_of_work`` opens one transaction over all of them;
``migrate`` runs the Alembic migrations in ``migrations/versions``."""

from .engine import is_sqlite, make_engine, ping, sqlite_directory
from .migrate import SchemaOutOfDateError, check_schema, current_revision, head_revision, upgrade
from .dataset_repositories import EdgeCacheUsageRecord
from .records import DatasetRecord, EventRecord, RobotRecord, TaskFilter, TaskRecord
from .unit_of_work import SqlAlchemyUnitOfWork, UnitOfWorkFactory

__all__ = [
    "DatasetRecord",
    "EdgeCacheUsageRecord",
    "EventRecord",
    "RobotRecord",
    "SchemaOutOfDateError",
    "SqlAlchemyUnitOfWork",
    "TaskFilter",
    "TaskRecord",
    "UnitOfWorkFactory",
    "check_schema",
    "current_revision",
    "head_revision",
    "is_sqlite",
    "make_engine",
    "ping",
    "sqlite_directory",
    "upgrade",
]

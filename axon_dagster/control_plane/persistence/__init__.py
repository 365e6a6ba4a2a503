"""Control-plane persistence: SQLAlchemy 2 + Alembic; SQLite by default, PostgreSQL by URL."""

from .engine import is_sqlite, make_engine
from .migrate import SchemaOutOfDateError, check_schema, current_revision, head_revision, upgrade
from .repositories import DatasetRecord, EdgeCacheUsageRecord, EventRecord, RobotRecord, TaskFilter, TaskRecord
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
    "upgrade",
]

"""Unit of work: one transaction, the repositories that work inside it, explicit commit.

Write transactions are serialized: on SQLite by ``BEGIN IMMEDIATE``, on PostgreSQL by locking the
revision-counter row first. That is SQLite's single-writer model on both backends, and it is what
makes the two cursors safe: task revisions and event ``seq`` values become visible in the order
they were handed out, so a robot's pull or the sensor's tick never skips a late commit.
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Callable

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from .engine import SQLITE_BEGIN_OPTION
from .repositories import (
    BatchRepository,
    DatasetRepository,
    EdgeCacheUsageRepository,
    EventRepository,
    OrderRepository,
    RevisionCounter,
    RobotRepository,
    TaskRepository,
)
from .review_repositories import AuditRepository, BatchReviewRepository, DatasetSearchRepository
from .schema import TASK_REVISION_COUNTER, RevisionCounterRow

log = logging.getLogger(__name__)


class SqlAlchemyUnitOfWork:
    """Use ``with uow.reading():`` or ``with uow.writing():``; call ``commit()`` to keep changes
    (leaving the block without it rolls back)."""

    robots: RobotRepository
    orders: OrderRepository
    batches: BatchRepository
    tasks: TaskRepository
    events: EventRepository
    datasets: DatasetRepository
    revisions: RevisionCounter
    batch_review: BatchReviewRepository
    audit: AuditRepository
    dataset_search: DatasetSearchRepository
    edge_caches: EdgeCacheUsageRepository

    def __init__(self, session_factory: Callable[[], Session]):
        self._session_factory = session_factory
        self._session: Session | None = None
        self._write = False

    def reading(self) -> "SqlAlchemyUnitOfWork":
        self._write = False
        return self

    def writing(self) -> "SqlAlchemyUnitOfWork":
        self._write = True
        return self

    def __enter__(self) -> "SqlAlchemyUnitOfWork":
        if self._session is not None:
            raise RuntimeError("unit of work is already open; use one per request")
        session = self._session_factory()
        self._session = session
        dialect = session.get_bind().dialect.name
        if self._write:
            if dialect == "sqlite":
                session.connection(execution_options={SQLITE_BEGIN_OPTION: "IMMEDIATE"})
            else:
                session.execute(
                    select(RevisionCounterRow.value).where(RevisionCounterRow.name == TASK_REVISION_COUNTER).with_for_update()
                )
        self.robots = RobotRepository(session)
        self.orders = OrderRepository(session)
        self.batches = BatchRepository(session)
        self.revisions = RevisionCounter(session)
        self.tasks = TaskRepository(session, self.revisions)
        self.events = EventRepository(session)
        self.datasets = DatasetRepository(session)
        self.batch_review = BatchReviewRepository(session)
        self.audit = AuditRepository(session)
        self.dataset_search = DatasetSearchRepository(session)
        self.edge_caches = EdgeCacheUsageRepository(session)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        session, self._session = self._session, None
        if session is None:
            return
        try:
            session.rollback()  # no-op after commit(); undoes everything otherwise
        finally:
            session.close()
            self._write = False

    @property
    def session(self) -> Session:
        """The open session, for bulk tools (benchmarks, data migrations) that write rows directly."""
        if self._session is None:
            raise RuntimeError("no open unit of work")
        return self._session

    def commit(self) -> None:
        if self._session is None:
            raise RuntimeError("commit outside a unit of work")
        self._session.commit()

    def rollback(self) -> None:
        if self._session is not None:
            self._session.rollback()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    # expire_on_commit=False: records handed back to callers stay readable after commit.
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)


class UnitOfWorkFactory:
    """Makes a fresh unit of work per call (per request): a unit of work is not shared between threads."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._sessions = session_factory(engine)

    def __call__(self) -> SqlAlchemyUnitOfWork:
        return SqlAlchemyUnitOfWork(self._sessions)

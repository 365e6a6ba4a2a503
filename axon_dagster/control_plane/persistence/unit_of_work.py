"""Unit of work: one transaction, the repositories that work inside it, explicit commit.

On SQLite a write transaction starts with ``BEGIN IMMEDIATE`` (SQLite has one writer anyway).
On PostgreSQL writes that do not conflict run side by side; what must be ordered is ordered by
the row it is about, locked in this order (so two writers never wait on each other in a cycle):

1. the order's row (``orders.get(lock=True)``): writers of an order's unassigned tasks;
2. robot rows, in robot id order (``robots.allocate_revisions``): every change of a robot's tasks
   that the robot must hear of takes that robot's next revision while holding its row, so a
   robot's pull cursor never skips a late commit;
3. task rows, in task id order (``tasks.get_many(lock=True)``): a robot's event push locks only
   the tasks it names, so each task's events are applied in order and robots never wait on each
   other; then dataset / edge-cache rows.

The two cursors: a robot's pull (``tasks.revision``, per robot, see above) and the sensor's feed
(``events.seq``, given by the single ordered publisher ``events.publish``, see ``schema.EventRow``).
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType
from typing import Callable

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from .engine import SQLITE_BEGIN_OPTION
from .dataset_repositories import DatasetRepository, EdgeCacheUsageRepository
from .fleet_repositories import RobotRepository
from .identity_repositories import AccountRepository, SessionRepository
from .order_repositories import BatchRepository, OrderRepository
from .task_repositories import EventRepository, TaskRepository
from .upload_repositories import RecorderReportRepository, UplinkRepository, UploadGrantRepository, UploadQueueRepository
from .review_repositories import AuditRepository, BatchReviewRepository, DatasetSearchRepository, ReviewQueueRepository

log = logging.getLogger(__name__)

SQLITE_WRITER_TIMEOUT = 30.0  # as long as SQLite's own busy timeout (store.engine)


class SqlAlchemyUnitOfWork:
    """Use ``with uow.reading():`` or ``with uow.writing():``; call ``commit()`` to keep changes
    (leaving the block without it rolls back)."""

    robots: RobotRepository
    orders: OrderRepository
    batches: BatchRepository
    tasks: TaskRepository
    events: EventRepository
    datasets: DatasetRepository
    batch_review: BatchReviewRepository
    audit: AuditRepository
    dataset_search: DatasetSearchRepository
    review: ReviewQueueRepository
    edge_caches: EdgeCacheUsageRepository
    accounts: AccountRepository
    sessions: SessionRepository
    grants: UploadGrantRepository
    uplinks: UplinkRepository
    recorders: RecorderReportRepository
    upload_queue: UploadQueueRepository

    def __init__(self, session_factory: Callable[[], Session], sqlite_writer: threading.Lock | None = None):
        self._session_factory = session_factory
        self._sqlite_writer = sqlite_writer
        self._holds_writer = False
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
        if not self._write and dialect == "postgresql":
            # A read runs its statements without BEGIN/ROLLBACK: two round trips fewer (a robot's
            # idle pull is one statement). Under read committed each statement has its own
            # snapshot either way, so a reader sees exactly what it would in a transaction.
            session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        if self._write and dialect == "sqlite":
            if self._sqlite_writer is not None:
                # This process's writers queue here, in order, instead of in SQLite's busy
                # handler (which sleeps in growing steps: a waiting writer wakes up to 100 ms late).
                if not self._sqlite_writer.acquire(timeout=SQLITE_WRITER_TIMEOUT):
                    self._session = None
                    session.close()
                    raise TimeoutError(f"SQLite is busy: another write of this process held it for {SQLITE_WRITER_TIMEOUT:g} s")
                self._holds_writer = True
            try:
                session.connection(execution_options={SQLITE_BEGIN_OPTION: "IMMEDIATE"})
            except BaseException:
                self._release_writer()
                self._session = None
                session.close()
                raise
        self.robots = RobotRepository(session)
        self.orders = OrderRepository(session)
        self.batches = BatchRepository(session)
        self.tasks = TaskRepository(session, self.robots)
        self.events = EventRepository(session)
        self.datasets = DatasetRepository(session)
        self.batch_review = BatchReviewRepository(session)
        self.audit = AuditRepository(session)
        self.dataset_search = DatasetSearchRepository(session)
        self.review = ReviewQueueRepository(session, self.dataset_search)
        self.edge_caches = EdgeCacheUsageRepository(session)
        self.accounts = AccountRepository(session)
        self.sessions = SessionRepository(session)
        self.grants = UploadGrantRepository(session)
        self.uplinks = UplinkRepository(session)
        self.recorders = RecorderReportRepository(session)
        self.upload_queue = UploadQueueRepository(session)
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
            self._release_writer()

    def _release_writer(self) -> None:
        if self._holds_writer:
            self._holds_writer = False
            self._sqlite_writer.release()  # type: ignore[union-attr]

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
        # SQLite: one writer at a time per process, queued in Python (see SqlAlchemyUnitOfWork).
        self._sqlite_writer = threading.Lock() if engine.dialect.name == "sqlite" else None

    def __call__(self) -> SqlAlchemyUnitOfWork:
        return SqlAlchemyUnitOfWork(self._sessions, self._sqlite_writer)

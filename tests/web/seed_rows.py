"""One order's rows written straight into a fresh, migrated store: what the page suites start from."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from axon_dagster.control_plane.persistence import UnitOfWorkFactory, make_engine, upgrade
from axon_dagster.control_plane.persistence.bulk import insert_rows
from axon_dagster.control_plane.persistence.schema import BatchRow, DatasetRow, OrderRow, TaskRow

T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)
TASK = dict(order_id="o1", scene="warehouse", sub_scene="aisle_1", skills=["pick"], duration_seconds=5.0, topics=["/imu"],
            priority=0, status="EXECUTED", robot_id=None, data_collector_id=None, config_path=None, dataset_path=None,
            failure_reason=None, created_at=T0, updated_at=T0)
BATCH = dict(order_id="o1", scene="warehouse", sub_scene="aisle_1", skills=["pick"], task_count=2, duration_seconds=5.0,
             topics=[], created_at=T0)


def seed_order(url: str, *, batches: list[dict[str, Any]], tasks: list[dict[str, Any]], datasets: list[dict[str, Any]],
               auto_approve_batches: bool = True) -> None:
    """Order ``o1`` with ``batches``/``tasks`` (over the BATCH/TASK defaults) and ``datasets``."""
    upgrade(url)
    engine = make_engine(url)
    uow = UnitOfWorkFactory(engine)()
    with uow.writing():
        s = uow.session
        insert_rows(s, OrderRow.__table__, [dict(order_id="o1", scene="warehouse", sub_scene="aisle_1", skills=["pick"],
                                                 requirements={}, priority=0, created_by="", created_at=T0,
                                                 auto_approve_batches=auto_approve_batches, recording_template="default")])
        insert_rows(s, BatchRow.__table__, [{**BATCH, **b} for b in batches])
        insert_rows(s, TaskRow.__table__, [{**TASK, **t} for t in tasks])
        insert_rows(s, DatasetRow.__table__, [{"created_at": T0, "updated_at": T0, **d} for d in datasets])
        uow.commit()
    engine.dispose()

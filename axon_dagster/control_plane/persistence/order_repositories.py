"""Orders and their batches."""

from __future__ import annotations

from typing import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from axon_dagster.domain import Batch, Order, Requirements

from .bulk import insert_rows
from .schema import (
    BatchRow,
    OrderRow,
)
from .records import chunks, core, unique


# ---------------------------------------------------------------- orders and batches


_ORDERS = OrderRow.__table__


class OrderRepository:
    def __init__(self, session: Session):
        self._session = session

    def add(self, order: Order) -> None:
        with unique("order"):
            self._add(order)

    def _add(self, order: Order) -> None:
        self._session.add(
            OrderRow(
                order_id=order.order_id,
                scene=order.scene,
                sub_scene=order.sub_scene,
                skills=list(order.skills),
                requirements=order.requirements.to_dict(),
                priority=order.priority,
                created_by=order.created_by,
                created_at=order.created_at,
            )
        )
        self._session.flush()

    def get(self, order_id: str, *, lock: bool = False) -> Order | None:
        """With ``lock``, the order's row stays locked until commit: writers of an order's
        unassigned tasks (planning, dispatch, batch review, cloud moves) take it first."""
        row = self._session.get(OrderRow, order_id, with_for_update=lock or None)
        return _order(row) if row else None

    def list(self, limit: int, offset: int) -> list[Order]:
        stmt = select(OrderRow).order_by(OrderRow.created_at, OrderRow.order_id).limit(limit).offset(offset)
        return [_order(r) for r in self._session.execute(stmt).scalars()]

    def ids(self) -> list[str]:
        return list(self._session.execute(select(OrderRow.order_id)).scalars())

    def requirements_for(self, order_ids: Iterable[str]) -> dict[str, Requirements]:
        wanted = sorted(set(order_ids))
        out: dict[str, Requirements] = {}
        for chunk in chunks(wanted):
            rows = core(self._session, select(_ORDERS.c.order_id, _ORDERS.c.requirements).where(_ORDERS.c.order_id.in_(chunk)))
            out.update({oid: Requirements.from_dict(req) for oid, req in rows})
        return out


def _order(row: OrderRow) -> Order:
    return Order(
        order_id=row.order_id,
        scene=row.scene,
        sub_scene=row.sub_scene,
        skills=tuple(row.skills),
        requirements=Requirements.from_dict(row.requirements),
        priority=row.priority,
        created_by=row.created_by,
        created_at=row.created_at,
    )


class BatchRepository:
    def __init__(self, session: Session):
        self._session = session

    def add_many(self, batches: Sequence[Batch]) -> None:
        if not batches:
            return
        with unique("batch"):
            self._insert(batches)

    def _insert(self, batches: Sequence[Batch]) -> None:
        insert_rows(
            self._session,
            BatchRow.__table__,
            [
                {
                    "batch_id": b.batch_id,
                    "order_id": b.order_id,
                    "scene": b.scene,
                    "sub_scene": b.sub_scene,
                    "skills": list(b.skills),
                    "task_count": b.task_count,
                    "duration_seconds": float(b.duration_seconds),
                    "topics": list(b.topics),
                    "created_at": b.created_at,
                }
                for b in batches
            ],
        )

    def get(self, batch_id: str) -> Batch | None:
        row = self._session.get(BatchRow, batch_id)
        return _batch(row) if row else None

    def list(self, order_id: str | None = None) -> list[Batch]:
        stmt = select(BatchRow).order_by(BatchRow.created_at, BatchRow.batch_id)
        if order_id is not None:
            stmt = stmt.where(BatchRow.order_id == order_id)
        return [_batch(r) for r in self._session.execute(stmt).scalars()]

    def any_for_order(self, order_id: str) -> bool:
        return self._session.execute(select(BatchRow.batch_id).where(BatchRow.order_id == order_id).limit(1)).first() is not None


def _batch(row: BatchRow) -> Batch:
    return Batch(
        batch_id=row.batch_id,
        order_id=row.order_id,
        scene=row.scene,
        sub_scene=row.sub_scene,
        skills=tuple(row.skills),
        task_count=row.task_count,
        duration_seconds=row.duration_seconds,
        topics=tuple(row.topics),
        created_at=row.created_at,
    )

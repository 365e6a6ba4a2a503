"""Orders and their batches: create, plan (domain ``plan_order``), dispatch to robots, read."""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from typing import Any, Mapping, Sequence

from axon_dagster.settings.templates import recording_template
from axon_dagster.domain import (
    ManualBatch,
    Order,
    Requirements,
    TaskStatus,
    TaskTemplate,
    assign_round_robin,
    utcnow,
    validate_id,
)
from axon_dagster.domain import plan_order as domain_plan_order
from axon_dagster.domain.batch_review import BatchReviewStatus, initial_status

from .errors import AlreadyExistsError, NotFoundError
from .persistence import SqlAlchemyUnitOfWork, TaskFilter
from .persistence.errors import DuplicateKeyError
from .validation import page, text
from .views import (
    BatchView,
    OrderView,
    PlanView,
    TaskView,
)

log = logging.getLogger(__name__)

UnitOfWork = SqlAlchemyUnitOfWork

def create_order(
    uow: UnitOfWork,
    order_id: str,
    scene: str,
    skills: Sequence[str],
    *,
    sub_scene: str = "",
    requirements: Mapping[str, Any] | None = None,
    priority: int = 0,
    created_by: str = "",
) -> OrderView:
    order = Order(
        order_id=order_id,
        scene=scene,
        sub_scene=sub_scene,
        skills=tuple(skills),
        requirements=Requirements.from_dict(requirements),
        priority=priority,
        created_by=text(created_by or "", "created_by", limit=256),
    )
    with uow.writing():
        if uow.orders.get(order.order_id) is not None:
            raise AlreadyExistsError("order", order.order_id)
        try:
            uow.orders.add(order)
        except DuplicateKeyError:
            raise AlreadyExistsError("order", order.order_id) from None
        uow.commit()
    log.info("created order %s (scene %s, skills %s)", order.order_id, order.scene, ",".join(order.skills))
    return OrderView.of(order, {})


def plan_order(
    uow: UnitOfWork,
    order_id: str,
    strategy: str,
    template: TaskTemplate,
    manual_batches: Sequence[ManualBatch] = (),
) -> PlanView:
    """Split an order into batches and tasks (domain ``plan_order``), stored in one transaction."""
    order_id = validate_id(order_id, "order_id")
    with uow.writing():
        order = uow.orders.get(order_id, lock=True)
        if order is None:
            raise NotFoundError("order", order_id)
        if uow.batches.any_for_order(order_id):
            raise AlreadyExistsError("plan", order_id, f"order {order_id!r} is already planned")
        policy = uow.batch_review.order_policy(order_id)
        if not template.topics and policy:
            # No explicit topics: the order's recording template says what every task records.
            template = dataclasses.replace(template, topics=recording_template(policy[1]).topic_names)
        plan = domain_plan_order(order, strategy, template, manual_batches)
        try:
            uow.batches.add_many(plan.batches)
            records = uow.tasks.add_many(plan.tasks)
            # Batch review: approved now when the order auto-approves (the default), else pending.
            uow.batch_review.set_status([b.batch_id for b in plan.batches], initial_status(policy[0] if policy else True).value)
        except DuplicateKeyError as exc:
            raise AlreadyExistsError("plan", order_id, f"planned ids of order {order_id!r} collide with stored ones: {exc}") from None
        uow.commit()
    log.info("planned order %s: %d batches, %d tasks", order_id, len(plan.batches), len(records))
    per_batch = Counter(t.batch_id for t in plan.tasks)
    requirements = order.requirements.to_dict()
    return PlanView(
        order_id=order_id,
        batches=[BatchView.of(b, {TaskStatus.PENDING: per_batch[b.batch_id]}) for b in plan.batches],
        tasks=[TaskView.of(r, requirements) for r in records],
    )


def dispatch_order(uow: UnitOfWork, order_id: str, robot_ids: Sequence[str] | None = None) -> dict[str, str]:
    """Give the order's unassigned PENDING tasks to the least-loaded robots (all registered robots
    unless ``robot_ids`` names some). Returns ``{task_id: robot_id}`` for the tasks assigned now."""
    order_id = validate_id(order_id, "order_id")
    wanted = None if robot_ids is None else list(dict.fromkeys(validate_id(r, "robot_id") for r in robot_ids))
    with uow.writing():
        if uow.orders.get(order_id, lock=True) is None:  # one dispatch of an order at a time
            raise NotFoundError("order", order_id)
        if wanted is None:
            robots = [r.robot_id for r in uow.robots.list()]
        else:
            missing = [r for r in wanted if r not in uow.robots.existing_ids(wanted)]
            if missing:
                raise NotFoundError("robot", missing[0])
            robots = wanted
        # Only tasks of approved batches reach robots (domain.batch_review.dispatchable).
        task_ids = uow.tasks.unassigned_pending(order_id, review_statuses=[BatchReviewStatus.APPROVED.value])
        if not task_ids:
            return {}
        assignments = assign_round_robin(task_ids, robots, uow.tasks.open_load_by_robot())
        uow.tasks.assign(assignments, utcnow())
        uow.commit()
    log.info("dispatched %d tasks of order %s to %d robots", len(assignments), order_id, len(set(assignments.values())))
    return assignments


def list_orders(uow: UnitOfWork, limit: int = 100, offset: int = 0) -> list[OrderView]:
    limit, offset = page(limit, offset)
    with uow.reading():
        orders = uow.orders.list(limit, offset)
        counts = uow.tasks.status_counts_by("order_id", [o.order_id for o in orders])
    return [OrderView.of(o, counts.get(o.order_id, {})) for o in orders]


def get_order(uow: UnitOfWork, order_id: str) -> OrderView:
    order_id = validate_id(order_id, "order_id")
    with uow.reading():
        order = uow.orders.get(order_id)
        if order is None:
            raise NotFoundError("order", order_id)
        counts = uow.tasks.status_counts(TaskFilter(order_id=order_id))
    return OrderView.of(order, counts)


def list_batches(uow: UnitOfWork, order_id: str | None = None) -> list[BatchView]:
    if order_id is not None:
        order_id = validate_id(order_id, "order_id")
    with uow.reading():
        batches = uow.batches.list(order_id)
        counts = uow.tasks.status_counts_by("batch_id", [b.batch_id for b in batches])
    return [BatchView.of(b, counts.get(b.batch_id, {})) for b in batches]


def get_batch(uow: UnitOfWork, batch_id: str) -> BatchView:
    batch_id = validate_id(batch_id, "batch_id")
    with uow.reading():
        batch = uow.batches.get(batch_id)
        if batch is None:
            raise NotFoundError("batch", batch_id)
        counts = uow.tasks.status_counts(TaskFilter(batch_id=batch_id))
    return BatchView.of(batch, counts)


"""Turning an order into batches and tasks, and tasks onto robots."""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from enum import Enum
from typing import Iterable, Mapping, Sequence

from .errors import PlanningError
from .ids import validate_id
from .model import Batch, Order, Task

MAX_TASKS_PER_ORDER = 100_000


class BatchStrategy(str, Enum):
    PER_SKILL = "per_skill"  # one batch per skill, as in the reference design
    MANUAL = "manual"  # explicit batch definitions from the admin


@dataclass(frozen=True)
class TaskTemplate:
    task_count: int = 1
    duration_seconds: float = 60.0
    topics: tuple[str, ...] = ()


@dataclass(frozen=True)
class ManualBatch:
    skills: tuple[str, ...]
    task_count: int | None = None
    duration_seconds: float | None = None
    topics: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Plan:
    batches: list[Batch] = field(default_factory=list)
    tasks: list[Task] = field(default_factory=list)


def plan_order(
    order: Order,
    strategy: BatchStrategy | str,
    template: TaskTemplate,
    manual_batches: Sequence[ManualBatch] = (),
) -> Plan:
    """Batches for an order, then ``task_count`` tasks per batch.

    >>> o = Order(order_id="o1", scene="warehouse", skills=("nav", "pick"))
    >>> p = plan_order(o, "per_skill", TaskTemplate(task_count=2, duration_seconds=5))
    >>> [b.batch_id for b in p.batches], len(p.tasks)
    (['o1_batch_nav_1', 'o1_batch_pick_2'], 4)
    """
    try:
        strategy = BatchStrategy(strategy)
    except ValueError:
        raise PlanningError(f"unknown batch strategy {strategy!r}; expected per_skill or manual") from None
    batches: list[Batch] = []
    if strategy is BatchStrategy.PER_SKILL:
        if manual_batches:
            raise PlanningError("manual batch definitions given with strategy per_skill")
        for skill in order.skills:
            batches.append(_batch(order, f"{order.order_id}_batch_{skill}_{len(batches) + 1}", (skill,), template))
    else:
        if not manual_batches:
            raise PlanningError("strategy manual needs at least one batch definition")
        for definition in manual_batches:
            unknown = set(definition.skills) - set(order.skills)
            if unknown:
                raise PlanningError(f"manual batch skills {sorted(unknown)} are not skills of order {order.order_id}")
            merged = TaskTemplate(
                task_count=definition.task_count if definition.task_count is not None else template.task_count,
                duration_seconds=(
                    definition.duration_seconds if definition.duration_seconds is not None else template.duration_seconds
                ),
                topics=tuple(definition.topics) if definition.topics is not None else template.topics,
            )
            batches.append(
                _batch(order, f"{order.order_id}_batch_{len(batches) + 1}", tuple(definition.skills) or order.skills, merged)
            )
    total = sum(b.task_count for b in batches)
    if total > MAX_TASKS_PER_ORDER:
        raise PlanningError(f"order {order.order_id} would create {total} tasks; the limit is {MAX_TASKS_PER_ORDER}")
    tasks = [task for batch in batches for task in plan_tasks(batch, order.priority)]
    return Plan(batches=batches, tasks=tasks)


def _batch(order: Order, batch_id: str, skills: tuple[str, ...], template: TaskTemplate) -> Batch:
    return Batch(
        batch_id=_planned_id(batch_id, "batch_id"),
        order_id=order.order_id,
        scene=order.scene,
        sub_scene=order.sub_scene,
        skills=skills,
        task_count=template.task_count,
        duration_seconds=template.duration_seconds,
        topics=tuple(template.topics),
    )


def plan_tasks(batch: Batch, priority: int = 0) -> list[Task]:
    return [
        Task(
            task_id=_planned_id(f"{batch.batch_id}_task_{i + 1}", "task_id"),
            order_id=batch.order_id,
            batch_id=batch.batch_id,
            scene=batch.scene,
            sub_scene=batch.sub_scene,
            skills=batch.skills,
            duration_seconds=batch.duration_seconds,
            topics=batch.topics,
            priority=priority,
        )
        for i in range(batch.task_count)
    ]


def _planned_id(value: str, kind: str) -> str:
    try:
        return validate_id(value, kind)
    except ValueError as exc:
        raise PlanningError(f"planned {kind} is not a valid id ({exc}); use a shorter order id") from None


def assign_round_robin(task_ids: Iterable[str], robot_ids: Sequence[str], load: Mapping[str, int] | None = None) -> dict[str, str]:
    """Spread tasks over robots, least-loaded first (ties: smallest robot id), so a new order
    evens out the fleet. A heap keyed by (load, robot id): O(tasks * log robots), so 10,000 tasks
    over 1,000 robots plan in milliseconds.

    >>> assign_round_robin(["t1", "t2", "t3"], ["b", "a"], {"a": 1})
    {'t1': 'b', 't2': 'a', 't3': 'b'}
    """
    if not robot_ids:
        raise PlanningError("no robots to assign tasks to")
    loads = load or {}
    heap = [(loads.get(r, 0), r) for r in dict.fromkeys(robot_ids)]
    heapq.heapify(heap)
    assignment: dict[str, str] = {}
    for task_id in task_ids:
        count, robot = heap[0]
        assignment[task_id] = robot
        heapq.heapreplace(heap, (count + 1, robot))
    return assignment

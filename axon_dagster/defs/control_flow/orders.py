"""`order_processing`: an admin enters an order in the launchpad; it becomes batches and tasks on robots."""


from collections import Counter
from typing import List, Literal, Optional

import dagster as dg
from pydantic import Field

from ..lineage import BATCH, ORDER, ORDERS, TASK, materialization
from axon_dagster.client import orders

from ..resources import ControlPlaneResource
from ..retry import NETWORK_RETRY


class RequirementsConfig(dg.Config):
    required_topics: List[str] = Field(default_factory=list, description="Topics every recording must contain")
    expected_rates_hz: dict[str, float] = Field(default_factory=dict, description="Expected rate per topic")
    rate_tolerance: float = Field(default=0.2, description="Allowed relative deviation from the expected rate")
    max_gap_seconds: float = Field(default=1.0, description="Largest allowed gap between messages of a topic")
    min_duration_seconds: float = 0.0
    max_duration_seconds: Optional[float] = None
    auto_approve: float = Field(default=0.9, description="QC score at or above which a recording is approved")
    review_floor: float = Field(default=0.6, description="QC score below which a recording is rejected")


class ManualBatchConfig(dg.Config):
    skills: List[str]
    task_count: Optional[int] = None
    duration_seconds: Optional[float] = None
    topics: Optional[List[str]] = None


class OrderConfig(dg.Config):
    """The order form shown in the Dagster launchpad."""

    order_id: str = Field(description="Unique order id (letters, digits, . _ -)")
    scene: str = Field(description="Scene, e.g. warehouse")
    sub_scene: str = Field(default="", description="Sub-scene, e.g. aisle_1")
    skills: List[str] = Field(description="Skills to record, e.g. [navigation, pick_place]")
    requirements: RequirementsConfig = Field(default_factory=RequirementsConfig)
    priority: int = 0
    batch_strategy: Literal["per_skill", "manual"] = "per_skill"
    manual_batches: List[ManualBatchConfig] = Field(default_factory=list)
    task_count: int = Field(default=1, description="Tasks per batch")
    duration_seconds: float = Field(default=60.0, description="Recording length of each task")
    topics: List[str] = Field(default_factory=list, description="Topics to record (empty: the recorder's default)")
    robot_ids: List[str] = Field(default_factory=list, description="Robots to dispatch to (empty: every registered robot)")


def _order_spec(config: OrderConfig) -> dict:
    return config.model_dump(exclude_none=True)


@dg.op(retry_policy=NETWORK_RETRY)
def create_order(context: dg.OpExecutionContext, config: OrderConfig, control_plane: ControlPlaneResource) -> dict:
    spec = _order_spec(config)
    order = orders.create_order(control_plane.client(), spec, created_by=context.run_id)
    context.instance.add_dynamic_partitions(ORDERS.name, [order["order_id"]])
    context.log_event(
        materialization(
            ORDER,
            order["order_id"],
            {"scene": spec["scene"], "sub_scene": spec["sub_scene"], "skills": ",".join(spec["skills"]), "priority": spec["priority"]},
        )
    )
    context.log.info(f"created order {order['order_id']} for {spec['scene']}/{spec['sub_scene']} skills={spec['skills']}")
    return spec


@dg.op(retry_policy=NETWORK_RETRY)
def plan_batches(context: dg.OpExecutionContext, control_plane: ControlPlaneResource, spec: dict) -> dict:
    order_id = spec["order_id"]
    plan = orders.plan_order(control_plane.client(), spec)
    for batch in plan["batches"]:
        context.log_event(
            materialization(
                BATCH,
                order_id,
                {"order_id": order_id, "batch_id": batch["batch_id"], "skills": ",".join(batch["skills"]), "task_count": batch["task_count"]},
            )
        )
    context.log.info(f"planned {len(plan['batches'])} batches, {len(plan['tasks'])} tasks for order {order_id}")
    return spec


@dg.op(retry_policy=NETWORK_RETRY)
def dispatch_tasks(context: dg.OpExecutionContext, control_plane: ControlPlaneResource, spec: dict) -> dict:
    order_id = spec["order_id"]
    client = control_plane.client()
    assignments = client.dispatch_order(order_id, robot_ids=spec.get("robot_ids") or None)
    # One materialization per batch (not per task): the event log stays bounded for big orders.
    by_batch: dict[str, Counter] = {}
    for task in orders.all_tasks(client, order_id=order_id):
        if task["task_id"] in assignments:
            by_batch.setdefault(task["batch_id"], Counter())[assignments[task["task_id"]]] += 1
    for batch_id, robots in sorted(by_batch.items()):
        context.log_event(
            materialization(
                TASK,
                order_id,
                {"order_id": order_id, "batch_id": batch_id, "task_count": sum(robots.values()), "robots": dict(robots)},
            )
        )
    context.log.info(f"dispatched {len(assignments)} tasks of order {order_id} to {len(set(assignments.values()))} robots")
    return {"order_id": order_id, "assignments": assignments}


@dg.job(description="Create an order, plan its batches and tasks, and dispatch them to robots.")
def order_processing():
    dispatch_tasks(plan_batches(create_order()))

import pytest

from axon_dagster.domain import (
    ManualBatch,
    Order,
    PlanningError,
    Requirements,
    RollupStatus,
    TaskTemplate,
    assign_round_robin,
    cloud_dataset_key,
    plan_order,
    rollup,
)
from axon_dagster.domain.planning import MAX_TASKS_PER_ORDER


def order(**kw):
    base = dict(order_id="o1", scene="warehouse", sub_scene="aisle_1", skills=("navigation", "pick_place"), priority=3)
    base.update(kw)
    return Order(**base)


def test_per_skill_makes_one_batch_per_skill_and_task_count_tasks_each():
    plan = plan_order(order(), "per_skill", TaskTemplate(task_count=3, duration_seconds=12, topics=("/imu",)))
    assert [b.skills for b in plan.batches] == [("navigation",), ("pick_place",)]
    assert len(plan.tasks) == 6
    assert len({t.task_id for t in plan.tasks}) == 6
    for task in plan.tasks:
        assert task.duration_seconds == 12 and task.topics == ("/imu",) and task.priority == 3
        assert task.scene == "warehouse" and task.sub_scene == "aisle_1"
        assert task.batch_id.startswith("o1_batch_")


def test_manual_batches_override_the_template_per_batch():
    plan = plan_order(
        order(),
        "manual",
        TaskTemplate(task_count=1, duration_seconds=30),
        [ManualBatch(skills=("navigation", "pick_place"), task_count=2), ManualBatch(skills=("pick_place",), duration_seconds=5)],
    )
    assert [b.task_count for b in plan.batches] == [2, 1]
    assert [b.duration_seconds for b in plan.batches] == [30, 5]
    assert len(plan.tasks) == 3


@pytest.mark.parametrize(
    "strategy,template,manual,match",
    [
        ("random", TaskTemplate(), (), "unknown batch strategy"),
        ("manual", TaskTemplate(), (), "at least one batch"),
        ("manual", TaskTemplate(), [ManualBatch(skills=("welding",))], "not skills of order"),
        ("per_skill", TaskTemplate(task_count=0), (), "task_count"),
        ("per_skill", TaskTemplate(duration_seconds=-1), (), "duration_seconds"),
        ("per_skill", TaskTemplate(task_count=MAX_TASKS_PER_ORDER), (), "limit"),
    ],
)
def test_bad_plans_are_refused(strategy, template, manual, match):
    with pytest.raises(PlanningError, match=match):
        plan_order(order(), strategy, template, manual)


def test_round_robin_evens_out_load():
    assignment = assign_round_robin([f"t{i}" for i in range(7)], ["r1", "r2", "r3"], load={"r1": 2})
    counts = {r: list(assignment.values()).count(r) for r in ("r1", "r2", "r3")}
    assert counts == {"r1": 1, "r2": 3, "r3": 3}
    with pytest.raises(PlanningError):
        assign_round_robin(["t1"], [])


@pytest.mark.parametrize(
    "statuses,expected",
    [
        ([], RollupStatus.PENDING),
        (["PENDING", "PENDING"], RollupStatus.PENDING),
        (["PENDING", "READY"], RollupStatus.ACTIVE),
        (["UPLOADED", "EXECUTING"], RollupStatus.ACTIVE),
        (["UPLOADED", "UPLOADED"], RollupStatus.COMPLETED),
        (["UPLOADED", "CANCELLED"], RollupStatus.COMPLETED),
        (["UPLOADED", "FAILED"], RollupStatus.FAILED),
        (["CANCELLED", "CANCELLED"], RollupStatus.CANCELLED),
    ],
)
def test_rollup(statuses, expected):
    assert rollup(statuses) is expected


def test_requirements_refuse_unknown_keys_and_bad_thresholds():
    with pytest.raises(PlanningError, match="unknown requirement key.*colour"):
        Requirements.from_dict({"colour": "red"})
    with pytest.raises(PlanningError, match="review_floor"):
        Requirements.from_dict({"auto_approve": 0.5, "review_floor": 0.7})
    req = Requirements.from_dict({"required_topics": ["/imu"], "expected_rates_hz": {"/imu": 100}})
    assert Requirements.from_dict(req.to_dict()) == req
    assert req.outcome_for(0.95).value == "approved"
    assert req.outcome_for(0.7).value == "needs_review"
    assert req.outcome_for(0.1).value == "rejected"


def test_cloud_key_layout_is_stable_and_safe():
    from datetime import datetime, timezone

    at = datetime(2026, 11, 26, 9, 30, 1, 123456, tzinfo=timezone.utc)
    assert cloud_dataset_key("warehouse", "", ["nav"], at) == "warehouse/nav_20261126T093001.123456Z.lance"
    with pytest.raises(ValueError):
        cloud_dataset_key("../warehouse", "", ["nav"], at)

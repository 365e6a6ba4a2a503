"""Admin batch review use cases: view an order's batches, edit them before release, approve or
reject them, add a manual batch, set the order's review policy. Every change writes an audit
record (who, when, what) in the same transaction. Rules live in ``domain.batch_review``."""

from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

from axon_dagster.domain import Batch, PlanningError, TaskStatus, plan_tasks, utcnow, validate_id
from axon_dagster.domain.identity import validate_principal_name
from axon_dagster.domain.batch_review import (
    BatchEdit,
    BatchReviewStatus,
    check_editable,
    check_move,
    check_skills_of_order,
    initial_status,
)

from .persistence import EventRecord, SqlAlchemyUnitOfWork, TaskFilter
from .tasks import cloud_event_id
from .validation import page, text
from .errors import InvalidRequestError, NotFoundError
from .views import BatchView

log = logging.getLogger(__name__)

UnitOfWork = SqlAlchemyUnitOfWork
MAX_TASKS = 10_000
from axon_dagster.settings.templates import RECORDING_TEMPLATES  # noqa: E402  (one list of template names)


def _actor(actor: Any) -> str:
    if not isinstance(actor, str) or not actor:
        raise InvalidRequestError("actor (who makes the change) is required")
    return validate_principal_name(actor, "actor")


def _batch_dict(batch: Batch, counts: Mapping[TaskStatus, int], review_status: str, released: bool) -> dict[str, Any]:
    out = BatchView.of(batch, dict(counts)).to_dict()
    out["review_status"] = review_status
    out["released"] = released
    out["editable"] = not released and review_status != BatchReviewStatus.REJECTED.value
    return out


def _one(uow: UnitOfWork, batch_id: str) -> dict[str, Any]:
    batch = uow.batches.get(batch_id)
    assert batch is not None
    counts = uow.tasks.status_counts(TaskFilter(batch_id=batch_id))
    status = uow.batch_review.statuses([batch_id])[batch_id]
    return _batch_dict(batch, counts, status, uow.batch_review.released(batch_id))


def _audit(uow: UnitOfWork, actor: str, action: str, kind: str, entity_id: str, order_id: str, details: dict[str, Any]) -> None:
    uow.audit.add(at=utcnow(), actor=actor, action=action, entity_kind=kind, entity_id=entity_id, order_id=order_id, details=details)


def review_policy(uow: UnitOfWork, order_id: str) -> dict[str, Any]:
    order_id = validate_id(order_id, "order_id")
    with uow.reading():
        policy = uow.batch_review.order_policy(order_id)
    if policy is None:
        raise NotFoundError("order", order_id)
    return {"order_id": order_id, "auto_approve_batches": policy[0], "recording_template": policy[1]}


def set_review_policy(
    uow: UnitOfWork, order_id: str, actor: str, *, auto_approve_batches: bool | None = None, recording_template: str | None = None
) -> dict[str, Any]:
    """Set the order's ``auto_approve_batches`` / ``recording_template``; only before it is planned."""
    order_id, actor = validate_id(order_id, "order_id"), _actor(actor)
    if auto_approve_batches is not None and not isinstance(auto_approve_batches, bool):
        raise InvalidRequestError(f"auto_approve_batches must be true or false, got {auto_approve_batches!r}")
    if recording_template is not None and recording_template not in RECORDING_TEMPLATES:
        raise InvalidRequestError(f"unknown recording_template {recording_template!r}; expected one of {', '.join(RECORDING_TEMPLATES)}")
    with uow.writing():
        before = uow.batch_review.order_policy(order_id)
        if before is None:
            raise NotFoundError("order", order_id)
        if uow.batches.any_for_order(order_id):
            raise InvalidRequestError(f"order {order_id!r} is already planned; set its review policy before planning")
        uow.batch_review.set_order_policy(order_id, auto_approve_batches=auto_approve_batches, recording_template=recording_template)
        changes = {k: v for k, v in (("auto_approve_batches", auto_approve_batches), ("recording_template", recording_template)) if v is not None}
        _audit(uow, actor, "set_review_policy", "order", order_id, order_id,
               {"before": {"auto_approve_batches": before[0], "recording_template": before[1]}, "changes": changes})
        uow.commit()
    return review_policy(uow, order_id)


def list_review_batches(uow: UnitOfWork, order_id: str) -> list[dict[str, Any]]:
    order_id = validate_id(order_id, "order_id")
    with uow.reading():
        if uow.orders.get(order_id) is None:
            raise NotFoundError("order", order_id)
        batches = uow.batches.list(order_id)
        ids = [b.batch_id for b in batches]
        counts = uow.tasks.status_counts_by("batch_id", ids)
        statuses = uow.batch_review.statuses(ids)
        return [_batch_dict(b, counts.get(b.batch_id, {}), statuses[b.batch_id], uow.batch_review.released(b.batch_id)) for b in batches]


def edit_batch(uow: UnitOfWork, batch_id: str, actor: str, changes: Mapping[str, Any]) -> dict[str, Any]:
    """Change skills / task_count / duration_seconds / topics of a batch not yet released; its
    tasks are planned again from the edited values (so robots get exactly those)."""
    batch_id, actor = validate_id(batch_id, "batch_id"), _actor(actor)
    edit = BatchEdit.from_dict(changes)
    with uow.writing():
        batch = uow.batches.get(batch_id)
        if batch is None:
            raise NotFoundError("batch", batch_id)
        uow.orders.get(batch.order_id, lock=True)  # writers of an order's unassigned tasks take turns
        status = uow.batch_review.statuses([batch_id])[batch_id]
        check_editable(batch_id, status, released=uow.batch_review.released(batch_id))
        order = uow.orders.get(batch.order_id)
        assert order is not None
        before = {"skills": list(batch.skills), "task_count": batch.task_count,
                  "duration_seconds": batch.duration_seconds, "topics": list(batch.topics)}
        edited = Batch(
            batch_id=batch.batch_id, order_id=batch.order_id, scene=batch.scene, sub_scene=batch.sub_scene,
            skills=edit.skills if edit.skills is not None else batch.skills,
            task_count=edit.task_count if edit.task_count is not None else batch.task_count,
            duration_seconds=edit.duration_seconds if edit.duration_seconds is not None else batch.duration_seconds,
            topics=edit.topics if edit.topics is not None else batch.topics,
            created_at=batch.created_at,
        )
        check_skills_of_order(batch_id, edited.skills, order.skills)
        uow.batch_review.update_batch(batch_id, {
            "skills": list(edited.skills), "task_count": edited.task_count,
            "duration_seconds": float(edited.duration_seconds), "topics": list(edited.topics),
        })
        uow.batch_review.delete_unreleased_tasks(batch_id)
        uow.tasks.add_many(plan_tasks(edited, order.priority))
        _audit(uow, actor, "edit", "batch", batch_id, batch.order_id, {"before": before, "changes": edit.changes()})
        uow.commit()
        view = _one(uow, batch_id)
    log.info("batch %s edited by %s: %s", batch_id, actor, edit.changes())
    return view


def approve_batch(uow: UnitOfWork, batch_id: str, actor: str, comment: str = "") -> dict[str, Any]:
    return _decide(uow, batch_id, actor, BatchReviewStatus.APPROVED, comment)


def reject_batch(uow: UnitOfWork, batch_id: str, actor: str, comment: str = "") -> dict[str, Any]:
    """Reject a batch that is not released: its tasks are CANCELLED and never reach a robot."""
    return _decide(uow, batch_id, actor, BatchReviewStatus.REJECTED, comment)


def _decide(uow: UnitOfWork, batch_id: str, actor: str, target: BatchReviewStatus, comment: str) -> dict[str, Any]:
    batch_id, actor = validate_id(batch_id, "batch_id"), _actor(actor)
    comment = text(comment or "", "comment")
    with uow.writing():
        batch = uow.batches.get(batch_id)
        if batch is None:
            raise NotFoundError("batch", batch_id)
        uow.orders.get(batch.order_id, lock=True)  # writers of an order's unassigned tasks take turns
        current = uow.batch_review.statuses([batch_id])[batch_id]
        if not check_move(batch_id, current, target, released=uow.batch_review.released(batch_id)):
            return _one(uow, batch_id)  # the same decision again: nothing changes
        uow.batch_review.set_status([batch_id], target.value)
        cancelled = 0
        if target is BatchReviewStatus.REJECTED:
            cancelled = _cancel_tasks(uow, batch_id, f"batch {batch_id} rejected by {actor}")
        _audit(uow, actor, target.value, "batch", batch_id, batch.order_id,
               {"from": current, "to": target.value, "comment": comment, "cancelled_tasks": cancelled})
        uow.commit()
        view = _one(uow, batch_id)
    log.info("batch %s %s by %s", batch_id, target.value, actor)
    return view


def _cancel_tasks(uow: UnitOfWork, batch_id: str, reason: str) -> int:
    now = utcnow()
    records = uow.tasks.list(TaskFilter(batch_id=batch_id), MAX_TASKS, 0)
    changed = [r.task for r in records if r.task.transition(TaskStatus.CANCELLED, at=now)]
    if changed:
        uow.tasks.save(changed)
        uow.events.add_many([
            EventRecord(seq=None, event_id=cloud_event_id(t.task_id, TaskStatus.CANCELLED), task_id=t.task_id,
                        robot_id=t.robot_id, status=TaskStatus.CANCELLED, occurred_at=now, received_at=now,
                        data={"reason": reason, "source": "batch_review"})
            for t in changed
        ])
    return len(changed)


def add_batch(
    uow: UnitOfWork, order_id: str, actor: str, *, skills: Sequence[str], task_count: int,
    duration_seconds: float, topics: Sequence[str] = (),
) -> dict[str, Any]:
    """A manual batch for a planned order; reviewed like the planned ones (approved at once when
    the order auto-approves)."""
    order_id, actor = validate_id(order_id, "order_id"), _actor(actor)
    edit = BatchEdit.from_dict({"skills": list(skills) if isinstance(skills, (list, tuple)) else skills,
                                "task_count": task_count, "duration_seconds": duration_seconds,
                                "topics": list(topics) if isinstance(topics, (list, tuple)) else topics})
    with uow.writing():
        order = uow.orders.get(order_id, lock=True)
        if order is None:
            raise NotFoundError("order", order_id)
        existing = set(uow.batch_review.batch_ids_of_order(order_id))
        n = len(existing) + 1
        while f"{order_id}_batch_m{n}" in existing:
            n += 1
        batch_id = f"{order_id}_batch_m{n}"
        try:
            batch = Batch(batch_id=batch_id, order_id=order_id, scene=order.scene, sub_scene=order.sub_scene,
                          skills=edit.skills or (), task_count=edit.task_count or 1,
                          duration_seconds=edit.duration_seconds or 60.0, topics=edit.topics or ())
        except ValueError as exc:
            raise PlanningError(f"cannot add a batch to order {order_id!r}: {exc}") from None
        check_skills_of_order(batch_id, batch.skills, order.skills)
        uow.batches.add_many([batch])
        policy = uow.batch_review.order_policy(order_id)
        status = initial_status(policy[0] if policy else True)
        uow.batch_review.set_status([batch_id], status.value)
        uow.tasks.add_many(plan_tasks(batch, order.priority))
        _audit(uow, actor, "add_batch", "batch", batch_id, order_id, {**edit.changes(), "review_status": status.value})
        uow.commit()
        view = _one(uow, batch_id)
    log.info("batch %s added to order %s by %s", batch_id, order_id, actor)
    return view


def audit_log(uow: UnitOfWork, *, order_id: str | None = None, entity_id: str | None = None, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    limit, offset = page(limit, offset)
    if order_id is not None:
        order_id = validate_id(order_id, "order_id")
    if entity_id is not None:
        entity_id = validate_id(entity_id, "entity_id")
    with uow.reading():
        records = uow.audit.list(order_id=order_id, entity_id=entity_id, limit=limit, offset=offset)
    return [
        {"seq": r.seq, "at": r.at.isoformat(), "actor": r.actor, "action": r.action, "entity_kind": r.entity_kind,
         "entity_id": r.entity_id, "order_id": r.order_id, "details": r.details}
        for r in records
    ]

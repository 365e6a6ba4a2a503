"""Dataset search (reference design 10.4): datasets by scene, sub-scene and skills, with their
lineage (order, batch, task, robot, collector), QC outcome and cloud location; paginated.
The API, the CLI (``axon-dagster datasets``) and the pages all call :func:`search_datasets`."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Sequence

from axon_dagster.domain import DatasetStatus, QcOutcome, validate_id
from axon_dagster.domain.model import bounded_utc
from axon_dagster.domain.ids import validate_label

from .persistence import SqlAlchemyUnitOfWork
from .persistence.review_repositories import DatasetQuery
from .validation import enum_value, page, text
from .errors import InvalidRequestError

FILTERS = ("scene", "sub_scene", "skill", "status", "outcome", "order_id", "batch_id", "robot_id", "collector_id", "since", "until")


def parse_time(value: Any, field: str) -> datetime | None:
    """``2026-11-01`` or a full ISO 8601 timestamp; naive values are UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise InvalidRequestError(f"{field} is not a date or ISO 8601 timestamp: {value!r}") from None
    else:
        raise InvalidRequestError(f"{field} must be a date string, got {type(value).__name__}")
    return bounded_utc(parsed, field)


def build_query(
    *,
    scene: str | None = None,
    sub_scene: str | None = None,
    skills: Sequence[str] = (),
    status: str | None = None,
    outcome: str | None = None,
    order_id: str | None = None,
    batch_id: str | None = None,
    robot_id: str | None = None,
    collector_id: str | None = None,
    since: Any = None,
    until: Any = None,
) -> DatasetQuery:
    """Validate filters (each error names its filter); empty strings mean "no filter"."""
    def opt_id(value: str | None, field: str) -> str | None:
        return validate_id(value, field) if value else None

    return DatasetQuery(
        scene=opt_id(scene, "scene"),
        sub_scene=validate_label(sub_scene, "sub_scene") if sub_scene else None,
        skills=tuple(validate_id(s, "skill") for s in skills if s),
        status=enum_value(DatasetStatus, status.upper(), "status").value if status else None,  # `uploaded` reads as UPLOADED
        outcome=enum_value(QcOutcome, outcome, "outcome").value if outcome else None,
        order_id=opt_id(order_id, "order_id"),
        batch_id=opt_id(batch_id, "batch_id"),
        robot_id=opt_id(robot_id, "robot_id"),
        collector_id=text(collector_id, "collector_id", limit=256) if collector_id else None,
        since=parse_time(since, "since"),
        until=parse_time(until, "until"),
    )


def search_datasets(uow: SqlAlchemyUnitOfWork, query: DatasetQuery, *, limit: int = 100, offset: int = 0) -> dict[str, Any]:
    """``{datasets: [...], total, limit, offset}`` in creation order (then dataset id)."""
    limit, offset = page(limit, offset)
    with uow.reading():
        rows, total = uow.dataset_search.search(query, limit, offset)
    datasets = []
    for r in rows:
        datasets.append({
            "dataset_id": r["dataset_id"],
            "status": r["status"],
            "qc_score": r["qc_score"],
            "qc_outcome": r["qc_outcome"],
            "reviewed_by": r["reviewed_by"],
            "cloud_uri": r["cloud_uri"],
            "last_upload_error": r["last_upload_error"],
            "cache_path": r["cache_path"],
            "dataset_digest": r["dataset_digest"],
            "size_bytes": r["size_bytes"],
            "created_at": r["created_at"].isoformat(),
            "updated_at": r["updated_at"].isoformat(),
            "scene": r["scene"],
            "sub_scene": r["sub_scene"],
            "skills": list(r["skills"]),
            "topics": list(r["topics"]),
            "duration_seconds": r["duration_seconds"],
            "priority": r["priority"],  # the order's, as its tasks carry it: what uploads are ranked by
            "lineage": {
                "order_id": r["order_id"],
                "batch_id": r["batch_id"],
                "task_id": r["task_id"],
                "robot_id": r["robot_id"],
                "collector_id": r["data_collector_id"],
            },
        })
    return {"datasets": datasets, "total": total, "limit": limit, "offset": offset}

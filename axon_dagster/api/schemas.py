"""Request bodies of the control-plane API. Unknown keys are refused (422), so a typo in a field
name is an error rather than a silently ignored setting. Responses are the service layer's views
(``axon_dagster.control_plane.views``), which FastAPI validates and documents through pydantic."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field

from .asgi import INT64_MAX

# Query integers are bounded, so a 100-digit offset is a 422 and never reaches the database.
Offset = Annotated[int, Query(ge=0, le=INT64_MAX)]
Cursor = Annotated[int, Query(ge=0, le=INT64_MAX)]
Limit = Annotated[int, Query(ge=1, le=10_000)]
INT32 = 2**31 - 1  # priority and task_count are 32-bit columns


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisterRobot(Body):
    robot_id: str
    name: str = ""


class RotateToken(Body):
    # How long the replaced token keeps working (0: not at all; at most 7 days).
    overlap_seconds: float = Field(3600.0, ge=0, le=7 * 24 * 3600)


class CreateOrder(Body):
    order_id: str
    scene: str
    sub_scene: str = ""
    skills: list[str]
    requirements: dict[str, Any] = Field(default_factory=dict)
    priority: int = Field(0, ge=-INT32 - 1, le=INT32)
    created_by: str = ""


class ManualBatchBody(Body):
    skills: list[str]
    task_count: int | None = None
    duration_seconds: float | None = None
    topics: list[str] | None = None


class PlanOrder(Body):
    strategy: str = "per_skill"
    task_count: int = 1
    duration_seconds: float = 60.0
    topics: list[str] = Field(default_factory=list)
    manual_batches: list[ManualBatchBody] | None = None


class DispatchOrder(Body):
    robot_ids: list[str] | None = None


class TransitionTask(Body):
    status: str
    reason: str | None = None
    data: dict[str, Any] | None = None


class EdgeEvent(Body):
    """One event of ``POST /edge/events {"events": [...]}`` (the route checks the shape itself)."""

    event_id: str
    task_id: str
    status: str
    occurred_at: datetime | None = None
    data: dict[str, Any] | None = None


class DatasetCached(Body):
    task_id: str
    cache_path: str
    dataset_digest: str
    size_bytes: int


class DatasetInspected(Body):
    score: float
    outcome: str
    report: dict[str, Any] = Field(default_factory=dict)


class DatasetReview(Body):
    # Who decided: the signed-in person (omit it; naming someone else is refused). A service token
    # names the person it relays; with no authentication configured it is required.
    reviewer: str | None = None
    approve: bool
    comment: str = ""


class DatasetUploaded(Body):
    cloud_uri: str
    dataset_digest: str


class DatasetUploadFailed(Body):
    reason: str  # why the upload failed for good (the failed op's error message)


# ---------------------------------------------------------------------- batch review (admin.py)
# Strict: a string where a number belongs is refused, never coerced. ``actor`` is only read from a
# service token or the open embedded default (a signed-in person is recorded as themselves).


class ActorBody(Body):
    model_config = ConfigDict(extra="forbid", strict=True)
    actor: str | None = Field(None, max_length=128)


class ReviewPolicyBody(ActorBody):
    auto_approve_batches: bool | None = None
    recording_template: str | None = Field(None, max_length=128)


class BatchEditBody(ActorBody):
    skills: list[str] | None = Field(None, max_length=64)
    task_count: int | None = Field(None, ge=-INT32 - 1, le=INT32)
    duration_seconds: float | None = None
    topics: list[str] | None = Field(None, max_length=1024)


class BatchDecisionBody(ActorBody):
    comment: str | None = Field(None, max_length=4096)


class NewBatchBody(ActorBody):
    skills: list[str] = Field(max_length=64)
    task_count: int = Field(ge=-INT32 - 1, le=INT32)
    duration_seconds: float
    topics: list[str] | None = Field(None, max_length=1024)

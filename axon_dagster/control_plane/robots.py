"""Robots and their tokens: registration, rotation, revocation, bearer authentication, "last seen"."""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
import threading
from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, field_validator

from axon_dagster.domain import (
    utcnow,
    validate_id,
)

from .errors import AlreadyExistsError, AuthenticationError, InvalidRequestError, NotFoundError
from .persistence import SqlAlchemyUnitOfWork
from .persistence.errors import DuplicateKeyError
from .validation import text
from .views import (
    RegisteredRobot,
    RobotView,
)

log = logging.getLogger(__name__)

UnitOfWork = SqlAlchemyUnitOfWork

# "Last seen" is written at most this often per robot and API process (a fleet dashboard's grain).
LAST_SEEN_RESOLUTION = timedelta(seconds=30)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def register_robot(uow: UnitOfWork, robot_id: str, name: str = "") -> RegisteredRobot:
    """Register a robot and return its bearer token (shown once; only its SHA-256 is stored)."""
    robot_id = validate_id(robot_id, "robot_id")
    name = text(name or "", "name", limit=256)
    token = secrets.token_urlsafe(32)
    with uow.writing():
        if uow.robots.get(robot_id) is not None:
            raise AlreadyExistsError("robot", robot_id)
        try:
            uow.robots.add(robot_id, name, hash_token(token), utcnow())
        except DuplicateKeyError:
            raise AlreadyExistsError("robot", robot_id) from None
        uow.commit()
    log.info("registered robot %s", robot_id)
    return RegisteredRobot(robot_id=robot_id, token=token)


MAX_TOKEN_OVERLAP = timedelta(days=7)


def rotate_robot_token(uow: UnitOfWork, robot_id: str, overlap_seconds: float = 3600.0) -> RegisteredRobot:
    """A new token for ``robot_id`` (shown once). The old one keeps working for ``overlap_seconds``
    (so a robot can be given the new one without a gap), none at all after a revocation."""
    robot_id = validate_id(robot_id, "robot_id")
    if not isinstance(overlap_seconds, (int, float)) or isinstance(overlap_seconds, bool) or not (
        0 <= overlap_seconds <= MAX_TOKEN_OVERLAP.total_seconds()
    ):
        raise InvalidRequestError(f"overlap_seconds must be between 0 and {MAX_TOKEN_OVERLAP.total_seconds():.0f}, got {overlap_seconds!r}")
    token, now = secrets.token_urlsafe(32), utcnow()
    with uow.writing():
        robot = uow.robots.get(robot_id)
        if robot is None:
            raise NotFoundError("robot", robot_id)
        keep_old = robot.tokens_revoked_at is None and overlap_seconds > 0
        current_hash = uow.robots.token_hash(robot_id)
        until = now + timedelta(seconds=overlap_seconds) if keep_old else None
        uow.robots.set_tokens(robot_id, token_hash=hash_token(token), previous_token_hash=current_hash if keep_old else None,
                              previous_token_expires_at=until, tokens_revoked_at=None)
        uow.commit()
    log.info("robot %s: token rotated (old token valid until %s)", robot_id, until.isoformat() if until else "now")
    return RegisteredRobot(robot_id=robot_id, token=token, previous_token_valid_until=until)


def revoke_robot_tokens(uow: UnitOfWork, robot_id: str) -> RobotView:
    """No token of ``robot_id`` is accepted any more (a lost or stolen robot) until
    :func:`rotate_robot_token` issues a new one."""
    robot_id = validate_id(robot_id, "robot_id")
    with uow.writing():
        if uow.robots.get(robot_id) is None:
            raise NotFoundError("robot", robot_id)
        uow.robots.set_tokens(robot_id, tokens_revoked_at=utcnow(), previous_token_hash=None, previous_token_expires_at=None)
        robot = uow.robots.get(robot_id)
        uow.commit()
    assert robot is not None
    log.warning("robot %s: tokens revoked", robot_id)
    return RobotView.of(robot)


def authenticate_robot(uow: UnitOfWork, token: str | None) -> str:
    """The robot a bearer token belongs to (one read of the unique token index; writes nothing:
    "last seen" is :class:`LastSeen`'s batched bookkeeping)."""
    if not token:
        raise AuthenticationError()
    with uow.reading():
        robot = uow.robots.by_token_hash(hash_token(token))
    if robot is None:
        raise AuthenticationError()
    return robot.robot_id


def robot_token_index(uow: UnitOfWork) -> dict[str, tuple[str, datetime | None]]:
    """Every accepted token's hash -> (robot id, valid until or None), as :func:`authenticate_robot`
    would accept them now (one read of the robots table; the API keeps it in memory)."""
    with uow.reading():
        return uow.robots.token_index()


class LastSeen:
    """Robots' "last seen" times, noted in memory on the request path and written in one batched
    UPDATE by :meth:`flush` (the API calls it every few seconds off the request path). A robot is
    written at most once per ``resolution`` per process, however often it calls. Each API process
    keeps its own; the UPDATE never moves a time backwards, so replicas agree."""

    def __init__(self, resolution: timedelta = LAST_SEEN_RESOLUTION) -> None:
        self._pending: dict[str, datetime] = {}
        self._written: dict[str, datetime] = {}
        self._resolution = resolution
        self._lock = threading.Lock()

    def saw(self, robot_id: str, at: datetime | None = None) -> None:
        at = at or utcnow()
        with self._lock:
            written = self._written.get(robot_id)
            if written is not None and timedelta(0) <= at - written < self._resolution:
                return  # recent enough in the store already
            self._pending[robot_id] = at

    def flush(self, uow: UnitOfWork) -> int:
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return 0
        try:
            with uow.writing():
                uow.robots.touch_many(pending)
                uow.commit()
            with self._lock:
                self._written.update(pending)
        except Exception:
            with self._lock:  # keep them for the next flush (newer sightings win)
                for robot_id, at in pending.items():
                    self._pending.setdefault(robot_id, at)
            raise
        return len(pending)


def list_robots(uow: UnitOfWork) -> list[RobotView]:
    with uow.reading():
        return robot_views(uow)


def robot_views(uow: UnitOfWork) -> list[RobotView]:
    """Every robot with what it last reported (uplink, recorder); inside a ``reading()``."""
    uplinks, recorders = uow.uplinks.all(), uow.recorders.all()
    return [
        RobotView.of(r, uplinks[r.robot_id].to_dict() if r.robot_id in uplinks else None, recorders.get(r.robot_id))
        for r in uow.robots.list()
    ]


_TOPIC = Annotated[StrictStr, Field(min_length=1, max_length=256)]
_TOPICS = Field(default_factory=list, max_length=1000)
_WORD = Field("", max_length=64)
_COUNTS = Annotated[dict[Annotated[StrictStr, Field(max_length=32)], Annotated[StrictInt, Field(ge=0)]], Field(max_length=8)]


class RecorderReport(BaseModel):
    """``PUT /edge/recorder``: what the robot's edge agent last saw of its recorder (the fields the
    shared policy :func:`axon_dagster.recorder.health.health_of_report` judges). Bounded: at most
    1,000 topics per list, 256 characters per topic, 2,000 per error."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    reachable: StrictBool = True
    error: StrictStr = Field("", max_length=2000)  # why it is unreachable
    service_status: StrictStr = Field("ok", max_length=64)
    state: StrictStr = _WORD  # idle / ready / recording / paused (Axon v0.4)
    is_recording: StrictBool = False
    dataset_path: StrictStr = Field("", max_length=1024)
    last_error: StrictStr = Field("", max_length=2000)
    disk_usage_gb: float = Field(0.0, ge=0, le=1_000_000)
    disk_state: StrictStr = _WORD  # its disk guard: normal / warn / hard_limit
    active_topics: list[_TOPIC] = _TOPICS
    subscribed_topics: list[_TOPIC] = _TOPICS
    available_topics: list[_TOPIC] = _TOPICS
    topic_counts: dict[_TOPIC, _COUNTS] = Field(default_factory=dict, max_length=1000)  # {topic: {received, written, dropped}}

    @field_validator("disk_usage_gb")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("disk_usage_gb must be a finite number")
        return value


def report_recorder(uow: UnitOfWork, robot_id: str, report: RecorderReport) -> dict[str, Any]:
    """Keep what the robot reported of its recorder (replacing its previous report)."""
    at = utcnow()
    body = report.model_dump()
    with uow.writing():
        uow.recorders.put(robot_id, body, at)
        uow.commit()
    return {**body, "reported_at": at.isoformat()}


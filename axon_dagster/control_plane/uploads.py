"""Robots upload their own recordings into the staging area (issue 13, CONTRACT-13).

- :func:`grant_upload` (admin, the bandwidth sensor): a RECORDED dataset whose edge gate passed
  may be uploaded by its robot until the grant expires (the task's revision moves: the robot's
  pull shows ``task["upload"]``). :func:`expire_grants` (the API runs it every few seconds) turns
  due grants EXPIRED and their datasets back to RECORDED; a later grant resumes the same multipart
  uploads (``upload_ids`` carried over) when the store still holds them.
- :func:`report_uplink` (robot): its bandwidth and upload windows, shown with the robot and in
  :func:`upload_queue` (what the bandwidth sensor decides from).
- :func:`plan_upload` / :func:`complete_upload` (robot): pre-signed part targets for every file of
  the manifest (parts already held listed as ``done_parts``), then completion, a SHA-256 check of
  every staged object against the manifest (the digest the store computed while the parts came in
  where it can: the local store; else the object read back), STAGED (grant USED) — or, on a mismatch, the staged
  objects deleted, the grant EXPIRED, the dataset back to RECORDED with the reason.
- :func:`part_key` (robot, the file store's ingest endpoint): where a signed part goes (the
  signature stands for the grant).

Keys are derived from ids and the manifest's validated names (``domain.layout.staging_key``),
never from a path a robot reported. Store calls (network, hashing) run outside the database
transactions that decide; each decision re-reads what it decides on under its locks.
"""

from __future__ import annotations

import logging
import math
import secrets
from datetime import datetime, timedelta
from typing import Any, Mapping, Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator

from axon_dagster.domain import Dataset, DatasetStatus, GrantStatus, TaskStatus, UploadGrant, UploadRefused, utcnow, validate_id
from axon_dagster.domain.layout import staging_key, staging_prefix
from axon_dagster.storage.object_stores import ObjectNotFound, UnknownUpload
from axon_dagster.storage.object_stores.staging import DEFAULT_PART_SIZE, StagingUploads, plan_parts

from .errors import InvalidRequestError, NotFoundError
from .persistence import SqlAlchemyUnitOfWork
from .persistence.upload_repositories import UplinkRecord
from .tasks import locked_task
from .validation import page
from .robots import robot_views
from .views import DatasetView, UploadCandidateView, UploadGrantView, UploadQueueView

log = logging.getLogger(__name__)

UnitOfWork = SqlAlchemyUnitOfWork

DEFAULT_GRANT_TTL_SECONDS = 900
ACTOR = "control-plane"
_EXPIRE_BATCH = 500


# ------------------------------------------------------------------------------------ request bodies


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class GrantRequest(_Body):
    ttl_seconds: StrictInt = Field(DEFAULT_GRANT_TTL_SECONDS, ge=10, le=7 * 24 * 3600)


class UploadWindow(_Body):
    start: StrictStr = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    end: StrictStr = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")


class UplinkReport(_Body):
    """``PUT /edge/uplink``: the robot's measured uplink (Mbit/s, null: unknown) and the daily
    windows (``HH:MM``, in ``timezone``) when it may upload; no windows: any time."""

    mbps: float | None = Field(None, ge=0, le=1_000_000)
    windows: list[UploadWindow] = Field(default_factory=list, max_length=48)
    timezone: StrictStr = Field("UTC", max_length=64)

    @field_validator("mbps")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("mbps must be a finite number")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value[:64]!r} (an IANA name such as UTC or Europe/Berlin)") from None
        return value


class PlanRequest(_Body):
    grant_id: StrictStr = Field(max_length=128)


class PartDone(_Body):
    number: StrictInt = Field(ge=1, le=10_000)
    etag: StrictStr = Field(min_length=1, max_length=256)


class CompleteRequest(_Body):
    grant_id: StrictStr = Field(max_length=128)
    files: dict[StrictStr, list[PartDone]] = Field(max_length=10_000)


# ------------------------------------------------------------------------------------ grants


def grant_upload(uow: UnitOfWork, dataset_id: str, ttl_seconds: int = DEFAULT_GRANT_TTL_SECONDS, now: datetime | None = None) -> UploadGrantView:
    """Let the dataset's robot upload it for ``ttl_seconds``. A dataset that already holds an
    unexpired ACTIVE grant gets that grant back (the sensor may ask twice); a due one is expired
    first and a new grant issued, resuming its multipart uploads."""
    dataset_id = validate_id(dataset_id, "dataset_id")
    if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int):
        raise InvalidRequestError(f"ttl_seconds must be an integer, got {ttl_seconds!r}")
    now = now or utcnow()
    with uow.writing():
        record = locked_task(uow, dataset_id)
        task = record.task
        found = uow.datasets.get(dataset_id, lock=True)
        if found is None:
            raise NotFoundError("dataset", dataset_id)
        dataset = found.dataset
        previous = uow.grants.latest_for(dataset_id)
        if previous is not None and previous.status is GrantStatus.ACTIVE:
            if not previous.due(now):
                return UploadGrantView.of(previous)
            previous = _expire(uow, previous, dataset, now, "expired")
        if task.robot_id is None:
            raise UploadRefused(f"task {dataset_id} has no robot")
        if task.status is not TaskStatus.EXECUTED:
            why = f" ({task.failure_reason})" if task.failure_reason else ""
            raise UploadRefused(f"task {dataset_id} is {task.status.value}{why}: nothing to upload")
        dataset.mark_granted()
        grant = UploadGrant.issue(f"g-{secrets.token_hex(10)}", dataset_id, task.robot_id, now, timedelta(seconds=ttl_seconds), previous)
        uow.grants.add(grant)
        uow.datasets.save(dataset)
        uow.tasks.save([task])  # a new revision: the robot's (long-)poll sees task["upload"]
        _audit(uow, "dataset.granted", dataset_id, {"grant_id": grant.grant_id, "expires_at": grant.expires_at.isoformat(),
                                                      "resumes": sorted(grant.upload_ids)})
        uow.commit()
    log.info("dataset %s: upload granted to %s until %s (%s)", dataset_id, grant.robot_id, grant.expires_at.isoformat(), grant.grant_id)
    return UploadGrantView.of(grant)


def expire_grants(uow: UnitOfWork, now: datetime | None = None) -> int:
    """Turn every ACTIVE grant past its expiry EXPIRED, its dataset back to RECORDED (to be granted
    again), and move the task's revision (``task["upload"]`` disappears). Returns how many."""
    now = now or utcnow()
    with uow.reading():
        due = uow.grants.due(now, _EXPIRE_BATCH)
    expired = 0
    for grant_id in due:
        with uow.writing():
            grant = uow.grants.get(grant_id)
            if grant is None or not grant.due(now):
                continue  # used or expired meanwhile
            locked_task(uow, grant.dataset_id)
            grant = uow.grants.get(grant_id, lock=True)
            found = uow.datasets.get(grant.dataset_id, lock=True) if grant is not None else None
            if grant is None or found is None or not grant.due(now):
                continue
            _expire(uow, grant, found.dataset, now, "expired")
            uow.commit()
            expired += 1
        log.info("upload grant %s of dataset %s expired", grant_id, grant.dataset_id)
    return expired


def _expire(uow: UnitOfWork, grant: UploadGrant, dataset: Dataset, now: datetime, why: str, reason: str | None = None) -> UploadGrant:
    """Within a write transaction holding the task's locks: grant EXPIRED, dataset back to RECORDED."""
    grant = grant.expired(now)
    uow.grants.save(grant)
    if dataset.grant_lapsed(reason):
        uow.datasets.save(dataset)
    task = uow.tasks.get(dataset.task_id)
    if task is not None:
        uow.tasks.save([task.task])  # the robot's pull: upload -> null
    _audit(uow, f"grant.{why}", dataset.dataset_id, {"grant_id": grant.grant_id, **({"reason": reason} if reason else {})})
    return grant


def _audit(uow: UnitOfWork, action: str, dataset_id: str, details: dict[str, Any]) -> None:
    uow.audit.add(at=utcnow(), actor=ACTOR, action=action, entity_kind="dataset", entity_id=dataset_id, order_id=None, details=details)


# ------------------------------------------------------------------------------------ uplinks and the queue


def report_uplink(uow: UnitOfWork, robot_id: str, report: UplinkReport) -> dict[str, Any]:
    record = UplinkRecord(robot_id, report.mbps, [w.model_dump() for w in report.windows], report.timezone, utcnow())
    with uow.writing():
        uow.uplinks.put(record)
        uow.commit()
    return record.to_dict()


def upload_queue(uow: UnitOfWork, limit: int = 1000) -> UploadQueueView:
    limit, _ = page(limit, 0)
    now = utcnow()
    with uow.reading():
        candidates = uow.upload_queue.waiting(limit)
        grants = [g for g in uow.grants.active(limit) if not g.due(now)]
        robots = robot_views(uow)
    return UploadQueueView(
        candidates=[
            UploadCandidateView(c.dataset_id, c.task_id, c.robot_id, c.order_id, c.priority, c.size_bytes, c.recorded_at,
                                max(0.0, (now - c.recorded_at).total_seconds()), c.last_upload_error)
            for c in candidates
        ],
        active_grants=[UploadGrantView.of(g) for g in grants],
        robots=robots,
    )


# ------------------------------------------------------------------------------------ the robot's upload


def _robot_upload(uow: UnitOfWork, robot_id: str, task_id: str, grant_id: str, now: datetime) -> tuple[Dataset, UploadGrant]:
    """Within a write transaction: the robot's dataset and its usable grant, else a refusal. A due
    grant is expired (committed) before the refusal."""
    record = uow.tasks.get(task_id)
    if record is None or record.task.robot_id != robot_id:
        raise NotFoundError("task", task_id)  # never say whether another robot holds it
    found = uow.datasets.get(task_id)
    if found is None or found.dataset.manifest is None:
        raise NotFoundError("recording of task", task_id)
    dataset = found.dataset
    grant = uow.grants.get(grant_id) if isinstance(grant_id, str) and grant_id else None
    if grant is None or grant.dataset_id != task_id:
        raise UploadRefused(f"no grant {str(grant_id)[:128]!r} for task {task_id}: wait for an upload grant in the task pull")
    if grant.due(now):
        locked_task(uow, task_id)
        current = uow.grants.get(grant.grant_id, lock=True)
        locked = uow.datasets.get(task_id, lock=True)
        if current is not None and locked is not None and current.due(now):
            _expire(uow, current, locked.dataset, now, "expired")
            uow.commit()
        raise UploadRefused(f"grant {grant.grant_id} expired at {grant.expires_at.isoformat()}; wait for a new grant")
    if dataset.status not in (DatasetStatus.GRANTED, DatasetStatus.RECORDED):
        raise UploadRefused(f"dataset {task_id} is already {dataset.status.value}: nothing to upload")
    grant.usable(now)  # a USED or EXPIRED grant: refused, saying which
    return dataset, grant


def plan_upload(uow: UnitOfWork, store: StagingUploads, robot_id: str, task_id: str, grant_id: str,
                *, part_size: int = DEFAULT_PART_SIZE, now: datetime | None = None) -> dict[str, Any]:
    """Part targets for every file of the recording (pre-signed, expiring with the grant) and the
    parts the store already holds (``done_parts``: a resume). Calling it again re-issues them."""
    task_id = validate_id(task_id, "task_id")
    now = now or utcnow()
    with uow.writing():
        dataset, grant = _robot_upload(uow, robot_id, task_id, grant_id, now)
    assert dataset.manifest is not None
    upload_ids = dict(grant.upload_ids)
    seconds = grant.seconds_left(now)
    files = []
    for f in dataset.manifest.files:
        key = staging_key(robot_id, task_id, f.name)
        upload_id = upload_ids.get(f.name)
        parts = plan_parts(f.size, part_size)
        done = store.list_parts(key, upload_id) if upload_id else {}
        if not done:  # nothing held (or the upload is gone): a fresh multipart upload
            if upload_id:
                store.abort_multipart(key, upload_id)
            upload_id = upload_ids[f.name] = store.start_multipart(key)
        # Targets first: a store that learns the layout from them drops held parts of another one.
        targets = {t.number: t for t in store.part_targets(key, upload_id, parts, seconds)}
        done = store.list_parts(key, upload_id) if done else {}
        files.append({
            "name": f.name, "size": f.size, "sha256": f.sha256,
            "parts": [{"offset": p.offset, "size": p.size, **targets[p.number].to_json()} for p in parts],
            "done_parts": [{"number": n, "etag": etag} for n, etag in sorted(done.items())],
        })
    if upload_ids != dict(grant.upload_ids):
        with uow.writing():
            current = uow.grants.get(grant.grant_id, lock=True)
            if current is None or current.status is not GrantStatus.ACTIVE:
                raise UploadRefused(f"grant {grant.grant_id} ended while planning; wait for a new grant")
            uow.grants.save(current.with_upload_ids(upload_ids))
            uow.commit()
    log.info("robot %s: upload plan for %s (%d files, grant %s)", robot_id, task_id, len(files), grant.grant_id)
    return {"grant_id": grant.grant_id, "expires_at": grant.expires_at.isoformat(), "part_size": part_size, "files": files}


def part_key(robot_id: str, task_id: str, name: str) -> str:
    """The staging key of one file of the robot's own recording (the ingest endpoint's target).

    No database read: the route has checked the part URL's signature against the requesting
    robot, and the control plane signs URLs only in :func:`plan_upload`, for the robot's own
    granted task and file, expiring with the grant; the upload id binds the key (robot, task, file)
    in the store, and a completed or refused upload holds no parts any more (its URLs are refused
    as unknown uploads)."""
    return staging_key(robot_id, validate_id(task_id, "task_id"), name)


def complete_upload(uow: UnitOfWork, store: StagingUploads, robot_id: str, task_id: str, grant_id: str,
                    files: Mapping[str, Sequence[PartDone]], now: datetime | None = None) -> DatasetView:
    """Complete every file's multipart upload, check each staged object's SHA-256 against the
    manifest: STAGED (grant USED, event ``dataset.staged``). A mismatch deletes the staged objects,
    expires the grant, sends the dataset back to RECORDED with the reason and raises UploadRefused."""
    task_id = validate_id(task_id, "task_id")
    now = now or utcnow()
    with uow.writing():
        record = uow.tasks.get(task_id)
        found = uow.datasets.get(task_id)
        if record is not None and record.task.robot_id == robot_id and found is not None:
            grant = uow.grants.get(grant_id) if isinstance(grant_id, str) and grant_id else None
            if grant is not None and grant.status is GrantStatus.USED and grant.dataset_id == task_id:
                return DatasetView.of_record(found)  # a replay (the robot missed the answer)
        dataset, grant = _robot_upload(uow, robot_id, task_id, grant_id, now)
    assert dataset.manifest is not None
    expected = [f.name for f in dataset.manifest.files]
    missing, unknown = sorted(set(expected) - set(files)), sorted(set(files) - set(expected))
    if missing or unknown:
        raise InvalidRequestError(f"files must name exactly the manifest's files: missing {missing[:5]}, unknown {unknown[:5]}")
    for name in expected:
        if name not in grant.upload_ids:
            raise UploadRefused(f"no upload of {name} was planned: ask for an upload plan first")
    for f in dataset.manifest.files:
        numbers = [p.number for p in files[f.name]]
        if len(set(numbers)) != len(numbers):
            raise InvalidRequestError(f"files[{f.name!r}] names a part twice")
    hashed: dict[str, str] = {}
    for f in dataset.manifest.files:
        key = staging_key(robot_id, task_id, f.name)
        try:
            # The local store hashes parts as they come in and answers the object's SHA-256; the
            # others answer None and their object is read back below.
            digest = store.complete_multipart(key, grant.upload_ids[f.name], {p.number: p.etag for p in files[f.name]})
            if digest:
                hashed[f.name] = digest
        except UnknownUpload as gone:
            # Completed by an earlier call whose answer the robot did not get (a timeout, then a
            # retry): the object is there; its digest decides below. Otherwise: plan again.
            try:
                hashed[f.name] = store.sha256_of(key)
            except ObjectNotFound:
                raise gone from None
    mismatch = None
    for f in dataset.manifest.files:
        actual = hashed.get(f.name) or store.sha256_of(staging_key(robot_id, task_id, f.name))
        if actual != f.sha256:
            mismatch = f"digest of staged {f.name} is {actual}, the robot reported {f.sha256}"
            break
    if mismatch is not None:
        store.delete_prefix(staging_prefix(robot_id, task_id))
    with uow.writing():
        task_record = locked_task(uow, task_id)
        current = uow.grants.get(grant.grant_id, lock=True)
        locked = uow.datasets.get(task_id, lock=True)
        assert current is not None and locked is not None
        dataset = locked.dataset
        if mismatch is not None:
            if current.status is GrantStatus.ACTIVE:
                _expire(uow, current, dataset, now, "refused", reason=mismatch)
            uow.commit()
            log.warning("robot %s: staging of %s refused: %s", robot_id, task_id, mismatch)
            raise UploadRefused(mismatch)
        if current.status is GrantStatus.USED and dataset.status is DatasetStatus.STAGED:
            return DatasetView.of_record(locked)  # a concurrent completion of the same upload got there first
        if current.status is not GrantStatus.ACTIVE or dataset.status is not DatasetStatus.GRANTED:
            raise UploadRefused(f"grant {grant.grant_id} is {current.status.value} (dataset {dataset.status.value}); wait for a new grant")
        dataset.mark_staged()
        uow.datasets.save(dataset)
        uow.grants.save(current.used(now))
        uow.tasks.save([task_record.task])  # upload -> null in the robot's pull
        _audit(uow, "dataset.staged", task_id, {"grant_id": grant.grant_id, "files": len(expected),
                                                 "bytes": dataset.manifest.total_bytes if dataset.manifest else 0})
        uow.commit()
    log.info("dataset %s staged by %s (%d files verified)", task_id, robot_id, len(expected))
    return DatasetView.of(dataset, locked.created_at, locked.inspection_report)


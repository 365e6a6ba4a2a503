"""What robots call all the time: pull their tasks (by per-robot revision), push status events;
and the task-status sensor's feed of published events."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime
from typing import Any, Mapping, Sequence

from axon_dagster.domain import (
    Dataset,
    EdgeGate,
    ManifestError,
    RecordingManifest,
    IllegalTransitionError,
    Task,
    TaskEvent,
    TaskStatus,
    utcnow,
)
from axon_dagster.domain.model import bounded_utc
from axon_dagster.domain.uploads import MAX_FILE_BYTES

from .tasks import checked_event_data, cloud_event_id, copy_event_fields, task_views
from .errors import InvalidRequestError, NotFoundError
from .persistence import EventRecord, SqlAlchemyUnitOfWork
from .validation import MAX_PAGE, cursor, page, task_status
from .views import (
    EventPage,
    EventResult,
    EventView,
    TaskPage,
)

log = logging.getLogger(__name__)

UnitOfWork = SqlAlchemyUnitOfWork

def pull_tasks(uow: UnitOfWork, robot_id: str, after: int = 0, limit: int = 100, changed: bool = False) -> TaskPage:
    """This robot's tasks whose revision is greater than ``after``, in revision order: new
    assignments and cloud-side changes (a robot's own events do not come back to it). When
    nothing changed this is one primary-key read of the robot's revision and nothing else;
    ``changed`` (the caller knows the revision moved) skips that read."""
    after = cursor(after)
    limit, _ = page(limit, 0)
    with uow.reading():
        robot = None if changed else uow.robots.get(robot_id)
        if not changed and (robot is None or robot.task_revision <= after):
            return TaskPage(tasks=[], cursor=after)
        records = uow.tasks.changed_for_robot(robot_id, after, limit)
        tasks = task_views(uow, records)
    return TaskPage(tasks=tasks, cursor=records[-1].revision if records else after)


def robot_revisions(uow: UnitOfWork) -> dict[str, int]:
    """Every robot's newest task revision (what a long-polling pull waits for to grow)."""
    with uow.reading():
        return uow.robots.revisions()


def parse_events(raw: Sequence[Mapping[str, Any]]) -> list[TaskEvent]:
    """Build domain events from JSON-ish dicts ``{event_id, task_id, status, occurred_at?, data?}``;
    raises InvalidIdError / InvalidRequestError naming the first bad one."""
    events: list[TaskEvent] = []
    for index, item in enumerate(raw):
        status = task_status(item.get("status"), f"events[{index}].status")
        occurred_at = item.get("occurred_at") or utcnow()
        if isinstance(occurred_at, str):
            try:
                occurred_at = datetime.fromisoformat(occurred_at)
            except ValueError:
                raise InvalidRequestError(f"events[{index}].occurred_at is not an ISO 8601 timestamp: {occurred_at!r}") from None
        if not isinstance(occurred_at, datetime) or occurred_at.tzinfo is None:
            raise InvalidRequestError(f"events[{index}].occurred_at must be a timezone-aware timestamp")
        occurred_at = bounded_utc(occurred_at, f"events[{index}].occurred_at")
        events.append(
            TaskEvent(
                event_id=item.get("event_id"),  # type: ignore[arg-type]  # validated by TaskEvent
                task_id=item.get("task_id"),  # type: ignore[arg-type]
                status=status,
                occurred_at=occurred_at,
                data=checked_event_data(item.get("data")),
            )
        )
    return events


def apply_events(uow: UnitOfWork, robot_id: str, events: Sequence[TaskEvent], *, max_file_bytes: int = MAX_FILE_BYTES) -> list[EventResult]:
    """Apply a robot's status events in order, idempotent by event id.

    A task that is not this robot's (or does not exist) refuses the whole request with
    NotFoundError before anything is written. An illegal transition only rejects that event.
    An EXECUTED event carrying a recording's ``manifest`` and edge ``gate`` (validated up front,
    :func:`recording_of`; a bad one refuses the request) creates the dataset RECORDED; a gate that
    did not pass then fails the task (``edge gate: <reasons>``), a cloud-side move the robot pulls.
    """
    if len(events) > MAX_PAGE:
        raise InvalidRequestError(f"at most {MAX_PAGE} events per request, got {len(events)}")
    payloads = [checked_event_data(e.data) for e in events]  # malformed data refuses the request up front
    recordings = [recording_of(e, data, max_file_bytes) for e, data in zip(events, payloads)]
    now = utcnow()
    results: list[EventResult] = []
    with uow.writing():
        # The rows of the tasks named lock (until commit): events of one task are applied one
        # push at a time and in order, cloud moves of a task wait for them; nothing else waits,
        # not even this robot's other tasks. The whole batch is one transaction.
        if any(r is not None and not r[1].passed for r in recordings):
            # A failed gate fails the task (a new revision: the robot's row lock). Take that lock
            # first, in the order every cloud-side writer takes it (robot, then task): no deadlock.
            uow.robots.lock(robot_id)
        owned = uow.tasks.get_many([e.task_id for e in events], robot_id=robot_id, lock=True)
        foreign = [e.task_id for e in events if e.task_id not in owned]
        if foreign:
            # Same answer for "another robot's" and "no such task": never leak which it is.
            raise NotFoundError("task", foreign[0])
        seen = uow.events.existing_ids([e.event_id for e in events], robot_id)
        changed: dict[str, Task] = {}
        gate_failed: dict[str, Task] = {}
        new_events: list[EventRecord] = []
        for event, data, recording in zip(events, payloads, recordings):
            if event.event_id in seen:
                results.append(EventResult(event.event_id, "duplicate"))
                continue
            task = owned[event.task_id].task
            reason = data.get("reason") if event.status is TaskStatus.FAILED else None
            try:
                moved = task.transition(event.status, reason=reason, at=now)
            except IllegalTransitionError as exc:  # report it; it never blocks the robot's outbox
                log.warning("robot %s: event %s rejected: %s", robot_id, event.event_id, exc)
                results.append(EventResult(event.event_id, "rejected", str(exc)))
                continue
            if not moved:  # the task is already there (a second teleop press): nothing to record
                results.append(EventResult(event.event_id, "duplicate"))
                continue
            copy_event_fields(task, data)
            changed[task.task_id] = task
            seen.add(event.event_id)
            new_events.append(
                EventRecord(
                    seq=None,
                    event_id=event.event_id,
                    task_id=event.task_id,
                    robot_id=robot_id,
                    status=event.status,
                    occurred_at=event.occurred_at,
                    received_at=now,
                    data=data,
                )
            )
            results.append(EventResult(event.event_id, "applied"))
            if recording is not None and _record(uow, task, recording, now):
                gate_failed[task.task_id] = changed.pop(task.task_id)
                new_events.append(_gate_failure_event(task, robot_id, now))
        if changed or gate_failed:
            # The robot's own news: no new revision, no echo in its pull (see TaskRepository.save).
            if changed:
                uow.tasks.save(list(changed.values()), echo=False)
            if gate_failed:  # the cloud's verdict: a new revision, so the robot's pull brings it
                uow.tasks.save(list(gate_failed.values()))
            uow.events.add_many(new_events)
            uow.commit()
    tally = Counter(r.result for r in results)
    log.info("robot %s: %d events (%s)", robot_id, len(events), ", ".join(f"{k} {v}" for k, v in sorted(tally.items())))
    return results


def recording_of(event: TaskEvent, data: dict[str, Any], max_file_bytes: int = MAX_FILE_BYTES) -> tuple[RecordingManifest | None, EdgeGate] | None:
    """The validated manifest and gate of an EXECUTED event (``None`` for any other event, or an
    EXECUTED event from a robot that reports neither); the event keeps them as the robot sent them.
    Raises :class:`ManifestError` (a 422) for a manifest naming another task's files, a path, a bad digest..."""
    if event.status is not TaskStatus.EXECUTED or ("manifest" not in data and "gate" not in data):
        return None
    if "gate" not in data:
        raise ManifestError("an EXECUTED event with a manifest must carry the edge gate's result (data.gate)")
    gate = EdgeGate.parse(data["gate"])
    manifest = None
    if data.get("manifest") is not None:
        manifest = RecordingManifest.parse(data["manifest"], task_id=event.task_id, recording_format=data.get("recording_format", "mcap"),
                                           max_file_bytes=max_file_bytes)
    elif gate.passed:
        raise ManifestError("a recording whose edge gate passed needs its manifest (data.manifest)")
    return manifest, gate


def _record(uow: UnitOfWork, task: Task, recording: tuple[RecordingManifest | None, EdgeGate], now: datetime) -> bool:
    """Store the reported recording (RECORDED) and, when its gate did not pass, fail the task.
    Returns whether the gate failed the task."""
    manifest, gate = recording
    if manifest is not None and uow.datasets.get(task.task_id) is None:
        dataset = Dataset(dataset_id=task.task_id, task_id=task.task_id, source_path=task.dataset_path, manifest=manifest, gate=gate,
                          dataset_digest=manifest.dataset_digest, size_bytes=manifest.total_bytes, updated_at=now)
        uow.datasets.add(dataset, created_at=now)
    if gate.passed:
        return False
    task.transition(TaskStatus.FAILED, reason=gate.failure, at=now)
    log.warning("task %s failed at the edge gate: %s", task.task_id, gate.failure)
    return True


def _gate_failure_event(task: Task, robot_id: str, now: datetime) -> EventRecord:
    return EventRecord(seq=None, event_id=cloud_event_id(task.task_id, TaskStatus.FAILED), task_id=task.task_id, robot_id=robot_id,
                       status=TaskStatus.FAILED, occurred_at=now, received_at=now, data={"reason": task.failure_reason, "source": "cloud"})


def publish_events(uow: UnitOfWork) -> int:
    """Give every committed, unpublished event its seq (``EventRepository.publish``); returns
    how many. A probe of the unpublished-events index when there is nothing to do."""
    published = 0
    with uow.reading():
        if not uow.events.has_unpublished():
            return 0
    while True:
        with uow.writing():
            count = uow.events.publish(_PUBLISH_BATCH)
            uow.commit()
        published += count
        if count < _PUBLISH_BATCH:
            return published


_PUBLISH_BATCH = 10_000


def events_after(uow: UnitOfWork, after: int = 0, limit: int = 100) -> EventPage:
    """The task-status sensor's feed: events with ``seq > after`` in seq order, at most ``limit``.
    Publishes first, so every event committed before this call is in the feed; costs what the
    returned events cost (an index range scan), not what the store holds."""
    after = cursor(after)
    limit, _ = page(limit, 0)
    publish_events(uow)
    with uow.reading():
        records = uow.events.after(after, limit)
    return EventPage(events=[EventView.of(e) for e in records], cursor=records[-1].seq if records else after)  # type: ignore[arg-type]


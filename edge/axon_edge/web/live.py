"""Live recording status for the collector page: the task being recorded, how long it has run,
the recorder's per-topic message counts, disk usage and last error. Starlette-free and light."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from axon_dagster.domain import TaskStatus
from axon_dagster.recorder.protocol import RecorderError


def live_status(agent: Any) -> dict[str, Any]:
    """One snapshot; asks the recorder once (``get_status``). A recorder that does not answer is
    reported as unreachable with its error, never raised: the page keeps showing the rest."""
    executing = agent.db.list_tasks(TaskStatus.EXECUTING)
    task = executing[0] if executing else None
    recorder: dict[str, Any] = {
        "reachable": None,
        "error": None,
        "is_recording": None,
        "dataset_path": None,
        "topics": [],
        "disk_usage_gb": None,
        "last_error": None,
    }
    try:
        status = agent.recorder.get_status()
    except RecorderError as exc:
        recorder.update(reachable=False, error=str(exc) or type(exc).__name__)
    else:
        counts = list(status.batch_sizes)
        recorder.update(
            reachable=True,
            is_recording=status.is_recording,
            dataset_path=status.dataset_path or None,
            topics=[
                {"topic": topic, "messages": counts[i] if i < len(counts) else None}
                for i, topic in enumerate(status.active_topics)
            ],
            disk_usage_gb=status.disk_usage_gb,
            last_error=status.last_error or None,
        )
    recording_task = None
    if task is not None:
        started = task.executing_at
        elapsed = (datetime.now(timezone.utc) - started).total_seconds() if started else None
        recording_task = {
            "task_id": task.task_id,
            "started_at": started.isoformat() if started else None,
            "elapsed_seconds": elapsed,
            "duration_seconds": task.duration_seconds,
            "data_collector_id": task.data_collector_id,
            "skills": list(task.skills),
        }
    return {
        "robot_id": agent.robot_id,
        "recording_task": recording_task,
        "recorder": recorder,
        "outbox_backlog": agent.db.outbox_backlog().count,
    }

"""One recorder-health policy: when a recorder may start a recording, and what makes a recording
in progress unusable.

Only the edge agent talks to a recorder. It judges what it sees with these rules (its supervisor
fails an EXECUTING task on :func:`recording_problem`), and the cloud judges what a robot *reported*
of its recorder with the same rules (:func:`health_of_report`), so that a recording trigger in
Dagster and the robot never disagree on what "healthy" means. Pure: no I/O, no framework.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from .protocol import RecorderStatus


@dataclass(frozen=True)
class RecorderHealth:
    """``ready``: reachable and none of ``reasons`` holds."""

    reachable: bool
    reasons: tuple[str, ...]
    status: RecorderStatus | None = None

    @property
    def ready(self) -> bool:
        return self.reachable and not self.reasons

    def to_dict(self) -> dict[str, Any]:
        return {
            "ready": self.ready,
            "reachable": self.reachable,
            "reasons": list(self.reasons),
            "status": asdict(self.status) if self.status else None,
        }


def recording_problem(status: RecorderStatus) -> str | None:
    """Why a recording in progress cannot go on (None: nothing wrong): Axon's disk guard paused it
    (it never resumes on its own), or the recorder reports an error."""
    if status.paused_by_disk_guard:
        return f"the recorder paused itself: {status.last_error or 'disk hard limit reached'}"
    if status.last_error:
        return f"recorder reported an error: {status.last_error}"
    return None


def assess(
    status: RecorderStatus | None,
    *,
    unreachable: str | None = None,
    service_status: str = "ok",
    max_disk_usage_gb: float | None = None,
) -> RecorderHealth:
    """May this recorder start a recording now? ``unreachable``: why its status could not be read
    (then it is not ready, whatever else); ``service_status``: its ``/health`` answer (ROS has none:
    ``ok``); ``max_disk_usage_gb``: its data must use less."""
    if status is None or unreachable is not None:
        return RecorderHealth(False, (f"recorder unavailable: {unreachable or 'no status'}",))
    reasons = []
    if str(service_status or "ok").lower() != "ok":
        reasons.append(f"recorder health is {service_status!r}")
    if status.is_recording or status.state == "recording":
        reasons.append(f"recorder is already recording ({status.dataset_path or 'unknown dataset'})")
    problem = recording_problem(status)
    if problem:
        reasons.append(problem)
    if status.disk_state == "hard_limit" and not status.paused_by_disk_guard:
        reasons.append("the recorder's disk guard is at its hard limit")
    if max_disk_usage_gb is not None and not status.disk_usage_gb < max_disk_usage_gb:
        reasons.append(f"recorder data uses {status.disk_usage_gb:.3g} GB; the limit is {max_disk_usage_gb:g} GB")
    return RecorderHealth(True, tuple(reasons), status)


_STATUS_FIELDS = (
    "is_recording", "dataset_path", "active_topics", "last_error", "state",
    "subscribed_topics", "topic_counts", "disk_usage_gb", "disk_state",
)


def health_of_report(report: Mapping[str, Any] | None, *, max_disk_usage_gb: float | None = None) -> RecorderHealth:
    """:func:`assess` applied to what a robot reported of its recorder: the edge agent's
    ``/status`` ``recorder`` object (``reachable``, ``error``, ``is_recording``, ``last_error``,
    ``state``, ``disk_usage_gb``, ``disk_state``, topics ...). No report: not ready."""
    if not report:
        return RecorderHealth(False, ("the robot has not reported its recorder's state",))
    if report.get("reachable") is False:
        return assess(None, unreachable=str(report.get("error") or "the robot cannot reach it"))
    values = {k: report.get(k) for k in _STATUS_FIELDS if report.get(k) is not None}
    try:
        status = RecorderStatus(
            is_recording=bool(values.get("is_recording", False)),
            dataset_path=str(values.get("dataset_path") or ""),
            active_topics=[str(t) for t in values.get("active_topics") or []],
            last_error=str(values.get("last_error") or ""),
            state=str(values.get("state") or ""),
            subscribed_topics=[str(t) for t in values.get("subscribed_topics") or []],
            topic_counts=dict(values.get("topic_counts") or {}),
            disk_usage_gb=float(values.get("disk_usage_gb") or 0.0),
            disk_state=str(values.get("disk_state") or ""),
        )
    except (TypeError, ValueError) as exc:
        return RecorderHealth(False, (f"the robot's recorder report is unreadable: {exc}",))
    return assess(status, service_status=str(report.get("service_status") or "ok"), max_disk_usage_gb=max_disk_usage_gb)


def fresh_report(report: Mapping[str, Any] | None, now: datetime, max_age_s: float) -> Mapping[str, Any] | None:
    """``report`` while its ``reported_at`` (ISO 8601, with a zone) is at most ``max_age_s`` old;
    None (unknown) when it is older, undated or unreadable: a stale report says nothing about the
    recorder now."""
    if not report:
        return None
    try:
        at = datetime.fromisoformat(str(report.get("reported_at")))
    except ValueError:
        return None
    if at.tzinfo is None:
        return None
    return report if (now - at).total_seconds() <= max_age_s else None


def reported_topics(report: Mapping[str, Any] | None) -> set[str]:
    """Topics a robot reported as available where its recorder runs: the ROS graph's
    (``available_topics``) when the agent reports it, else the recorder's subscriptions
    (``subscribed_topics``, Axon records its subscriptions), else the topics it counts."""
    if not report:
        return set()
    for key in ("available_topics", "subscribed_topics"):
        topics = report.get(key)
        if isinstance(topics, (list, tuple)) and topics:
            return {str(t) for t in topics}
    counts = report.get("topic_counts")
    return {str(t) for t in counts} if isinstance(counts, Mapping) else set()

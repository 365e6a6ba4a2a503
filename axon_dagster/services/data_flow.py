"""The data flow as plain functions: stage -> inspect -> gate -> upload -> report.

Dagster ops call these one each; the rules (what may be uploaded, what a rejection does to the task,
which digest must match which) live here and in the domain, testable without Dagster.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from axon_dagster.domain import QcOutcome, Requirements, TaskStatus, cloud_dataset_key, report_key, sidecar_key
from axon_dagster.storage.digest import DigestMismatch
from axon_dagster.storage.recording import Sidecar, report_path, sidecar_path

log = logging.getLogger(__name__)


class DataFlowError(Exception):
    """The data flow cannot proceed for this task (wrong state, missing recording)."""


@dataclass(frozen=True)
class StagedRecording:
    task_id: str
    order_id: str
    batch_id: str
    robot_id: str
    scene: str
    sub_scene: str
    skills: tuple[str, ...]
    cache_path: str
    dataset_digest: str
    size_bytes: int
    requirements: dict[str, Any]
    stage_seconds: float

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["skills"] = list(self.skills)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "StagedRecording":
        return cls(**{**data, "skills": tuple(data["skills"])})

    @property
    def lineage(self) -> dict[str, str]:
        return {
            "order_id": self.order_id,
            "batch_id": self.batch_id,
            "task_id": self.task_id,
            "robot_id": self.robot_id,
            "scene": self.scene,
            "sub_scene": self.sub_scene,
            "skills": ",".join(self.skills),
        }


@dataclass(frozen=True)
class Uploaded:
    task_id: str
    cloud_uri: str
    dataset_digest: str
    size_bytes: int
    upload_seconds: float


class Inspector(Protocol):
    def __call__(self, dataset_path: str, requirements: Requirements) -> Any: ...


def stage_recording(control_plane, edge_cache, task_id: str) -> StagedRecording:
    """Copy (or hardlink) an EXECUTED task's recording into the edge cache, digest-verified."""
    task = control_plane.get_task(task_id)
    if task["status"] != TaskStatus.EXECUTED.value:
        raise DataFlowError(f"task {task_id} is {task['status']}, the data flow starts from EXECUTED")
    if not task.get("dataset_path"):
        raise DataFlowError(f"task {task_id} is EXECUTED but reported no dataset_path")
    started = time.monotonic()
    cached = edge_cache.stage(task["dataset_path"], dataset_id=task_id)
    control_plane.dataset_cached(
        task_id,
        task_id=task_id,
        cache_path=str(cached.path),
        dataset_digest=cached.dataset_digest,
        size_bytes=cached.size_bytes,
    )
    staged = StagedRecording(
        task_id=task_id,
        order_id=task["order_id"],
        batch_id=task["batch_id"],
        robot_id=task.get("robot_id") or "",
        scene=task["scene"],
        sub_scene=task.get("sub_scene") or "",
        skills=tuple(task["skills"]),
        cache_path=str(cached.path),
        dataset_digest=cached.dataset_digest,
        size_bytes=cached.size_bytes,
        requirements=task.get("requirements") or {},
        stage_seconds=time.monotonic() - started,
    )
    log.info("staged %s (%d bytes, digest %s) into %s", task_id, cached.size_bytes, cached.dataset_digest[:12], cached.path)
    return staged


def load_approved(control_plane, task_id: str, *, require_reviewer: bool = False) -> StagedRecording:
    """An inspected, approved dataset as it sits in the edge cache, ready for upload. Refuses
    anything not approved (by a reviewer, with ``require_reviewer``)."""
    dataset = control_plane.get_dataset(task_id)
    if dataset["qc_outcome"] != QcOutcome.APPROVED.value or (require_reviewer and not dataset.get("reviewed_by")):
        who = "a reviewer" if require_reviewer else "QC or a reviewer"
        raise DataFlowError(
            f"dataset {task_id} is not approved by {who} (outcome {dataset['qc_outcome']}, "
            f"reviewed_by {dataset.get('reviewed_by')}): not uploading it"
        )
    task = control_plane.get_task(task_id)
    return StagedRecording(
        task_id=task["task_id"],
        order_id=task["order_id"],
        batch_id=task["batch_id"],
        robot_id=task.get("robot_id") or "",
        scene=task["scene"],
        sub_scene=task.get("sub_scene") or "",
        skills=tuple(task["skills"]),
        cache_path=dataset["cache_path"],
        dataset_digest=dataset["dataset_digest"],
        size_bytes=int(dataset["size_bytes"] or 0),
        requirements=task.get("requirements") or {},
        stage_seconds=0.0,
    )


def inspect_staged(control_plane, edge_cache, inspect: Inspector, staged: StagedRecording):
    """Run QC, store the report beside the dataset, record the outcome. A rejected recording fails
    its task (with the failing checks as reason) and is marked rejected in the cache."""
    requirements = Requirements.from_dict(staged.requirements)
    report = inspect(staged.cache_path, requirements)
    report.write(report_path(staged.cache_path))
    control_plane.dataset_inspected(staged.task_id, score=report.score, outcome=report.outcome.value, report=report.to_dict())
    dataset = control_plane.get_dataset(staged.task_id)
    outcome = QcOutcome(dataset["qc_outcome"])  # a human decision made earlier wins over this run
    if outcome is QcOutcome.REJECTED:
        failed = ", ".join(c.name for c in report.checks if not c.passed) or "score below review floor"
        edge_cache.mark_rejected(staged.task_id)
        control_plane.transition_task(staged.task_id, TaskStatus.FAILED.value, reason=f"rejected by QC: {failed}")
    log.info("inspected %s: score %.3f -> %s", staged.task_id, report.score, outcome.value)
    return report, outcome


def cloud_key(scene: str, sub_scene: str, skills, sidecar: Sidecar) -> str:
    """The dataset's cloud key; the timestamp is the recording start, so retries land on the same key."""
    recorded_at = datetime.fromtimestamp(sidecar.start_ns / 1e9, tz=timezone.utc)
    return cloud_dataset_key(scene, sub_scene, tuple(skills), recorded_at)


def verify_cloud_copy(object_store, task: dict[str, Any], dataset: dict[str, Any]) -> bool:
    """True when the cloud copy of an UPLOADED task is where its record says and its digest equals
    the digest in the recording's sidecar: the recorder's, or the edge cache's copy of it once the
    cache has taken the recording over (``release_source``)."""
    candidates = [sidecar_path(p) for p in (task.get("dataset_path"), dataset.get("cache_path")) if p]
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        raise DataFlowError(f"no sidecar to verify {task['task_id']} against: none of {[str(c) for c in candidates]} exists")
    sidecar = Sidecar.read(found)
    key = cloud_key(task["scene"], task.get("sub_scene") or "", task["skills"], sidecar)
    if object_store.uri_for(key) != dataset.get("cloud_uri"):
        return False
    return object_store.verify_dataset(key, sidecar.files) == sidecar.dataset_digest == dataset.get("dataset_digest")


def upload_approved(control_plane, edge_cache, object_store, staged: StagedRecording) -> Uploaded:
    """Upload an approved dataset with its sidecar and QC report; verify the cloud copy's digest."""
    started = time.monotonic()
    control_plane.dataset_upload_started(staged.task_id)  # refused by the domain unless approved
    cache_path = Path(staged.cache_path)
    sidecar = Sidecar.read(sidecar_path(cache_path))
    key = cloud_key(staged.scene, staged.sub_scene, staged.skills, sidecar)
    uri = object_store.put_dataset(cache_path, key, sidecar.files)
    object_store.put_file(sidecar_path(cache_path), sidecar_key(key))
    if report_path(cache_path).exists():
        object_store.put_file(report_path(cache_path), report_key(key))
    digest = object_store.verify_dataset(key, sidecar.files)
    if digest != sidecar.dataset_digest:
        raise DigestMismatch(uri, sidecar.dataset_digest, digest)
    edge_cache.mark_uploaded(staged.task_id, uri, digest)
    control_plane.dataset_uploaded(staged.task_id, cloud_uri=uri, dataset_digest=digest)
    elapsed = time.monotonic() - started
    log.info("uploaded %s to %s (%d bytes in %.2fs)", staged.task_id, uri, staged.size_bytes, elapsed)
    return Uploaded(staged.task_id, uri, digest, staged.size_bytes, elapsed)


def report_uploaded(control_plane, uploaded: Uploaded) -> dict[str, Any]:
    """Close the loop: the control flow learns the task is UPLOADED (robots see it on their next pull)."""
    return control_plane.transition_task(
        uploaded.task_id,
        TaskStatus.UPLOADED.value,
        data={"cloud_uri": uploaded.cloud_uri, "dataset_digest": uploaded.dataset_digest},
    )

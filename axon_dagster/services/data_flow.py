"""The cloud's data flow, the part both of its steps share: the recording a run works on
(:class:`StagedRecording`), QC (:func:`inspect_staged`), the lake key of a dataset (:func:`cloud_key`)
and the check of a published copy (:func:`verify_cloud_copy`). The steps from the staging area
(ingest, publish, park, discard) are :mod:`axon_dagster.services.staged`.

Dagster ops call these one each; the rules (what a rejection does to the task, which digest must
match which) live here and in the domain, testable without Dagster. A recording reaches the cloud
only through the staging area: the cloud never opens a path a robot reported.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping, Protocol

from axon_dagster.domain import QcOutcome, Requirements, TaskStatus, cloud_dataset_key, mcap_key, sidecar_key
from axon_dagster.inspection.rate_series import RateSeriesError, rate_series
from axon_dagster.storage.digest import DigestMismatch
from axon_dagster.storage.recording import LANCE, MCAP, Sidecar, report_path

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
    recording_format: str = LANCE
    axon_checksum_sha256: str = ""  # Axon's checksum of the original MCAP (verified at staging)
    # The store key of the Lance dataset QC reads (the cloud's ingest in staging's ``ingested/``, or
    # the robot's own staged Lance): what publishing copies into the lake, server-side.
    dataset_key: str = ""
    # local path -> file fingerprint (device, inode, size, mtime_ns) of each file this run hashed,
    # taken when it was hashed: proves later, without reading it again, that a file is the one hashed.
    proofs: dict[str, list[int]] = field(default_factory=dict)

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
            "recording_format": self.recording_format,
            **({"axon_checksum_sha256": self.axon_checksum_sha256} if self.axon_checksum_sha256 else {}),
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


def recorded_rate_series(dataset_path: str) -> dict[str, Any] | None:
    """The recording's per-topic rate series to store with its report (the review plot's only
    source: the API cannot read this run's files); None, with a warning, when it cannot be read."""
    try:
        return rate_series(dataset_path).to_dict()
    except RateSeriesError as exc:
        log.warning("no rate series for %s: %s", dataset_path, exc)
        return None


def inspect_staged(control_plane, inspect: Inspector, staged: StagedRecording):
    """Run QC on the run's working copy, store the report beside it, record the outcome. A rejected
    recording fails its task (with the failing checks as reason): the robot releases its copy,
    nothing is published."""
    requirements = Requirements.from_dict(staged.requirements)
    report = inspect(staged.cache_path, requirements)
    report.rate_series = recorded_rate_series(staged.cache_path)
    report.write(report_path(staged.cache_path))
    dataset = control_plane.dataset_inspected(staged.task_id, score=report.score, outcome=report.outcome.value, report=report.to_dict())
    outcome = QcOutcome(dataset["qc_outcome"])  # the record as it now stands: a human decision made earlier wins over this run
    if outcome is QcOutcome.REJECTED:
        failed = ", ".join(c.name for c in report.checks if not c.passed) or "score below review floor"
        control_plane.transition_task(staged.task_id, TaskStatus.FAILED.value, reason=f"rejected by QC: {failed}")
    log.info("inspected %s: score %.3f -> %s", staged.task_id, report.score, outcome.value)
    return report, outcome


def cloud_key(scene: str, sub_scene: str, skills, sidecar: Sidecar, *, by_robot: bool = False) -> str:
    """The dataset's cloud key; the timestamp is the recording start, so retries land on the same
    key. ``by_robot``: the key qualified by the recording's robot, taken when another robot's
    recording of the same labels and instant holds the plain one."""
    recorded_at = datetime.fromtimestamp(sidecar.start_ns / 1e9, tz=timezone.utc)
    return cloud_dataset_key(scene, sub_scene, tuple(skills), recorded_at, sidecar.robot_id if by_robot else None)


def verify_cloud_copy(object_store, task: Mapping[str, Any], dataset: Mapping[str, Any]) -> bool:
    """True when the published copy of an UPLOADED task is at the key its ids and its sidecar give,
    and every stored file matches: the dataset's digest equals the sidecar's and the record's, and
    an MCAP recording's original sits beside it with the manifest's SHA-256. Reads only the store
    and the records, never a local path."""
    uri = dataset.get("cloud_uri") or ""
    root = object_store.uri_for("x")[:-1]
    if not uri.startswith(root):
        return False
    key = uri[len(root):]
    try:
        sidecar = Sidecar.from_json(object_store.get_bytes(sidecar_key(key)).decode())
    except Exception as exc:  # noqa: BLE001 - any failure to read it means "not verified"
        log.warning("cloud copy of %s: no readable sidecar at %s: %s", task["task_id"], object_store.uri_for(sidecar_key(key)), exc)
        return False
    keys = {cloud_key(task["scene"], task.get("sub_scene") or "", task["skills"], sidecar, by_robot=b) for b in (False, True)}
    if key not in keys or sidecar.task_id != task["task_id"]:
        return False
    try:
        if object_store.verify_dataset(key, sidecar.files) != sidecar.dataset_digest:
            return False
    except DigestMismatch:
        return False
    if sidecar.dataset_digest != dataset.get("dataset_digest"):
        return False
    manifest = dataset.get("manifest") or {}
    if (manifest.get("recording_format") or dataset.get("recording_format")) == MCAP:
        expected = {f["name"]: f["sha256"] for f in manifest.get("files") or []}.get(f"{task['task_id']}.mcap")
        if not object_store.exists(mcap_key(key)) or object_store.sha256_of(mcap_key(key)) != expected:
            return False
    return True

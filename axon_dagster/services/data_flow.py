"""The data flow as plain functions: stage -> inspect -> gate -> publish -> report.

Dagster ops call these one each; the rules (what may be uploaded, what a rejection does to the task,
which digest must match which) live here and in the domain, testable without Dagster.

Two recording layouts arrive:

* Axon v0.4 MCAP (``dataset_path`` = ``<dir>/<task_id>.mcap``, or ``recording_format: "mcap"`` in
  the EXECUTED event): staging waits until the recording is complete (``.mcap.done`` / Axon's
  sidecar), verifies Axon's ``checksum_sha256`` (and the one the recorder reported), and ingests the
  MCAP into a Lance dataset with decoded columns inside the edge cache; the original MCAP and Axon's
  sidecar stay beside the dataset and are uploaded with it (``x.mcap``, ``x.axon.json``).
* the Lance-era layout (``<task_id>.lance`` + our sidecar; an event without ``recording_format``).

Either way inspection and upload work on the cached Lance dataset, whose digest is "our digest";
lineage carries Axon's checksum beside it.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Protocol

from axon_dagster.domain import (
    QcOutcome,
    Requirements,
    TaskStatus,
    axon_sidecar_key,
    cloud_dataset_key,
    mcap_key,
    report_key,
    sidecar_key,
)
from axon_dagster.settings.code_location import DataFlowSettings
from axon_dagster.storage.axon_recording import AxonRecordingFiles, AxonSidecar, wait_complete
from axon_dagster.storage.digest import DigestMismatch, file_sha256
from axon_dagster.storage.recording import (
    LANCE,
    MCAP,
    RECORDING_FORMATS,
    Sidecar,
    axon_sidecar_path,
    report_path,
    sidecar_path,
    source_mcap_path,
)

log = logging.getLogger(__name__)

# How long staging waits for Axon to finish a recording (close, patch, hash: minutes for a big file).
DEFAULT_RECORDING_WAIT_S = DataFlowSettings.recording_wait_seconds  # how long staging waits for a complete recording


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


def recording_format_of(dataset_path: str, reported: str | None = None) -> str:
    """``mcap`` or ``lance``: what the EXECUTED event said, else what the path looks like (an old
    agent reports no format: the Lance-era layout)."""
    if reported is not None:
        if reported not in RECORDING_FORMATS:
            raise DataFlowError(f"unknown recording_format {reported!r}: expected one of {', '.join(RECORDING_FORMATS)}")
        return reported
    return MCAP if str(dataset_path).endswith(".mcap") else LANCE


def recording_wait_seconds(environ: Mapping[str, str] | None = None) -> float:
    """``AXON_RECORDING_WAIT_SECONDS`` (default 600): read by the Dagster op, which passes it to
    :func:`stage_recording` as ``wait_timeout_s``; a bad value is a clear error."""
    return DataFlowSettings.load(environ).recording_wait_seconds


def mcap_ingester(task: dict[str, Any], recorder_checksum: str | None = None):
    """The ``ingest`` callable for :meth:`EdgeCache.stage_mcap`: MCAP -> Lance with decoded columns,
    its sidecar labelled with the task's ids (the control plane's, not the robot's say) and the
    checksum the recorder reported (already verified against the MCAP by ``stage_mcap``; QC's
    ``integrity`` evidence without Axon's sidecar)."""

    def ingest(mcap: Path, lance_dir: Path, sha256: str, axon: AxonSidecar | None) -> Sidecar:
        from axon_dagster.ingest import ingest_mcap

        metadata = {
            "order_id": task["order_id"], "batch_id": task["batch_id"], "scene": task["scene"],
            "sub_scene": task.get("sub_scene") or "", "skills": list(task["skills"]),
        }
        return ingest_mcap(mcap, lance_dir, axon_sidecar=axon, task_id=task["task_id"], robot_id=task.get("robot_id") or None,
                           metadata=metadata, mcap_sha256=sha256, recorder_checksum_sha256=recorder_checksum).sidecar

    return ingest


def stage_recording(
    control_plane,
    edge_cache,
    task_id: str,
    *,
    recording_format: str | None = None,
    recorder_checksum: str | None = None,
    wait_timeout_s: float | None = None,
) -> StagedRecording:
    """Put an EXECUTED task's recording into the edge cache, verified: a Lance-era recording is
    hardlinked or copied against its sidecar's digests; an Axon MCAP is awaited until complete,
    checked against Axon's checksum (and ``recorder_checksum``, the EXECUTED event's), and
    ingested into Lance in the cache (see the module docstring). ``wait_timeout_s``: how long Axon
    may take to finish the MCAP (default :data:`DEFAULT_RECORDING_WAIT_S`)."""
    task = control_plane.get_task(task_id)
    if task["status"] != TaskStatus.EXECUTED.value:
        raise DataFlowError(f"task {task_id} is {task['status']}, the data flow starts from EXECUTED")
    if not task.get("dataset_path"):
        raise DataFlowError(f"task {task_id} is EXECUTED but reported no dataset_path")
    started = time.monotonic()
    fmt = recording_format_of(task["dataset_path"], recording_format)
    axon_checksum = ""
    if fmt == MCAP:
        try:
            files = AxonRecordingFiles.for_mcap(task["dataset_path"])
        except ValueError as exc:
            raise DataFlowError(f"task {task_id}: {exc}") from None
        if files.mcap_path.name != f"{task_id}.mcap":  # Axon names it after the task: nothing else is taken
            raise DataFlowError(f"task {task_id}: reported recording {files.mcap_path.name!r} is not {task_id}.mcap")
        wait = DEFAULT_RECORDING_WAIT_S if wait_timeout_s is None else wait_timeout_s
        wait_complete(files, timeout_s=wait, poll_s=min(1.0, max(0.05, wait / 20)))
        cached = edge_cache.stage_mcap(files.mcap_path, task_id, ingest=mcap_ingester(task, recorder_checksum),
                                       expected_checksum=recorder_checksum)
        axon_checksum = _source_facts(cached.path)[1] or (recorder_checksum or "").lower()
    else:
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
        recording_format=fmt,
        axon_checksum_sha256=axon_checksum,
    )
    log.info("staged %s (%s, %d bytes, digest %s%s) into %s", task_id, fmt, cached.size_bytes, cached.dataset_digest[:12],
             f", Axon checksum {axon_checksum[:12]}" if axon_checksum else "", cached.path)
    return staged


def _source_facts(cache_path: str | os.PathLike) -> tuple[str, str]:
    """(recording format, Axon's checksum) of a cached dataset, from its sidecar's ``extra.source``."""
    try:
        source = (Sidecar.read(sidecar_path(cache_path)).extra or {}).get("source") or {}
    except (OSError, ValueError, KeyError, TypeError):
        return LANCE, ""
    if source.get("format") != MCAP:
        return LANCE, ""
    return MCAP, source.get("axon_checksum_sha256") or ""


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
    fmt, axon_checksum = _source_facts(dataset["cache_path"])
    return StagedRecording(
        recording_format=fmt,
        axon_checksum_sha256=axon_checksum,
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
    its task (with the failing checks as reason) and is marked rejected in the edge cache, when the
    recording sits in one (``edge_cache`` None: the cloud's data flow from staging)."""
    requirements = Requirements.from_dict(staged.requirements)
    report = inspect(staged.cache_path, requirements)
    report.write(report_path(staged.cache_path))
    control_plane.dataset_inspected(staged.task_id, score=report.score, outcome=report.outcome.value, report=report.to_dict())
    dataset = control_plane.get_dataset(staged.task_id)
    outcome = QcOutcome(dataset["qc_outcome"])  # a human decision made earlier wins over this run
    if outcome is QcOutcome.REJECTED:
        failed = ", ".join(c.name for c in report.checks if not c.passed) or "score below review floor"
        if edge_cache is not None:
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
    # An MCAP recording's sidecar beside the recorder's file is Axon's, not the dataset's: only
    # the cache's copy of the dataset sidecar counts then.
    paths = [p for p in (task.get("dataset_path"), dataset.get("cache_path")) if p and not str(p).endswith(".mcap")]
    candidates = [sidecar_path(p) for p in paths]
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        raise DataFlowError(f"no sidecar to verify {task['task_id']} against: none of {[str(c) for c in candidates]} exists")
    sidecar = Sidecar.read(found)
    key = cloud_key(task["scene"], task.get("sub_scene") or "", task["skills"], sidecar)
    if object_store.uri_for(key) != dataset.get("cloud_uri"):
        return False
    source = (sidecar.extra or {}).get("source") or {}
    if source.get("format") == MCAP and not object_store.exists(mcap_key(key)):
        return False  # the original MCAP must sit beside the dataset
    return object_store.verify_dataset(key, sidecar.files) == sidecar.dataset_digest == dataset.get("dataset_digest")


def publish(control_plane, edge_cache, object_store, staged: StagedRecording) -> Uploaded:
    """Publish an approved dataset into the lake (the ``upload_approved`` job calls this): the dataset
    with its sidecar and QC report, and the original MCAP; verify the cloud copy's digest."""
    started = time.monotonic()
    control_plane.dataset_upload_started(staged.task_id)  # refused by the domain unless approved
    cache_path = Path(staged.cache_path)
    sidecar = Sidecar.read(sidecar_path(cache_path))
    key = cloud_key(staged.scene, staged.sub_scene, staged.skills, sidecar)
    uri = object_store.put_dataset(cache_path, key, sidecar.files)
    object_store.put_file(sidecar_path(cache_path), sidecar_key(key))
    if report_path(cache_path).exists():
        object_store.put_file(report_path(cache_path), report_key(key))
    # The original recording (for Foxglove and re-ingestion) beside the dataset. The cached MCAP
    # may be a hardlink to the recorder's file: it must still be what staging verified against
    # Axon's checksum (a recorder overwriting the same task's file in place would change it), and
    # put_file verifies the stored copy against it (given that hash: the MCAP is read once here).
    mcap = source_mcap_path(cache_path)
    if mcap.exists():
        staged_sha = ((sidecar.extra or {}).get("source") or {}).get("mcap_sha256")
        actual = None
        if staged_sha:
            actual = file_sha256(mcap)
            if actual != staged_sha:
                raise DigestMismatch(f"{mcap} (changed since it was staged)", staged_sha, actual)
        object_store.put_file(mcap, mcap_key(key), sha256=actual)
        if axon_sidecar_path(cache_path).exists():
            object_store.put_file(axon_sidecar_path(cache_path), axon_sidecar_key(key))
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

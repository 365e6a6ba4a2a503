"""The cloud's data flow from the staging area (issue 13): what a robot uploaded -> Lance -> QC ->
the lake, as plain functions the Dagster ops call one each.

A robot uploads the files of its recording's manifest to ``staging/<robot_id>/<task_id>/<name>``
(the control plane verified each file's SHA-256 against the manifest and marked the dataset
STAGED). From there:

* :func:`ingest_staged` downloads what the run needs into the cloud's working directory,
  re-verifying every byte against the manifest (a staged object that changed since is refused and
  nothing is published from it), and makes the Lance dataset: an Axon MCAP is ingested
  (``axon_dagster.ingest.ingest_mcap``) and the result parked in staging (``ingested/``), a
  Lance-era recording is taken as it is. Every later attempt of the dataset (a failed run, a
  reviewer's approval) fetches the parked dataset back, verified against its sidecar, instead of
  ingesting again: an ingest is not byte-identical twice, and the control plane recorded the
  first one's digest.
* QC is :func:`axon_dagster.services.data_flow.inspect_staged` (unchanged).
* :func:`publish_staged` puts approved data into the lake keys of ``domain/layout.py``: the Lance
  dataset and its sidecar and report written and verified file by file, the original MCAP and
  Axon's sidecar copied server-side from staging and their SHA-256 checked against the manifest;
  then dataset UPLOADED, task UPLOADED (the robot may release its copy), staging deleted.
* :func:`park_for_review` keeps QC's report beside it while a reviewer decides.
* :func:`discard_staged` applies ``staging_rejected`` (delete | keep) to a rejected dataset.

Every key is derived from ids (the control plane's task and dataset records), never from a path a
robot reported.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from axon_dagster.domain import TaskStatus, axon_sidecar_key, mcap_key, report_key, sidecar_key, validate_id
from axon_dagster.domain.layout import staging_key, staging_prefix, validate_relative_name
from axon_dagster.storage.axon_recording import AxonSidecar
from axon_dagster.storage.digest import DigestMismatch, digest_of_files, file_sha256
from axon_dagster.storage.object_stores import publish_copies
from axon_dagster.storage.recording import LANCE, MCAP, RECORDING_FORMATS, Sidecar, report_path, sidecar_path

from .data_flow import DataFlowError, StagedRecording, Uploaded, cloud_key
from .data_flow import verify_cloud_copy  # noqa: F401 - re-exported: the demo's driver reads it from here

log = logging.getLogger(__name__)

STAGING_REJECTED_POLICIES = ("delete", "keep")
PARKED = "ingested"  # staging/<robot>/<task>/ingested/<task>.lance: the cloud's Lance, waiting for a reviewer
_SHA256_HEX = frozenset("0123456789abcdef")


class StagedDigestMismatch(DigestMismatch):
    """A staged object is not what the robot's manifest says: nothing is published from it."""


@dataclass(frozen=True)
class StagedFiles:
    """What a robot staged for one task, from the control plane's records (never a robot's path)."""

    task_id: str
    robot_id: str
    recording_format: str
    files: Mapping[str, str]  # manifest name -> sha256
    dataset_digest: str
    axon_checksum_sha256: str = ""

    def key(self, name: str) -> str:
        return staging_key(self.robot_id, self.task_id, name)

    @property
    def prefix(self) -> str:
        return staging_prefix(self.robot_id, self.task_id)

    @property
    def mcap_name(self) -> str:
        return f"{self.task_id}.mcap"

    @property
    def sidecar_name(self) -> str:
        """Axon's sidecar of the MCAP (mcap), or the Lance-era dataset's own sidecar (lance)."""
        return f"{self.task_id}.json"

    @property
    def lance_name(self) -> str:
        return f"{self.task_id}.lance"

    def parked(self, name: str) -> str:
        return self.key(f"{PARKED}/{name}")


def staged_files(task: Mapping[str, Any], dataset: Mapping[str, Any]) -> StagedFiles:
    """The staged files of ``task``'s recording, from its dataset record; DataFlowError when the
    record holds no usable manifest (a recording reported before robots uploaded their own)."""
    task_id = validate_id(task["task_id"], "task_id")
    robot_id = task.get("robot_id")
    if not robot_id:
        raise DataFlowError(f"task {task_id} is held by no robot: no staging area to read")
    manifest = dataset.get("manifest")
    if not isinstance(manifest, Mapping) or not manifest.get("files"):
        raise DataFlowError(f"dataset {task_id} has no manifest: nothing was staged for it")
    fmt = manifest.get("recording_format") or dataset.get("recording_format")
    if fmt not in RECORDING_FORMATS:
        raise DataFlowError(f"dataset {task_id}: unknown recording_format {fmt!r}")
    files: dict[str, str] = {}
    for entry in manifest["files"]:
        name, sha = validate_relative_name(entry["name"]), str(entry["sha256"]).lower()
        if len(sha) != 64 or not set(sha) <= _SHA256_HEX:
            raise DataFlowError(f"dataset {task_id}: manifest entry {name!r} has no SHA-256")
        files[name] = sha
    staged = StagedFiles(task_id, validate_id(robot_id, "robot_id"), fmt, files, str(manifest.get("dataset_digest") or ""),
                         str(manifest.get("axon_checksum_sha256") or "").lower())
    if fmt == MCAP and staged.mcap_name not in files:
        raise DataFlowError(f"dataset {task_id}: the manifest names no {staged.mcap_name}")
    if fmt == LANCE and staged.sidecar_name not in files:
        raise DataFlowError(f"dataset {task_id}: the manifest names no {staged.sidecar_name}")
    return staged


def fetch_object(store, key: str, dest: Path, sha256: str) -> Path:
    """Download one object to ``dest`` (through a temporary name) and check its SHA-256; a
    mismatch leaves nothing at ``dest`` and raises :class:`StagedDigestMismatch`."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    try:
        store._download(key, tmp)  # noqa: SLF001 - every backend streams it; see the report's ask for a public fetch
        actual = file_sha256(tmp)
        if actual != sha256:
            raise StagedDigestMismatch(f"staged {store.uri_for(key)}", sha256, actual)
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def workdir_for(root: str | Path, task_id: str, attempt: int) -> Path:
    """The run's own directory: ``<root>/<task_id>/attempt-<n>`` (a fresh one per attempt)."""
    return Path(root).resolve() / validate_id(task_id, "task_id") / f"attempt-{int(attempt)}"


def ingest_staged(control_plane, store, workdir_root: str | Path, task_id: str) -> StagedRecording:
    """Count a publish attempt on the dataset, then make its Lance dataset in the working directory
    from what was staged (see the module docstring); the dataset is recorded CACHED there."""
    started = time.monotonic()
    task = control_plane.get_task(task_id)
    dataset = control_plane.get_dataset(task_id)
    staged = staged_files(task, dataset)
    attempt = int(control_plane.dataset_publish_attempt(task_id).get("publish_attempts") or 1)
    work = workdir_for(workdir_root, task_id, attempt)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    lance_dir = work / staged.lance_name
    if store.exists(staged.parked(staged.sidecar_name)):
        _fetch_parked(store, staged, lance_dir)
    elif staged.recording_format == MCAP:
        _ingest_staged_mcap(store, staged, task, lance_dir)
        _park(store, staged, lance_dir)  # an ingest is not byte-identical twice: later attempts take this one
    else:
        _fetch_staged_lance(store, staged, lance_dir)
    report = staged.parked(f"{staged.task_id}.qc.json")
    if store.exists(report):  # QC's report of an earlier attempt (a dataset that waited for a reviewer)
        report_path(lance_dir).write_bytes(store.get_bytes(report))
    sidecar = Sidecar.read(sidecar_path(lance_dir))
    size = sum((lance_dir / rel).stat().st_size for rel in sidecar.files)
    if dataset["status"] == "STAGED":
        control_plane.dataset_cached(task_id, task_id=task_id, cache_path=str(lance_dir), dataset_digest=sidecar.dataset_digest,
                                     size_bytes=size)
    recording = StagedRecording(
        task_id=task_id, order_id=task["order_id"], batch_id=task["batch_id"], robot_id=staged.robot_id, scene=task["scene"],
        sub_scene=task.get("sub_scene") or "", skills=tuple(task["skills"]), cache_path=str(lance_dir),
        dataset_digest=sidecar.dataset_digest, size_bytes=size, requirements=task.get("requirements") or {},
        stage_seconds=time.monotonic() - started, recording_format=staged.recording_format,
        axon_checksum_sha256=staged.axon_checksum_sha256,
    )
    log.info("ingested staged %s (%s, attempt %d) into %s: %d bytes, digest %s", task_id, staged.recording_format, attempt,
             lance_dir, size, sidecar.dataset_digest[:12])
    return recording


def _ingest_staged_mcap(store, staged: StagedFiles, task: Mapping[str, Any], lance_dir: Path) -> None:
    from axon_dagster.ingest import ingest_mcap

    mcap_sha = staged.files[staged.mcap_name]
    mcap = fetch_object(store, staged.key(staged.mcap_name), lance_dir.with_suffix(".mcap"), mcap_sha)
    axon = None
    if staged.sidecar_name in staged.files:  # Axon's sidecar, kept under another name beside our dataset's
        axon_path = fetch_object(store, staged.key(staged.sidecar_name), lance_dir.with_suffix(".axon.json"),
                                 staged.files[staged.sidecar_name])
        axon = AxonSidecar.read(axon_path)
    metadata = {"order_id": task["order_id"], "batch_id": task["batch_id"], "scene": task["scene"],
                "sub_scene": task.get("sub_scene") or "", "skills": list(task["skills"])}
    ingest_mcap(mcap, lance_dir, axon_sidecar=axon, task_id=staged.task_id, robot_id=staged.robot_id, metadata=metadata,
                mcap_sha256=mcap_sha, recorder_checksum_sha256=staged.axon_checksum_sha256 or None)


def _fetch_staged_lance(store, staged: StagedFiles, lance_dir: Path) -> None:
    """A Lance-era recording: every file of ``<task>.lance/`` and its sidecar, each verified
    against the manifest as it arrives; the manifest's files must be the ones the sidecar lists."""
    prefix = staged.lance_name + "/"
    names = [n for n in staged.files if n.startswith(prefix)]
    if not names:
        raise DataFlowError(f"dataset {staged.task_id}: the manifest names no file under {prefix}")
    for name in names:
        fetch_object(store, staged.key(name), lance_dir / name[len(prefix):], staged.files[name])
    fetch_object(store, staged.key(staged.sidecar_name), sidecar_path(lance_dir), staged.files[staged.sidecar_name])
    sidecar = Sidecar.read(sidecar_path(lance_dir))
    fetched = {name[len(prefix):]: staged.files[name] for name in names}  # each file hashed once, as it arrived
    if fetched != sidecar.files:
        raise StagedDigestMismatch(f"staged {staged.lance_name} (its files are not the ones its sidecar lists)",
                                   sidecar.dataset_digest, digest_of_files(fetched))


def _fetch_parked(store, staged: StagedFiles, lance_dir: Path) -> None:
    sidecar = Sidecar.from_json(store.get_bytes(staged.parked(staged.sidecar_name)).decode())
    store.fetch_dataset(staged.parked(staged.lance_name), lance_dir, sidecar.files)
    sidecar.write(sidecar_path(lance_dir))


def _park(store, staged: StagedFiles, lance_dir: Path) -> None:
    """Keep the cloud's Lance dataset of an MCAP in staging beside the robot's files: every later
    attempt of this dataset (a failed run, a reviewer's approval) works on these very bytes, whose
    digest the control plane recorded."""
    sidecar = Sidecar.read(sidecar_path(lance_dir))
    store.put_dataset(lance_dir, staged.parked(staged.lance_name), sidecar.files)
    store.put_file(sidecar_path(lance_dir), staged.parked(staged.sidecar_name))  # last: its presence means "parked"


def park_for_review(store, staged: StagedFiles, recording: StagedRecording) -> str:
    """A dataset waits for a reviewer: keep its QC report in staging (its Lance dataset is parked
    already, or is the robot's own), so that the run publishing it later needs neither this run's
    disk nor a new ingest."""
    lance_dir = Path(recording.cache_path)
    if report_path(lance_dir).exists():
        store.put_file(report_path(lance_dir), staged.parked(f"{staged.task_id}.qc.json"))
    return store.uri_for(staged.parked(f"{staged.task_id}.qc.json"))


def publish_staged(control_plane, store, staged: StagedFiles, recording: StagedRecording) -> Uploaded:
    """Publish an approved dataset into the lake (refused by the control plane unless approved),
    verify it, record it UPLOADED, tell the robot (task UPLOADED), then delete its staging area."""
    started = time.monotonic()
    control_plane.dataset_upload_started(staged.task_id)
    lance_dir = Path(recording.cache_path)
    sidecar = Sidecar.read(sidecar_path(lance_dir))
    sidecar.verify(lance_dir)  # the working copy is still what QC read
    key = cloud_key(recording.scene, recording.sub_scene, recording.skills, sidecar)
    uri = store.put_dataset(lance_dir, key, sidecar.files)
    store.put_file(sidecar_path(lance_dir), sidecar_key(key))
    if report_path(lance_dir).exists():
        store.put_file(report_path(lance_dir), report_key(key))
    if staged.recording_format == MCAP:  # the original recording and Axon's sidecar: server-side copies, verified
        copies = {mcap_key(key): (staged.key(staged.mcap_name), staged.files[staged.mcap_name])}
        if staged.sidecar_name in staged.files:
            copies[axon_sidecar_key(key)] = (staged.key(staged.sidecar_name), staged.files[staged.sidecar_name])
        publish_copies(store, copies)
    digest = store.verify_dataset(key, sidecar.files)
    if digest != sidecar.dataset_digest:
        raise DigestMismatch(uri, sidecar.dataset_digest, digest)
    control_plane.dataset_uploaded(staged.task_id, cloud_uri=uri, dataset_digest=digest)
    control_plane.transition_task(staged.task_id, TaskStatus.UPLOADED.value, data={"cloud_uri": uri, "dataset_digest": digest})
    removed = store.delete_prefix(staged.prefix)
    shutil.rmtree(lance_dir.parent.parent, ignore_errors=True)  # every attempt's working directory of the task
    elapsed = time.monotonic() - started
    log.info("published %s to %s (%d bytes in %.2fs); %d staged object(s) deleted", staged.task_id, uri, recording.size_bytes,
             elapsed, removed)
    return Uploaded(staged.task_id, uri, digest, recording.size_bytes, elapsed)


def discard_staged(store, staged: StagedFiles, policy: str, workdir_root: str | Path | None = None) -> int:
    """A rejected dataset's staging area per ``staging_rejected``: ``delete`` (now; returns how many
    objects) or ``keep`` (0). Its working directories go either way."""
    if policy not in STAGING_REJECTED_POLICIES:
        raise ValueError(f"staging_rejected must be one of {', '.join(STAGING_REJECTED_POLICIES)}, got {policy!r}")
    if workdir_root is not None:
        shutil.rmtree(Path(workdir_root).resolve() / staged.task_id, ignore_errors=True)
    return store.delete_prefix(staged.prefix) if policy == "delete" else 0

"""The cloud's data flow from the staging area (issue 13): what a robot uploaded -> Lance -> QC ->
the lake, as plain functions the Dagster ops call one each.

A robot uploads the files of its recording's manifest to ``staging/<robot_id>/<task_id>/<name>``
(the control plane verified each file's SHA-256 against the manifest and marked the dataset
STAGED). From there:

* :func:`ingest_staged` makes the Lance dataset QC reads, every staged byte it uses re-verified
  against the manifest (a staged object that changed since is refused and nothing is published
  from it). An Axon MCAP is ingested (``axon_dagster.ingest.ingest_mcap``) where it lies on the
  local store (downloaded once into the working directory from S3/Azure), hashed in the same pass
  (``hash_mcap``): the ingest counts only if the hash is the manifest's and the file did not change
  from before the ingest to after it. The dataset is written once: on the local store into a directory of the
  store's own file system and renamed into staging's ``ingested/`` (parking IS the write), on
  S3/Azure uploaded there once from the working directory; its sidecar goes last (its presence
  means "parked"). A Lance-era recording is taken as the robot staged it. Every later attempt of
  the dataset (a failed run, a reviewer's approval) takes the parked dataset, verified against its
  sidecar, instead of ingesting again: an ingest is not byte-identical twice, and the control
  plane recorded the first one's digest.
* QC is :func:`axon_dagster.services.data_flow.inspect_staged` (unchanged); it reads the dataset
  where it lies on the local store, the working copy otherwise.
* :func:`publish_staged` puts approved data into the lake keys of ``domain/layout.py`` by
  verified server-side copies from the store (hard links on the local store, CopyObject on S3),
  never a rewrite (see its docstring for exactly what is verified); then dataset UPLOADED, task
  UPLOADED (the robot may release its copy), staging deleted.
* :func:`park_for_review` keeps QC's report beside it while a reviewer decides.
* :func:`discard_staged` applies ``staging_rejected`` (delete | keep) to a rejected dataset.

Every key is derived from ids (the control plane's task and dataset records), never from a path a
robot reported.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from axon_dagster.domain import TaskStatus, axon_sidecar_key, mcap_key, report_key, sidecar_key, validate_id
from axon_dagster.domain.layout import staging_key, staging_prefix, validate_relative_name
from axon_dagster.storage.axon_recording import AxonSidecar
from axon_dagster.storage.digest import DigestMismatch, digest_of_files, file_sha256, fingerprinted_sha256
from axon_dagster.storage.files import file_fingerprint, relative_files
from axon_dagster.storage.object_stores import publish_copies
from axon_dagster.storage.recording import LANCE, MCAP, RECORDING_FORMATS, Sidecar, report_path, sidecar_path

from .data_flow import DataFlowError, StagedRecording, Uploaded, cloud_key

log = logging.getLogger(__name__)

STAGING_REJECTED_POLICIES = ("delete", "keep")
PARKED = "ingested"  # staging/<robot>/<task>/ingested/<task>.lance: the cloud's Lance, waiting for a reviewer
_SHA256_HEX = frozenset("0123456789abcdef")


class StagedDigestMismatch(DigestMismatch):
    """A staged object is not what the robot's manifest says: nothing is published from it."""


class UnreadableRecording(DataFlowError):
    """The staged recording is the robot's (its digest verified) but does not ingest: a retry
    would read the same bytes, so the attempt fails at once with the reason."""


@dataclass(frozen=True)
class StagedFiles:
    """What a robot staged for one task, from the control plane's records (never a robot's path)."""

    task_id: str
    robot_id: str
    recording_format: str
    files: Mapping[str, str]  # manifest name -> sha256
    dataset_digest: str
    axon_checksum_sha256: str = ""
    sizes: Mapping[str, int] = field(default_factory=dict)  # manifest name -> bytes

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
    sizes: dict[str, int] = {}
    for entry in manifest["files"]:
        name, sha = validate_relative_name(entry["name"]), str(entry["sha256"]).lower()
        if len(sha) != 64 or not set(sha) <= _SHA256_HEX:
            raise DataFlowError(f"dataset {task_id}: manifest entry {name!r} has no SHA-256")
        files[name] = sha
        if isinstance(entry.get("size"), int) and not isinstance(entry["size"], bool) and entry["size"] >= 0:
            sizes[name] = entry["size"]
    staged = StagedFiles(task_id, validate_id(robot_id, "robot_id"), fmt, files, str(manifest.get("dataset_digest") or ""),
                         str(manifest.get("axon_checksum_sha256") or "").lower(), sizes)
    if fmt == MCAP and staged.mcap_name not in files:
        raise DataFlowError(f"dataset {task_id}: the manifest names no {staged.mcap_name}")
    if fmt == LANCE and staged.sidecar_name not in files:
        raise DataFlowError(f"dataset {task_id}: the manifest names no {staged.sidecar_name}")
    return staged


def fetch_object(store, key: str, dest: Path, sha256: str) -> Path:
    """Download one object to ``dest`` (through a temporary name) and check its SHA-256; a
    mismatch leaves nothing at ``dest`` and raises :class:`StagedDigestMismatch`."""
    tmp = store.download(key, dest.with_name(dest.name + ".part"))
    try:
        actual = file_sha256(tmp)
        if actual != sha256:
            raise StagedDigestMismatch(f"staged {store.uri_for(key)}", sha256, actual)
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _workdir(store, root: str | Path, task_id: str, name: str) -> Path:
    """A fresh working directory ``<task_id>/<name>`` (``attempt-<n>``, or ``follow``): on the
    local store's own file system (what is written there enters the store by a rename), else
    under ``root``."""
    task_id = validate_id(task_id, "task_id")
    work = store.scratch_dir(f"data-flow/{task_id}/{name}") or Path(root).resolve() / task_id / name
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    return work


def drop_workdirs(store, root: str | Path | None, task_id: str) -> None:
    """Every attempt's working directory of the task, wherever it was made."""
    task_id = validate_id(task_id, "task_id")
    if root is not None:
        shutil.rmtree(Path(root).resolve() / task_id, ignore_errors=True)
    scratch = store.scratch_dir(f"data-flow/{task_id}")
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)


def ingest_staged(control_plane, store, workdir_root: str | Path, task_id: str, *,
                  follow_stall_seconds: float | None = None) -> StagedRecording | None:
    """Count a publish attempt on the dataset, then make its Lance dataset from what was staged
    (see the module docstring); the dataset is recorded CACHED.

    ``follow_stall_seconds``: a dataset still GRANTED (the robot is uploading it) is ingested
    while it arrives (:func:`ingest_while_uploaded`, on a store that can be read before an upload
    completes), the attempt counted and the result parked once the control plane has verified the
    whole upload (STAGED). Returns None when that could not be done (the upload stalled for that
    long, was abandoned or refused, the store cannot be followed): nothing was counted or kept,
    and the run for the STAGED dataset does it the usual way."""
    started = time.monotonic()
    task = control_plane.get_task(task_id)
    followed = None
    if follow_stall_seconds is not None:
        current = control_plane.get_dataset(task_id)
        if current["status"] == "RECORDED":  # a run started at the grant, which lapsed or was refused meanwhile
            log.info("dataset %s is RECORDED again: nothing is being uploaded or staged", task_id)
            return None
        if current["status"] == "GRANTED":
            followed = ingest_while_uploaded(control_plane, store, workdir_root, staged_files(task, current), task,
                                             stall_seconds=follow_stall_seconds)
            if followed is None:
                return None
    dataset = control_plane.dataset_publish_attempt(task_id)  # the record, this attempt counted
    staged = staged_files(task, dataset)
    attempt = int(dataset.get("publish_attempts") or 1)
    if followed is not None:
        lance_dir, dataset_key, proofs = _park_ingested(store, staged, *followed)
    elif store.exists(staged.parked(staged.sidecar_name)):
        work = _workdir(store, workdir_root, task_id, f"attempt-{attempt}")
        lance_dir, dataset_key, proofs = _take_parked(store, staged, work)
    elif staged.recording_format == MCAP:
        lance_dir, dataset_key, proofs = _ingest_staged_mcap(store, staged, task, _workdir(store, workdir_root, task_id, f"attempt-{attempt}"))
    else:
        lance_dir, dataset_key, proofs = _take_staged_lance(store, staged, _workdir(store, workdir_root, task_id, f"attempt-{attempt}"))
    report = staged.parked(f"{staged.task_id}.qc.json")
    if not report_path(lance_dir).exists() and store.exists(report):  # QC's report of an earlier attempt (a reviewer decided since)
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
        axon_checksum_sha256=staged.axon_checksum_sha256, dataset_key=dataset_key, proofs=proofs,
    )
    log.info("ingested staged %s (%s, attempt %d) into %s: %d bytes, digest %s, %.2f s", task_id, staged.recording_format, attempt,
             store.uri_for(dataset_key), size, sidecar.dataset_digest[:12], recording.stage_seconds)
    return recording


Taken = tuple[Path, str, dict[str, list[int]]]  # (the dataset's local directory, its store key, proofs)


def _hash_verified(paths: Mapping[str, Path], expected: Mapping[str, str], what: str) -> dict[str, list[int]]:
    """Hash the files ``{name: path}`` (two at a time: hashlib lets go of the GIL) against
    ``expected`` ``{name: sha256}``; StagedDigestMismatch for the first that differs (or changed
    while it was read). Returns ``{path: fingerprint}`` of each, taken as it was hashed."""
    from concurrent.futures import ThreadPoolExecutor

    names = sorted(paths)
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="verify") as pool:
        results = list(pool.map(lambda name: fingerprinted_sha256(paths[name]), names))
    proofs = {}
    for name, (sha, fingerprint) in zip(names, results):
        if sha != expected[name] or fingerprint is None:
            raise StagedDigestMismatch(f"{what} {name}" + ("" if fingerprint else " (it changed while it was read)"),
                                       expected[name], sha)
        proofs[str(paths[name])] = list(fingerprint)
    return proofs


def _take_parked(store, staged: StagedFiles, work: Path) -> Taken:
    """The cloud's ingest of an earlier attempt, verified against its sidecar: read where it lies
    (local store, hashed in place) or fetched into the working directory."""
    key = staged.parked(staged.lance_name)
    sidecar = Sidecar.from_json(store.get_bytes(staged.parked(staged.sidecar_name)).decode())
    lance_dir = store.local_path(key)
    if lance_dir is None:
        lance_dir = work / staged.lance_name
        store.fetch_dataset(key, lance_dir, sidecar.files)  # every file verified as it arrives
        sidecar.write(sidecar_path(lance_dir))
        return lance_dir, key, {str(lance_dir / rel): list(file_fingerprint(lance_dir / rel)) for rel in sidecar.files}
    present = relative_files(lance_dir)
    if present != set(sidecar.files):
        raise StagedDigestMismatch(f"parked {store.uri_for(key)} (its files are not the ones its sidecar lists)",
                                   sidecar.dataset_digest, digest_of_files(dict.fromkeys(present, "")))
    return lance_dir, key, _hash_verified({rel: lance_dir / rel for rel in sidecar.files}, sidecar.files, f"parked {store.uri_for(key)}:")


def _ingest_staged_mcap(store, staged: StagedFiles, task: Mapping[str, Any], work: Path) -> Taken:
    """Ingest the staged MCAP (read in place on the local store, else downloaded once into the
    working directory), hashed against the manifest in the same pass; then park the Lance
    dataset in staging's ``ingested/`` (a rename on the local store, one upload otherwise) and its
    sidecar last (its presence means "parked"). A mismatch keeps nothing."""
    from axon_dagster.ingest import ingest_mcap

    mcap_key, mcap_sha = staged.key(staged.mcap_name), staged.files[staged.mcap_name]
    mcap = store.local_path(mcap_key) or store.download(mcap_key, work / staged.mcap_name)
    axon = None
    proofs: dict[str, list[int]] = {}
    if staged.sidecar_name in staged.files:  # Axon's sidecar, kept under another name beside our dataset's
        key = staged.key(staged.sidecar_name)
        path = store.local_path(key) or store.download(key, work / f"{staged.task_id}.axon.json")
        proofs.update(_hash_verified({staged.sidecar_name: path}, staged.files, f"staged {store.uri_for(staged.prefix[:-1])}"))
        axon = AxonSidecar.read(path)
    lance_dir = work / staged.lance_name
    proofs.update(_ingest_verified(mcap, mcap_sha, f"staged {store.uri_for(mcap_key)}", lambda: ingest_mcap(
        mcap, lance_dir, axon_sidecar=axon, task_id=staged.task_id, robot_id=staged.robot_id, metadata=_ingest_metadata(task),
        mcap_sha256=mcap_sha, recorder_checksum_sha256=staged.axon_checksum_sha256 or None, hash_mcap=True, write_back=True), lance_dir))
    return _park_ingested(store, staged, lance_dir, proofs)


def _ingest_metadata(task: Mapping[str, Any]) -> dict[str, Any]:
    return {"order_id": task["order_id"], "batch_id": task["batch_id"], "scene": task["scene"],
            "sub_scene": task.get("sub_scene") or "", "skills": list(task["skills"])}


def _park_ingested(store, staged: StagedFiles, lance_dir: Path, proofs: dict[str, list[int]]) -> Taken:
    """Park the Lance dataset the ingest wrote at ``lance_dir`` in staging's ``ingested/`` (a
    rename on the local store, one upload otherwise), its sidecar last (its presence means
    "parked"); ``proofs`` gains each file's fingerprint as the ingest hashed it."""
    parked = staged.parked(staged.lance_name)
    sidecar = Sidecar.read(sidecar_path(lance_dir))
    written = {rel: list(file_fingerprint(lance_dir / rel)) for rel in sidecar.files}  # hashed as written by the ingest
    store.delete_prefix(parked + "/")  # an earlier attempt's ingest that was never parked (its sidecar missing)
    store.adopt_dataset(lance_dir, parked, sidecar.files)
    store.put_file(sidecar_path(lance_dir), staged.parked(staged.sidecar_name))  # last: its presence means "parked"
    in_store = store.local_path(parked)
    if in_store is not None:  # renamed into the store: the very files the ingest hashed, read there from now on
        lance_dir = in_store
    return lance_dir, parked, {**proofs, **{str(lance_dir / rel): fingerprint for rel, fingerprint in written.items()}}


def ingest_while_uploaded(control_plane, store, workdir_root: str | Path, staged: StagedFiles, task: Mapping[str, Any], *,
                          stall_seconds: float, poll_seconds: float = 0.05) -> tuple[Path, dict[str, list[int]]] | None:
    """Ingest the MCAP a robot is uploading *as its parts arrive* (:meth:`ObjectStore.follow_upload`)
    and keep the result only once the control plane has verified the whole upload against the
    manifest (the dataset STAGED) *and* that verification covers the very bytes the ingest read
    (:meth:`~axon_dagster.storage.object_stores.UploadFollower.verified_sha256`: completion hashed
    exactly the part writes the ingest read from) — so the bytes are not hashed a second time.
    Returns the Lance dataset's directory (in the store's scratch area, not yet parked) and the
    proof that the staged MCAP is the file that was read (its fingerprint, when unchanged since).
    None — nothing kept — when the store cannot be read before completion, the upload was completed
    before it could be followed, stalls for ``stall_seconds``, is abandoned or refused, its bytes
    do not ingest, or no completion vouches for what was read (a part written again meanwhile, a
    completion that re-read the file): the run for the STAGED dataset then starts over from the
    staged files, hashing them as it reads them."""
    from axon_dagster.ingest import ingest_mcap
    from axon_dagster.ingest.mcap_to_lance import IngestError
    from axon_dagster.storage.object_stores import StagingError

    if staged.recording_format != MCAP or staged.mcap_name not in staged.sizes:
        return None
    mcap_key = staged.key(staged.mcap_name)
    follower = store.follow_upload(mcap_key, staged.sizes[staged.mcap_name], stall_seconds=stall_seconds)
    if follower is None:
        return None
    work = _workdir(store, workdir_root, staged.task_id, "follow")
    lance_dir = work / staged.lance_name
    try:
        with follower:
            follower.open()
            if follower.upload_id is None:
                raise DataFlowError("the upload was completed before it could be followed")
            axon = None
            if staged.sidecar_name in staged.files and staged.sidecar_name in staged.sizes:
                with store.follow_upload(staged.key(staged.sidecar_name), staged.sizes[staged.sidecar_name],
                                         stall_seconds=stall_seconds) as sidecar_upload:
                    raw = sidecar_upload.read_all()
                if (actual := hashlib.sha256(raw).hexdigest()) != staged.files[staged.sidecar_name]:
                    raise StagedDigestMismatch(f"uploading {store.uri_for(staged.key(staged.sidecar_name))}",
                                               staged.files[staged.sidecar_name], actual)
                (work / f"{staged.task_id}.axon.json").write_bytes(raw)
                axon = AxonSidecar.read(work / f"{staged.task_id}.axon.json")
            result = ingest_mcap(work / staged.mcap_name, lance_dir, axon_sidecar=axon, task_id=staged.task_id,
                                 robot_id=staged.robot_id, metadata=_ingest_metadata(task), mcap_sha256=staged.files[staged.mcap_name],
                                 recorder_checksum_sha256=staged.axon_checksum_sha256 or None, stream=follower, write_back=True)
            log.info("ingested %s while it was uploaded: %.2f s, %.2f s of it waiting for parts", staged.task_id,
                     result.seconds, follower.waited_seconds)
            if not _staged_soon(control_plane, staged.task_id, stall_seconds, poll_seconds):
                raise DataFlowError(f"dataset {staged.task_id} was not staged within {stall_seconds:g}s of its last byte")
            if follower.verified_sha256() != staged.files[staged.mcap_name]:
                raise DataFlowError("no completion vouches for the bytes the ingest read (a part was written again, "
                                    "or completion read the file anew)")
            fingerprint = follower.fingerprint()
    except (StagingError, DataFlowError, DigestMismatch, IngestError) as exc:
        log.warning("dataset %s: not ingested while uploaded (%s: %s); the run for the staged dataset ingests it",
                    staged.task_id, type(exc).__name__, exc)
        shutil.rmtree(work, ignore_errors=True)
        return None
    mcap_path = store.local_path(mcap_key)
    proofs = {str(mcap_path): list(fingerprint)} if fingerprint is not None and mcap_path is not None else {}
    return lance_dir, proofs


def _staged_soon(control_plane, task_id: str, within_seconds: float, poll_seconds: float) -> bool:
    """Wait until the control plane has completed and verified the upload: True once STAGED (or
    beyond), False if the dataset left GRANTED otherwise (refused, lapsed) or stayed GRANTED."""
    deadline = time.monotonic() + within_seconds
    while True:
        status = control_plane.get_dataset(task_id)["status"]
        if status != "GRANTED":
            return status not in ("RECORDED", "ARCHIVED", "DELETED")
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_seconds)


def _ingest_verified(mcap: Path, sha256: str, what: str, ingest, lance_dir: Path) -> dict[str, list[int]]:
    """Run ``ingest`` — ``ingest_mcap(..., mcap_sha256=sha256, hash_mcap=True)``, which hashes the
    MCAP in the same pass as it reads it and refuses another digest before anything appears — and
    keep its output only if the file also did not change from before the ingest to after it (its
    fingerprint): the ingest then read the very bytes that were hashed. Otherwise its output is
    removed and StagedDigestMismatch raised — also when the ingest fails on bytes that are not the
    manifest's (a refusal, not a failure to retry). Returns ``{path: fingerprint}`` of the MCAP."""
    from axon_dagster.ingest.mcap_to_lance import McapDigestMismatch

    before = file_fingerprint(mcap)
    try:
        result = ingest()
    except McapDigestMismatch as exc:
        raise StagedDigestMismatch(what, exc.expected, exc.actual) from exc
    except Exception as exc:  # the ingest failed before its hash had its say: are the bytes not the robot's?
        if file_fingerprint(mcap) != before:
            raise StagedDigestMismatch(f"{what} (it changed while it was read)", sha256, "unknown") from exc
        if (actual := file_sha256(mcap)) != sha256:
            raise StagedDigestMismatch(what, sha256, actual) from exc
        from axon_dagster.ingest.mcap_to_lance import IngestError

        if isinstance(exc, IngestError):  # the robot's very bytes: reading them again changes nothing
            raise UnreadableRecording(f"{what}: the robot's recording (its SHA-256 verified) cannot be ingested: {exc}") from exc
        raise
    if file_fingerprint(mcap) != before or getattr(result, "mcap_sha256", sha256) != sha256:
        shutil.rmtree(lance_dir, ignore_errors=True)
        sidecar_path(lance_dir).unlink(missing_ok=True)
        raise StagedDigestMismatch(f"{what} (it changed while it was read)", sha256, getattr(result, "mcap_sha256", None) or "unknown")
    return {str(mcap): list(before)}


def _take_staged_lance(store, staged: StagedFiles, work: Path) -> Taken:
    """A Lance-era recording: every file of ``<task>.lance/`` and its sidecar verified against the
    manifest (hashed where they lie on the local store, else as they arrive in the working
    directory); the manifest's files must be the ones the sidecar lists."""
    prefix = staged.lance_name + "/"
    names = [n for n in staged.files if n.startswith(prefix)]
    if not names:
        raise DataFlowError(f"dataset {staged.task_id}: the manifest names no file under {prefix}")
    key = staged.key(staged.lance_name)
    what = f"staged {store.uri_for(staged.prefix[:-1])}"
    in_place = store.local_path(key)
    if in_place is not None:
        lance_dir = in_place
        proofs = _hash_verified({n: store.local_path(staged.key(n)) for n in (*names, staged.sidecar_name)}, staged.files, what)
    else:
        lance_dir = work / staged.lance_name
        for name in names:
            fetch_object(store, staged.key(name), lance_dir / name[len(prefix):], staged.files[name])
        fetch_object(store, staged.key(staged.sidecar_name), sidecar_path(lance_dir), staged.files[staged.sidecar_name])
        proofs = {str(lance_dir / n[len(prefix):]): list(file_fingerprint(lance_dir / n[len(prefix):])) for n in names}
    sidecar = Sidecar.read(sidecar_path(lance_dir))
    fetched = {name[len(prefix):]: staged.files[name] for name in names}  # each file hashed once
    if fetched != sidecar.files:
        raise StagedDigestMismatch(f"staged {staged.lance_name} (its files are not the ones its sidecar lists)",
                                   sidecar.dataset_digest, digest_of_files(fetched))
    return lance_dir, key, proofs


def park_for_review(store, staged: StagedFiles, recording: StagedRecording) -> str:
    """A dataset waits for a reviewer: keep its QC report in staging beside its parked Lance
    dataset (on the local store QC wrote it there already), so that the run publishing it later
    needs neither this run's disk nor a new ingest."""
    lance_dir = Path(recording.cache_path)
    parked = staged.parked(f"{staged.task_id}.qc.json")
    if report_path(lance_dir).exists() and store.local_path(parked) != report_path(lance_dir):
        store.put_file(report_path(lance_dir), parked)
    return store.uri_for(parked)


def still_what_was_hashed(lance_dir: Path, files: Mapping[str, str], proofs: Mapping[str, list[int]]) -> None:
    """The dataset directory holds exactly ``files`` (the sidecar's), each the very file hashed
    earlier in this run (its fingerprint is the proof), or, where there is no proof or it differs,
    a file whose SHA-256 (read now) is the sidecar's; DigestMismatch otherwise."""
    present = relative_files(lance_dir)
    if present != set(files):
        raise DigestMismatch(f"{lance_dir} (its files are not the ones its sidecar lists)", digest_of_files(files),
                             digest_of_files(dict.fromkeys(present, "")))
    for rel, sha in files.items():
        path = lance_dir / rel
        proof = proofs.get(str(path))
        if proof is not None and list(file_fingerprint(path)) == list(proof):
            continue
        if (actual := file_sha256(path)) != sha:
            raise DigestMismatch(f"{path} (changed since it was verified)", sha, actual)


def publish_staged(control_plane, store, staged: StagedFiles, recording: StagedRecording,
                   workdir_root: str | Path | None = None) -> Uploaded:
    """Publish an approved dataset into the lake (refused by the control plane unless approved),
    verified, record it UPLOADED, tell the robot (task UPLOADED), then delete its staging area.

    What is verified, and how, before the dataset is recorded UPLOADED:

    * the dataset QC read is still what its sidecar lists (:func:`still_what_was_hashed`): every
      file the one this run hashed (the ingest hashed each as it wrote it; a parked or staged
      dataset was hashed when this run took it), proven by its unchanged fingerprint — same device,
      inode, size and modification time — or else read and hashed again;
    * the Lance dataset goes from where it lies in the store (staging's ``ingested/``, or the
      robot's staged Lance) to the lake key by :meth:`~ObjectStore.copy_dataset`, each file checked
      against the sidecar's SHA-256: on the local store a hard link whose fingerprint is the proof
      (the very inode hashed, unmodified; else re-read), on S3 a CopyObject whose SHA-256 S3
      computes from the bytes it copied (no read-back), on Azure a server-side copy read back; then
      the lake key must hold exactly the sidecar's files, and their digest be the sidecar's;
    * the original MCAP and Axon's sidecar: the same verified copies against the robot's manifest
      (on the local store the MCAP's proof is the fingerprint it kept while this run hashed it
      alongside the ingest);
    * the sidecar and QC's report: written, each read back and hashed.

    A copy that does not hold its SHA-256 is deleted and DigestMismatch raised: the dataset is not
    recorded UPLOADED and the next attempt publishes again (a copy is idempotent)."""
    started = time.monotonic()
    control_plane.dataset_upload_started(staged.task_id)
    lance_dir = Path(recording.cache_path)
    sidecar = Sidecar.read(sidecar_path(lance_dir))
    proofs = recording.proofs
    still_what_was_hashed(lance_dir, sidecar.files, proofs)
    key = lake_key_for(store, recording, sidecar)
    checked = time.monotonic()
    digest = store.copy_dataset(recording.dataset_key, key, sidecar.files,
                                proofs=_store_proofs(store, [f"{recording.dataset_key}/{rel}" for rel in sidecar.files], proofs))
    if digest != sidecar.dataset_digest:
        raise DigestMismatch(store.uri_for(key), sidecar.dataset_digest, digest)
    if staged.recording_format == MCAP:  # the original recording and Axon's sidecar: server-side copies, verified
        copies = {mcap_key(key): (staged.key(staged.mcap_name), staged.files[staged.mcap_name])}
        if staged.sidecar_name in staged.files:
            copies[axon_sidecar_key(key)] = (staged.key(staged.sidecar_name), staged.files[staged.sidecar_name])
        publish_copies(store, copies, _store_proofs(store, [src for src, _ in copies.values()], proofs))
    if report_path(lance_dir).exists():
        store.put_file(report_path(lance_dir), report_key(key))
    store.put_file(sidecar_path(lance_dir), sidecar_key(key))  # last: the dataset's description, what readers look up
    uri = store.uri_for(key)
    copied = time.monotonic()
    control_plane.dataset_uploaded(staged.task_id, cloud_uri=uri, dataset_digest=digest)
    control_plane.transition_task(staged.task_id, TaskStatus.UPLOADED.value, data={"cloud_uri": uri, "dataset_digest": digest})
    elapsed = time.monotonic() - started
    removed = store.delete_prefix(staged.prefix)
    drop_workdirs(store, workdir_root, staged.task_id)
    log.info("published %s to %s (%d bytes in %.2f s: unchanged since hashed %.2f s, verified lake copies %.2f s, recorded %.2f s); "
             "%d staged object(s) deleted", staged.task_id, uri, recording.size_bytes, elapsed, checked - started, copied - checked,
             started + elapsed - copied, removed)
    return Uploaded(staged.task_id, uri, digest, recording.size_bytes, elapsed)


def lake_key_for(store, recording: StagedRecording, sidecar: Sidecar) -> str:
    """The lake key the dataset is published at: ``{scene}/{sub_scene}/{skills}_{timestamp}.lance``,
    or, when another recording already holds that key (two robots recording the same labels in the
    same instant), the key qualified by this robot. A key holds another recording when its sidecar
    names another task or it holds files this dataset does not have (one being published); this
    dataset's own earlier attempt is not another. Never copies into another recording's directory:
    DataFlowError when both keys are taken."""
    for by_robot in (False, True):
        key = cloud_key(recording.scene, recording.sub_scene, recording.skills, sidecar, by_robot=by_robot)
        held = {k[len(key) + 1:] for k in store.list_keys(f"{key}/")}
        owner = None
        if store.exists(sidecar_key(key)):
            with suppress(Exception):  # unreadable: someone else's
                owner = Sidecar.from_json(store.get_bytes(sidecar_key(key)).decode()).task_id
            if owner != recording.task_id:
                continue
        if held - set(sidecar.files):
            continue
        if by_robot:
            log.warning("lake key %s holds another recording; %s goes to %s", cloud_key(recording.scene, recording.sub_scene,
                        recording.skills, sidecar), recording.task_id, key)
        return key
    raise DataFlowError(f"dataset {recording.task_id}: the lake keys for its labels and start time hold other recordings")


def _store_proofs(store, keys, proofs: Mapping[str, list[int]]) -> dict[str, list[int]]:
    """``{key: fingerprint}`` of the objects among ``keys`` that lie on this machine (local store)
    and were hashed by this run."""
    out = {}
    for key in keys:
        path = store.local_path(key)
        if path is not None and str(path) in proofs:
            out[key] = proofs[str(path)]
    return out


def discard_staged(store, staged: StagedFiles, policy: str, workdir_root: str | Path | None = None) -> int:
    """A rejected dataset's staging area per ``staging_rejected``: ``delete`` (now; returns how many
    objects) or ``keep`` (0). Its working directories go either way."""
    if policy not in STAGING_REJECTED_POLICIES:
        raise ValueError(f"staging_rejected must be one of {', '.join(STAGING_REJECTED_POLICIES)}, got {policy!r}")
    drop_workdirs(store, workdir_root, staged.task_id)
    return store.delete_prefix(staged.prefix) if policy == "delete" else 0

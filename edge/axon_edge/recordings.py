"""A finished recording, from where the recorder left it to the robot's edge cache.

1. **Locate** it: the stop's reply (Axon: ``/rpc/stats`` ``metadata``), the finish callback, the
   recorder's output directory (``<dir>/<task_id>.mcap``), or the path the recorder reported while
   recording (ROS services, Lance-era peers).
2. **Verify** it: an Axon MCAP is awaited until complete; Axon's ``checksum_sha256`` (sidecar,
   stats) becomes the manifest's digest of the file at once, and the one read of the file that
   checks it runs after the report (:mod:`axon_edge.verification`: overlapping the grant wait and
   the upload, which never completes before it agrees). An MCAP without a recorder's checksum is
   hashed here, and so is a Lance-era dataset, against its sidecar's digests. The **manifest** is
   what the cloud checks the upload against.
3. **Gate** it (:mod:`axon_edge.gate`) from its summary, against the task's requirements.
4. **Move** it into the edge cache (hardlink + rename, then the recorder's names go: no copy).
   A gate-rejected recording is marked rejected there (kept, evictable) or deleted, per
   ``gate_rejected``; it never uses the uplink.

The result is the EXECUTED event's data (CONTRACT-13): ``recording_format``, ``manifest``,
``gate``, and ``dataset_path`` (the cache path: informational, the cloud never opens it).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from axon_dagster.recorder.protocol import RecorderError
from axon_dagster.storage.axon_recording import (
    AxonRecordingError,
    AxonRecordingFiles,
    find_recording,
    load_sidecar,
    read_own_sidecar,
    verify_recording,
    wait_complete,
)
from axon_dagster.storage.digest import DigestMismatch, digest_of_files, file_digests, file_sha256
from axon_dagster.storage.edge_cache import EdgeCache
from axon_dagster.storage.recording import LANCE, MCAP, Sidecar, sidecar_path

from .db import LocalTask
from .gate import RecordingSummary, edge_gate
from .verification import RecordingChecks

log = logging.getLogger(__name__)

GATE_REJECTED_POLICIES = ("keep", "delete")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Found:
    path: str
    sidecar_hint: str = ""
    checksum_hint: str = ""
    vouched: bool = False  # the recorder itself said it finished this file (not just a name found on disk)


class FinishReports:
    """What the recorder's finish callbacks said (task_id -> output), kept outside the recorder
    lock: the callback may arrive while a stop holds the lock and waits for exactly this."""

    def __init__(self) -> None:
        self._reports: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()

    def put(self, task_id: str, output_path: str, sidecar_path: str = "") -> None:
        with self._lock:
            self._reports[task_id] = {"output_path": output_path, "sidecar_path": sidecar_path}

    def get(self, task_id: str) -> dict[str, str] | None:
        with self._lock:
            return self._reports.get(task_id)

    def pop(self, task_id: str) -> None:
        with self._lock:
            self._reports.pop(task_id, None)


def locate_recording(
    task: LocalTask,
    response: Any,
    hint: str | None,
    wait: float,
    *,
    reports: FinishReports,
    recorder: Any,
    output_dir: Path | None,
    stopping: Callable[[], bool],
) -> Found | None:
    """The task's recording from whichever source tells first; polls for ``wait`` seconds (the
    finish callback may come after the finish reply)."""
    task_id = task.task_id
    if response is not None and getattr(response, "output_path", ""):
        return Found(response.output_path, response.sidecar_path, response.checksum_sha256, True)
    deadline = time.monotonic() + wait
    last_output = getattr(recorder, "last_output", None)
    while True:
        report = reports.get(task_id)
        if report:
            return Found(report["output_path"], report.get("sidecar_path", ""), "", True)
        if callable(last_output):
            try:
                written = last_output(task_id)
            except RecorderError as exc:
                log.debug("task %s: recorder stats unreadable while looking for the recording: %s", task_id, exc)
                written = {}
            if written.get("output_path"):
                return Found(written["output_path"], written.get("sidecar_path", ""), written.get("checksum_sha256", ""), True)
        if output_dir is not None:
            files = find_recording(output_dir, task_id)
            if files is not None:
                return Found(str(files.mcap_path))
            lance = output_dir / f"{task_id}.lance"
            if lance.exists():
                return Found(str(lance))
        for path in (hint, task.dataset_path):
            if path and Path(path).exists():
                return Found(path)
        if time.monotonic() >= deadline or stopping():
            return None
        time.sleep(0.1)


class RecordingIntake:
    """Verify, gate and move finished recordings into the robot's edge cache."""

    def __init__(self, cache: EdgeCache, *, gate_rejected: str = "keep", checks: RecordingChecks | None = None):
        """``checks``: where a recorder's checksum is verified after the report; None: at once."""
        if gate_rejected not in GATE_REJECTED_POLICIES:
            raise ValueError(f"gate_rejected must be one of {', '.join(GATE_REJECTED_POLICIES)}, got {gate_rejected!r}")
        self.cache = cache
        self.gate_rejected = gate_rejected
        self.checks = checks

    def take(self, task: LocalTask, found: Found, complete_wait: float) -> dict[str, Any]:
        """The EXECUTED event's data for ``task``'s recording at ``found``, now in the edge cache.
        Raises AxonRecordingError / DigestMismatch / OSError / ValueError when it is not usable
        (nothing moved)."""
        p = Path(found.path)
        unverified: dict[str, str] = {}  # name -> the recorder's checksum, verified after the report
        if p.suffix == ".mcap":
            fmt, sources, markers, manifest, checksum, summary, sidecar_file = self._mcap(task, p, found, complete_wait, unverified)
        else:
            fmt, sources, markers, manifest, checksum, summary, sidecar_file = self._lance(task, p, found, complete_wait)
        gate = edge_gate(summary, task.metadata.get("requirements")) if summary is not None else {
            "passed": True, "reasons": [], "checks": {"summary": {"passed": True, "skipped": "the recording has no readable summary"}},
        }
        entry = self.cache.take_recording(task.task_id, fmt, sources, manifest, markers=markers)
        if gate["passed"] and self.checks is not None:
            for name, sha in unverified.items():  # recorded before the EXECUTED event is
                self.checks.expect(task.task_id, name, sha)
                log.info("task %s: %s reported with the recorder's checksum; read once after the report to verify it",
                         task.task_id, name)
        if not gate["passed"]:
            log.warning("task %s: the edge gate rejected the recording: %s", task.task_id, "; ".join(gate["reasons"]))
            self.cache.mark_rejected(task.task_id)
            if self.gate_rejected == "delete":
                self.cache.remove(task.task_id)
                log.info("task %s: gate-rejected recording deleted (gate_rejected=delete)", task.task_id)
        self.cache.evict()
        return {
            "dataset_path": str(entry.path),
            "sidecar_path": str(entry.entry_dir / sidecar_file) if sidecar_file else None,
            "recording_format": fmt,
            "checksum_sha256": checksum,
            "manifest": manifest,
            "gate": gate,
        }

    def _mcap(self, task: LocalTask, p: Path, found: Found, complete_wait: float, unverified: dict[str, str]):
        files = AxonRecordingFiles.for_mcap(p)
        wait_complete(files, complete_wait, poll_s=0.05)
        name = f"{task.task_id}.mcap"
        axon = read_own_sidecar(files)
        claims = {c.lower() for c in (axon.checksum_sha256 if axon else None, found.checksum_hint or None) if c}
        if len(claims) == 1 and self.checks is not None and _SHA256.fullmatch(next(iter(claims))):
            sha = unverified[name] = next(iter(claims))  # the recorder's claim: read once, after the report
        else:
            # No recorder's checksum (or two that disagree: the read says which is wrong): hash now.
            sha, axon = verify_recording(files, expected=found.checksum_hint or None)
        sources = {name: files.mcap_path}
        listed = [{"name": name, "size": files.mcap_path.stat().st_size, "sha256": sha}]
        sidecar_file = None
        if files.sidecar_path.exists():
            sidecar_file = f"{task.task_id}.json"
            sources[sidecar_file] = files.sidecar_path
            listed.append({"name": sidecar_file, "size": files.sidecar_path.stat().st_size, "sha256": file_sha256(files.sidecar_path)})
        markers = {f"{task.task_id}.mcap.done": files.done_path} if files.done_path.exists() else {}
        checksum = sha if (axon is not None or found.checksum_hint) else None
        manifest = {"files": listed, "dataset_digest": sha, "axon_checksum_sha256": axon.checksum_sha256 if axon else checksum}
        summary = RecordingSummary.of_axon(axon) if axon is not None else self._metadata_summary(files)
        return MCAP, sources, markers, manifest, checksum, summary, sidecar_file

    @staticmethod
    def _metadata_summary(files: AxonRecordingFiles) -> RecordingSummary | None:
        try:
            return RecordingSummary.of_axon(load_sidecar(files))
        except (AxonRecordingError, ValueError, OSError) as exc:
            log.warning("%s: no sidecar and no readable axon.* metadata (%s): the edge gate cannot judge it", files.mcap_path, exc)
            return None

    def _lance(self, task: LocalTask, p: Path, found: Found, complete_wait: float):
        sidecar = Path(found.sidecar_hint) if found.sidecar_hint else sidecar_path(p)
        if not p.is_dir():
            raise FileNotFoundError(f"no recording at {p}")
        deadline = time.monotonic() + complete_wait
        while not sidecar.exists():
            if time.monotonic() >= deadline:
                raise FileNotFoundError(f"the sidecar {sidecar} of {p} did not appear within {complete_wait:g}s")
            time.sleep(0.1)
        described = Sidecar.read(sidecar)
        actual = file_digests(p)  # the one read of the dataset's files
        if actual != described.files or digest_of_files(actual) != described.dataset_digest:
            raise DigestMismatch(f"{p} against its sidecar {sidecar}", described.dataset_digest, digest_of_files(actual))
        base = f"{task.task_id}.lance"
        sources = {f"{base}/{rel}": p / rel for rel in sorted(actual)}
        listed = [{"name": f"{base}/{rel}", "size": (p / rel).stat().st_size, "sha256": sha} for rel, sha in sorted(actual.items())]
        sidecar_file = f"{task.task_id}.json"
        sources[sidecar_file] = sidecar
        listed.append({"name": sidecar_file, "size": sidecar.stat().st_size, "sha256": file_sha256(sidecar)})
        manifest = {"files": listed, "dataset_digest": described.dataset_digest}
        return LANCE, sources, {}, manifest, None, RecordingSummary.of_lance(described), sidecar_file

"""What ``finish`` writes (the MCAP + sidecar + ``.done`` of Axon v0.4, or the Lance-era layout),
and what ``cancel`` deletes."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Mapping

from axon_dagster.storage.recording import sidecar_path

from .session import FinishedRecording, Session
from .synthetic import TopicSpec
from .task_config import dataset_metadata


def write_session(
    session: Session,
    wall_s: float,
    active_s: float,
    *,
    data_dir: Path,
    robot_id: str,
    recording_format: str,
    subscriptions: Mapping[str, TopicSpec],
    encoding: str,
    schema: str,
    sidecar_mode: str,
) -> FinishedRecording:
    """Write ``session``'s recording (``wall_s`` long, ``active_s`` of it not paused)."""
    task_id = session.task_id
    seed = seed_for(task_id)
    if recording_format == "lance":
        from .synthetic import write_recording

        sidecar = write_recording(
            session.output_path,
            task_id=task_id,
            robot_id=robot_id,
            start_ns=session.started_ns,
            # a begin/finish within the same millisecond still records one message per topic
            duration_s=max(active_s, 1e-3),
            topics=subscriptions,
            faults=session.faults.recording,
            metadata=dataset_metadata(session.task_config),
            seed=seed,
        )
        size = sum((session.output_path / rel).stat().st_size for rel in sidecar.files if (session.output_path / rel).exists())
        return FinishedRecording(
            task_id=task_id,
            output_path=str(session.output_path),
            sidecar_path=str(sidecar_path(session.output_path)),
            checksum_sha256=None,
            message_count=sidecar.row_count,
            file_size_bytes=size,
            flushed_batches=sum(1 for rel in sidecar.files if rel.startswith("data/")),
            recording_format="lance",
        )
    from .axon_mcap import write_axon_recording

    duration = max(wall_s, 1e-3)
    pauses = [(min(start, duration), max(0.0, min(length, duration - min(start, duration)))) for start, length in session.pauses]
    result = write_axon_recording(
        data_dir,
        task_config=session.task_config,
        device_id=session.task_config.get("device_id") or robot_id,
        started_at_ns=session.started_ns,
        duration_s=duration,
        pauses=pauses,
        topics=subscriptions,
        faults=session.faults.recording,
        seed=seed,
        encoding=encoding,
        schema=schema,
        sidecar_mode=sidecar_mode,
    )
    return FinishedRecording(
        task_id=task_id,
        output_path=str(result.mcap_path),
        sidecar_path=str(result.sidecar_path) if result.sidecar_path else None,
        checksum_sha256=result.checksum_sha256,
        message_count=result.message_count,
        file_size_bytes=result.file_size_bytes,
        flushed_batches=0,
        recording_format="mcap",
    )


def discard(output: Path) -> None:
    """Delete a recording's files: ``.mcap`` (or the ``.lance`` directory), ``.json``, ``.done``."""
    for path in (output, sidecar_path(output), output.with_name(output.name + ".done")):
        for candidate in (path, path.with_name(path.name + ".tmp")):
            if candidate.is_dir():
                shutil.rmtree(candidate, ignore_errors=True)
            else:
                candidate.unlink(missing_ok=True)


def seed_for(task_id: str) -> int:
    """A stable seed per task: recordings differ between tasks, and a task's is reproducible."""
    return int.from_bytes(hashlib.sha256(task_id.encode()).digest()[:4], "big")


def directory_bytes(root: Path) -> int:
    total = 0
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            try:
                total += os.stat(os.path.join(dirpath, name)).st_size
            except FileNotFoundError:  # a dataset being renamed into place
                pass
    return total

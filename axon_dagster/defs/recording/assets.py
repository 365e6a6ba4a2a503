"""The ``lance_dataset`` asset: one recording on this host, described after checking it against its
digests (a Lance-era dataset against its sidecar, an Axon MCAP against Axon's checksum). The path
comes from the launchpad (an admin's file on the code location's host), never from a robot."""

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from axon_dagster.storage.digest import DigestMismatch
from axon_dagster.storage.recording import Sidecar, sidecar_path

LANCE_DATASET = dg.AssetKey("lance_dataset")


def lance_dataset_metadata(dataset_path: str | os.PathLike) -> dict[str, Any]:
    """The ``lance_dataset`` asset's metadata, after checking the dataset against its sidecar's
    digest: path, size, topics, time range, schema and the recording config it was made with."""
    path = Path(dataset_path)
    if path.suffix == ".mcap":
        return mcap_recording_metadata(path)
    side = sidecar_path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"no Lance dataset at {path}")
    if not side.exists():
        raise FileNotFoundError(f"no sidecar {side}: {path} is not a finished recording")
    sidecar = Sidecar.read(side)
    sidecar.verify(path)  # DigestMismatch if a file changed since the recorder wrote it
    import lance  # heavy: only where the asset materializes

    dataset = lance.dataset(str(path))
    schema = dg.TableSchema(columns=[dg.TableColumn(name=f.name, type=str(f.type)) for f in dataset.schema])
    size = sum((path / rel).stat().st_size for rel in sidecar.files)
    return {
        "dataset_path": dg.MetadataValue.path(str(path)),
        "task_id": sidecar.task_id,
        "robot_id": sidecar.robot_id,
        "size_bytes": size,
        "row_count": dataset.count_rows(),
        "topics": dg.MetadataValue.json(sorted(sidecar.topics)),
        "topic_message_counts": dg.MetadataValue.json({t: s.count for t, s in sorted(sidecar.topics.items())}),
        "start_time": _iso(sidecar.start_ns),
        "end_time": _iso(sidecar.end_ns),
        "duration_seconds": (sidecar.end_ns - sidecar.start_ns) / 1e9,
        "dagster/column_schema": schema,
        "recording_config": dg.MetadataValue.json(sidecar.metadata),
        "dataset_digest": sidecar.dataset_digest,
    }


def mcap_recording_metadata(mcap_path: str | os.PathLike) -> dict[str, Any]:
    """The recording asset's metadata for an Axon MCAP, after checking it is complete and matches
    Axon's checksum: what Axon's sidecar (or, without one, the MCAP's axon.* records) says."""
    from axon_dagster.storage.axon_recording import AxonRecordingFiles, load_sidecar, verify_recording

    files = AxonRecordingFiles.for_mcap(mcap_path)
    # IncompleteRecording if not finished, ChecksumMismatch if the file changed since Axon hashed it
    sha, axon = verify_recording(files)
    axon = axon or load_sidecar(files)  # no sidecar: the MCAP's axon.* records
    rec = axon.recording
    return {
        "dataset_path": dg.MetadataValue.path(str(files.mcap_path)),
        "recording_format": "mcap",
        "task_id": axon.task_id,
        "robot_id": axon.device.device_id,
        "size_bytes": files.mcap_path.stat().st_size,
        "row_count": rec.message_count,
        "topics": dg.MetadataValue.json(sorted(axon.topic_counts())),
        "topic_message_counts": dg.MetadataValue.json(dict(sorted(axon.topic_counts().items()))),
        "start_time": rec.recording_started_at,
        "end_time": rec.recording_finished_at,
        "duration_seconds": rec.duration_sec,
        "recording_config": dg.MetadataValue.json(axon.to_dict()["task"]),
        "axon_checksum_sha256": rec.checksum_sha256 or "",
        "mcap_sha256": sha,
    }


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).isoformat()


class LanceDatasetConfig(dg.Config):
    dataset_path: str = Field(description="A recording: <data_dir>/<task_id>.lance with its <task_id>.json sidecar, or an Axon MCAP")


@dg.asset(key=LANCE_DATASET, group_name="recording", kinds={"lance"})
def lance_dataset(context: dg.AssetExecutionContext, config: LanceDatasetConfig) -> dg.MaterializeResult:
    """A recording, checked against its digests."""
    try:
        metadata = lance_dataset_metadata(config.dataset_path)
    except FileNotFoundError as exc:
        raise dg.Failure(description=f"not a recording: {exc}", allow_retries=False) from exc
    except DigestMismatch as exc:
        raise dg.Failure(description=f"the dataset changed since it was recorded: {exc}", allow_retries=False) from exc
    return dg.MaterializeResult(metadata=metadata)

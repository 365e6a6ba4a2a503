"""The recording format shared by the recorder, the edge cache, inspection and upload.

A recording is a Lance dataset directory ``<name>.lance`` with one row per message, and a JSON
sidecar ``<name>.json`` beside it describing the task, per-topic counts, the time range and the
digests (see :mod:`axon_dagster.storage.digest`).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .digest import DigestMismatch, digest_of_files, file_digests

# The layouts a recording arrives in (the EXECUTED event's ``recording_format``): Axon v0.4's MCAP
# (``<task_id>.mcap`` + Axon's sidecar), ingested into Lance at staging, or a Lance-era dataset.
MCAP, LANCE = "mcap", "lance"
RECORDING_FORMATS = (MCAP, LANCE)

# Columns of every recording; pyarrow is imported lazily so robots without it can read sidecars.
RECORDING_COLUMNS = ("topic", "log_time_ns", "sequence", "message_type", "payload")
SIDECAR_FORMAT_VERSION = 1


def recording_schema():
    import pyarrow as pa

    return pa.schema(
        [
            ("topic", pa.string()),
            ("log_time_ns", pa.int64()),
            ("sequence", pa.int64()),
            ("message_type", pa.string()),
            ("payload", pa.binary()),
        ]
    )


@dataclass
class TopicSummary:
    count: int
    message_type: str
    first_ns: int
    last_ns: int


@dataclass
class Sidecar:
    task_id: str
    robot_id: str
    metadata: dict[str, Any]  # task metadata: order_id, batch_id, scene, sub_scene, skills, ...
    topics: dict[str, TopicSummary]
    start_ns: int
    end_ns: int
    files: dict[str, str]  # relative path -> sha256
    dataset_digest: str
    format_version: int = SIDECAR_FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def row_count(self) -> int:
        return sum(t.count for t in self.topics.values())

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Sidecar":
        raw = json.loads(text)
        raw["topics"] = {k: TopicSummary(**v) for k, v in raw["topics"].items()}
        return cls(**raw)

    @classmethod
    def read(cls, path: str | os.PathLike) -> "Sidecar":
        return cls.from_json(Path(path).read_text())

    def write(self, path: str | os.PathLike) -> None:
        tmp = Path(f"{path}.tmp")
        tmp.write_text(self.to_json())
        os.replace(tmp, path)

    def verify(self, dataset_dir: str | os.PathLike) -> None:
        """Raise DigestMismatch unless ``dataset_dir`` holds exactly the files this sidecar lists."""
        actual = file_digests(dataset_dir)
        if actual != self.files:
            raise DigestMismatch(str(dataset_dir), self.dataset_digest, digest_of_files(actual))


def sidecar_path(dataset_dir: str | os.PathLike) -> Path:
    """``/x/name.lance`` -> ``/x/name.json``; ``/x/name.mcap`` -> ``/x/name.json`` (Axon's naming)."""
    p = Path(dataset_dir)
    return p.with_suffix(".json") if p.suffix in (".lance", ".mcap") else p.with_name(p.name + ".json")


def _beside(dataset_dir: str | os.PathLike, suffix: str) -> Path:
    p = Path(dataset_dir)
    stem = p.name[: -len(".lance")] if p.name.endswith(".lance") else p.name
    return p.with_name(stem + suffix)


def report_path(dataset_dir: str | os.PathLike) -> Path:
    """``/x/name.lance`` -> ``/x/name.qc.json`` (the inspection report beside the dataset)."""
    return _beside(dataset_dir, ".qc.json")


def source_mcap_path(dataset_dir: str | os.PathLike) -> Path:
    """``/x/name.lance`` -> ``/x/name.mcap``: the original MCAP a dataset was ingested from, kept beside it."""
    return _beside(dataset_dir, ".mcap")


def axon_sidecar_path(dataset_dir: str | os.PathLike) -> Path:
    """``/x/name.lance`` -> ``/x/name.axon.json``: Axon's sidecar of that MCAP (``name.json`` is the dataset's)."""
    return _beside(dataset_dir, ".axon.json")

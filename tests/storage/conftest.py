"""Fixtures of the storage suite: real Lance recordings with sidecars, and the moto S3 server."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from axon_dagster.storage.digest import digest_of_files, file_digests
from axon_dagster.storage.recording import Sidecar, TopicSummary, recording_schema, sidecar_path

# Fixtures from the shared moto module. Importing them (rather than `pytest_plugins`, which pytest
# only honours in the top-level conftest) keeps this suite runnable alone and inside the full run.
try:
    from tests.s3_fixture import s3_bucket, s3_client, s3_env, s3_server  # noqa: F401
except ModuleNotFoundError:  # repository root not on sys.path (plain `pytest`): tests/ is
    from s3_fixture import s3_bucket, s3_client, s3_env, s3_server  # type: ignore[no-redef]  # noqa: F401

MakeRecording = Callable[..., Path]


def write_lance_recording(dataset_dir: Path, *, task_id: str, seed: int = 0, rows: int = 60) -> Sidecar:
    """A small but real recording: a Lance dataset of three topics and its sidecar beside it."""
    import lance
    import pyarrow as pa

    topics = ["/camera/image_raw", "/joint_states", "/imu"]
    types = {"/camera/image_raw": "sensor_msgs/Image", "/joint_states": "sensor_msgs/JointState", "/imu": "sensor_msgs/Imu"}
    start_ns = 1_700_000_000_000_000_000 + seed * 1_000_000_000
    records = [
        (topics[i % 3], start_ns + i * 5_000_000, i // 3, types[topics[i % 3]], bytes([(seed + i) % 256]) * 64)
        for i in range(rows)
    ]
    table = pa.Table.from_pylist(
        [dict(zip(("topic", "log_time_ns", "sequence", "message_type", "payload"), r)) for r in records],
        schema=recording_schema(),
    )
    lance.write_dataset(table, str(dataset_dir))
    summary: dict[str, TopicSummary] = {}
    for topic, t, _seq, mtype, _payload in records:
        s = summary.setdefault(topic, TopicSummary(0, mtype, t, t))
        s.count += 1
        s.last_ns = t
    files = file_digests(dataset_dir)
    sidecar = Sidecar(
        task_id=task_id,
        robot_id="robot-1",
        metadata={"order_id": "order-1", "scene": "warehouse", "sub_scene": "aisle_1", "skills": ["pick"]},
        topics=summary,
        start_ns=records[0][1],
        end_ns=records[-1][1],
        files=files,
        dataset_digest=digest_of_files(files),
    )
    sidecar.write(sidecar_path(dataset_dir))
    return sidecar


@pytest.fixture(scope="session")
def _recording_templates() -> dict[int, Path]:
    return {}


@pytest.fixture
def make_recording(tmp_path: Path, _recording_templates: dict[int, Path], tmp_path_factory: pytest.TempPathFactory) -> MakeRecording:
    """``make_recording(name, seed=0, parent=tmp_path/"recorder")`` -> path of ``<name>.lance``.
    Each seed is written once per session with Lance and copied after that (keeps the suite fast)."""

    def make(name: str = "task-1", *, seed: int = 0, parent: Path | None = None) -> Path:
        if seed not in _recording_templates:
            template = tmp_path_factory.mktemp(f"template-{seed}") / "rec.lance"
            write_lance_recording(template, task_id=f"template-{seed}", seed=seed)
            _recording_templates[seed] = template
        template = _recording_templates[seed]
        parent = parent or tmp_path / "recorder"
        parent.mkdir(parents=True, exist_ok=True)
        dest = parent / f"{name}.lance"
        shutil.copytree(template, dest)
        shutil.copyfile(sidecar_path(template), sidecar_path(dest))
        return dest

    return make


def tamper(dataset_dir: Path) -> Path:
    """Flip one byte of the dataset's largest data file, after its sidecar was written."""
    victim = max((p for p in dataset_dir.rglob("*.lance") if p.is_file()), key=lambda p: p.stat().st_size)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    # Rewrite through a new inode: an in-place write would also change any hardlinked copy.
    tmp = victim.with_name(victim.name + ".tmp")
    tmp.write_bytes(bytes(data))
    os.replace(tmp, victim)
    return victim


@pytest.fixture(autouse=True)
def _upload_state_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """S3 stores keep their upload state in AXON_UPLOAD_STATE_DIR: never in the working tree."""
    state = tmp_path / "upload-state"
    monkeypatch.setenv("AXON_UPLOAD_STATE_DIR", str(state))
    return state

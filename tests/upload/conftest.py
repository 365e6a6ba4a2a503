"""Fixtures of the upload suite: the moto S3 server (real HTTP), recordings, and big random files."""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Callable
from pathlib import Path

import pytest

try:
    from tests.s3_fixture import s3_bucket, s3_client, s3_env, s3_server  # noqa: F401
    from tests.storage.conftest import _recording_templates, _upload_state_in_tmp, make_recording  # noqa: F401
except ModuleNotFoundError:  # repository root not on sys.path
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.s3_fixture import s3_bucket, s3_client, s3_env, s3_server  # noqa: F401
    from tests.storage.conftest import _recording_templates, _upload_state_in_tmp, make_recording  # noqa: F401

MiB = 1 << 20


def write_random(path: Path, size: int, seed: int = 0) -> str:
    """A file of ``size`` pseudo-random bytes; returns its SHA-256."""
    data = random.Random(seed).randbytes(size)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def big_file(tmp_path: Path) -> Callable[..., tuple[Path, str]]:
    def make(size: int = 11 * MiB + 12345, seed: int = 0, name: str = "big.bin") -> tuple[Path, str]:
        path = tmp_path / "src" / name
        return path, write_random(path, size, seed)

    return make


def object_sha256(client, bucket: str, key: str) -> str:
    h = hashlib.sha256()
    body = client.get_object(Bucket=bucket, Key=key)["Body"]
    for chunk in iter(lambda: body.read(MiB), b""):
        h.update(chunk)
    return h.hexdigest()


def open_uploads(client, bucket: str) -> list[dict]:
    return client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])


os.environ.setdefault("AXON_UPLOAD_BANDWIDTH", "")  # no cap from the environment in tests

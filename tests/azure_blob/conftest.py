"""Fixtures of the Azure Blob suite: Azurite (real HTTP) and stores on fresh containers."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

try:
    from tests.azurite_fixture import AzureRequestLog, azure_container, azure_env, azure_service, azurite  # noqa: F401
except ModuleNotFoundError:  # repository root not on sys.path (plain `pytest`)
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.azurite_fixture import AzureRequestLog, azure_container, azure_env, azure_service, azurite  # noqa: F401

from axon_dagster.storage.bandwidth import RateLimiter, UploadQueue
from axon_dagster.storage.digest import file_digests

KiB = 1024
BLOCK = 256 * KiB


@pytest.fixture
def make_store(azurite, azure_container, tmp_path) -> Callable[..., Any]:
    """``make_store(**options)``: an AzureBlobObjectStore on the test's container, prefix
    ``datasets``, 256 KiB blocks, its own uncapped bucket and queue (no process-wide state)."""
    from axon_dagster.storage.object_stores.azure import AzureBlobObjectStore

    def make(*, log: AzureRequestLog | None = None, **options: Any) -> AzureBlobObjectStore:
        options.setdefault("block_size", BLOCK)
        options.setdefault("rate_limiter", RateLimiter(None))
        options.setdefault("upload_queue", UploadQueue())
        options.setdefault("prefix", "datasets")
        options.setdefault("throughput_log", tmp_path / "throughput.json")
        if log is not None:
            options["client_kwargs"] = {"raw_request_hook": log}
        return AzureBlobObjectStore(azure_container, connection_string=azurite.connection_string, **options)

    return make


def write_dataset(root: Path, seed: int = 0, big: int = 5 * BLOCK // 2 + 1234) -> dict[str, str]:
    """A small synthetic dataset directory (a Lance-like layout): a few small files and one file
    of several blocks. Returns its manifest ``{relative_path: sha256}``."""
    rng = random.Random(seed)
    files = {
        "_versions/1.manifest": rng.randbytes(700),
        "_transactions/0-abc.txn": rng.randbytes(300),
        "data/0001.lance": rng.randbytes(40 * KiB),
        "data/0002.lance": rng.randbytes(big),
        "empty.bin": b"",
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return file_digests(root)

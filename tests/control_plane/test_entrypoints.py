"""Settings from the environment and the API process entry point (what `axon-dagster api` runs)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from axon_dagster.settings import DEFAULT_DATABASE_URL, load_settings


def test_settings_defaults_and_environment() -> None:
    assert load_settings({}) == load_settings({"AXON_DATABASE_URL": "", "AXON_ADMIN_TOKEN": " "})
    defaults = load_settings({})
    assert (defaults.database_url, defaults.admin_token, defaults.max_body_bytes) == (DEFAULT_DATABASE_URL, None, 1024 * 1024)
    custom = load_settings({"AXON_DATABASE_URL": "postgresql+psycopg://db/axon", "AXON_ADMIN_TOKEN": "s3cret", "AXON_MAX_BODY_BYTES": "2048"})
    assert (custom.database_url, custom.admin_token, custom.max_body_bytes) == ("postgresql+psycopg://db/axon", "s3cret", 2048)
    assert "s3cret" not in repr(custom)
    for bad in ("lots", "0", "-5"):
        with pytest.raises(ValueError, match="AXON_MAX_BODY_BYTES"):
            load_settings({"AXON_MAX_BODY_BYTES": bad})


def test_api_process_migrates_and_serves_with_settings_from_the_environment(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "AXON_DATABASE_URL": f"sqlite:///{tmp_path / 'nested' / 'cp.db'}", "AXON_ADMIN_TOKEN": "from-env"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "axon_dagster.api", "--port", str(port), "--upgrade", "--log-level", "warning"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the API process did not come up"
            time.sleep(0.1)
        assert httpx.get(f"{base}/api/v1/orders").status_code == 401
        assert httpx.get(f"{base}/api/v1/orders", headers={"Authorization": "Bearer from-env"}).json() == []
        assert (tmp_path / "nested" / "cp.db").exists()
        assert httpx.get(f"{base}/openapi.json").json()["paths"]["/api/v1/edge/events"]
    finally:
        proc.terminate()
        proc.wait(10)


def test_api_worker_count_from_the_environment_or_the_backend() -> None:
    from axon_dagster.api.server import default_workers

    assert default_workers({"AXON_API_WORKERS": "3"}, database_url="sqlite:///x.db") == 3
    assert default_workers({}, database_url="sqlite:///x.db") == 1  # one writer anyway
    assert default_workers({}, database_url="postgresql+psycopg://db/axon") == max(1, min(4, os.cpu_count() or 1))
    for bad in ("many", "0", "65"):
        with pytest.raises(ValueError, match="AXON_API_WORKERS"):
            default_workers({"AXON_API_WORKERS": bad})

"""`axon-dagster dev` stopped with SIGTERM (how a terminal multiplexer, systemd or CI ends it) leaves
nothing behind: not the fleet (control plane, recorders, edge agents: sessions of their own), not
`dagster dev` and its webserver/daemon/code servers."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from axon_dagster.demo.processes import free_port

pytestmark = pytest.mark.slow


def _processes_mentioning(marker: str) -> dict[int, str]:
    """Our processes whose command line or environment names ``marker`` (every process of a dev
    session has its workdir in one or the other: data dirs, database URL, DAGSTER_HOME)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = (entry / "environ").read_bytes().decode(errors="replace")
        except (FileNotFoundError, PermissionError, ProcessLookupError):
            continue
        if marker in cmdline or marker in environ:
            found[int(entry.name)] = cmdline[:200]
    return found


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def test_sigterm_stops_dagster_dev_and_every_fleet_process(tmp_path):
    workdir = tmp_path / "dev-session"
    api_port, ui_port = free_port(), free_port()
    log = (tmp_path / "dev.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "axon_dagster.cli", "dev", "--robots", "1", "--workdir", str(workdir),
         "--api-port", str(api_port), "--ui-port", str(ui_port)],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        def ui_up() -> bool:
            assert proc.poll() is None, (tmp_path / "dev.log").read_text()[-3000:]
            try:
                return httpx.get(f"http://127.0.0.1:{ui_port}/server_info", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        _wait(ui_up, 240, "the Dagster UI of `axon-dagster dev`")
        running = _processes_mentioning(str(workdir))
        # control plane, recorder, edge agent, dagster dev and its webserver/daemon at least
        assert len(running) >= 5, running
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=90) == 0, (tmp_path / "dev.log").read_text()[-3000:]
        deadline = time.monotonic() + 20
        while _processes_mentioning(str(workdir)) and time.monotonic() < deadline:
            time.sleep(0.5)
        left = _processes_mentioning(str(workdir))
        assert not left, f"left running after SIGTERM: {left}"
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in _processes_mentioning(str(workdir)):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

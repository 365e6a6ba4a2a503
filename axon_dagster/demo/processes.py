"""Running the demo's processes: free ports, waiting until one is healthy (or says it is ready),
and SIGTERM/SIGHUP handled like Ctrl-C so that whoever started them stops them."""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

log = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, process: subprocess.Popen | None = None, timeout: float = 60.0, log_path: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            tail = log_path.read_text()[-3000:] if log_path and log_path.exists() else ""
            raise RuntimeError(f"{url}: process exited with {process.returncode} before it was healthy\n{tail}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} not healthy after {timeout:.0f}s")


@contextmanager
def stop_on_signals(signals: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGHUP)):
    """Within: SIGTERM / SIGHUP end this process as Ctrl-C does (``KeyboardInterrupt`` in the main
    thread), so every ``with SimulatedFleet(...)`` on the way out stops its processes. Their default
    action would end us on the spot and leave the fleet running: its processes are in sessions of
    their own. A second signal while stopping is ignored (the fleet's stop has its own deadline)."""
    received: list[int] = []

    def interrupt(signum: int, _frame: object) -> None:
        if received:
            log.warning("%s again while stopping; still stopping", signal.Signals(signum).name)
            return
        received.append(signum)
        log.warning("%s received: stopping", signal.Signals(signum).name)
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, interrupt) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def wait_for_log_line(text: str, process: subprocess.Popen, log_path: Path, timeout: float = 90.0) -> None:
    """Wait until ``text`` appears in a child's log (how the ROS 1 simulator says it is ready)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = log_path.read_text(errors="replace") if log_path.exists() else ""
        if text in content:
            return
        if process.poll() is not None:
            raise RuntimeError(f"{log_path.name}: process exited with {process.returncode} before it was ready\n{content[-3000:]}")
        time.sleep(0.2)
    raise TimeoutError(f"{log_path.name}: {text!r} not seen after {timeout:.0f}s")


def wait_recorder(url: str, timeout: float = 10.0) -> dict:
    """Check that an already-running recorder answers Axon's ``/health``; a clear error if not."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            response = httpx.get(f"{url}/health", timeout=2.0)
            if response.status_code == 200:
                return response.json()
            last = f"HTTP {response.status_code}"
        except (httpx.HTTPError, ValueError) as exc:
            last = str(exc) or type(exc).__name__
        time.sleep(0.3)
    raise RuntimeError(f"external recorder {url} does not answer GET /health ({last}); start it first")

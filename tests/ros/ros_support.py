"""Helpers shared by the ROS suites (imported by conftest.py and the tests)."""

from __future__ import annotations

import itertools
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable


_namespaces = itertools.count(1)
STARTUP_TIMEOUT = 30.0


def new_namespace(prefix: str = "sim") -> str:
    """A ROS namespace no other test uses: each test's services are its own."""
    return f"{prefix}_{os.getpid()}_{next(_namespaces)}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def read_line(stream: Any, timeout: float) -> str:
    """The next line of a child's stdout, or "" after ``timeout`` — never a hang."""
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        return ""


def stop_process(proc: subprocess.Popen, timeout: float = 5.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)


def axon_sim_command() -> list[str]:
    script = Path(sys.executable).with_name("axon-sim")
    return [str(script)] if script.exists() else [sys.executable, "-m", "axon_dagster.demo.sim.cli"]


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02) -> Any:
    """Poll until truthy (returns the value) or fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


class HangUpServicePeer:
    """A misbehaving ROS 1 service over real TCPROS: it answers ``wait_for_service`` probes, takes
    each request, then closes the connection without replying — a recorder dying mid-call.
    Register it at the master with :meth:`register`; it counts the requests it received."""

    def __init__(self, md5sum: str, srv_type: str):
        import struct

        self._struct = struct
        self.md5sum, self.srv_type = md5sum, srv_type
        self.requests = 0
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(16)
        self._server.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="hang-up-peer", daemon=True)
        self._thread.start()

    @property
    def uri(self) -> str:
        host, port = self._server.getsockname()
        return f"rosrpc://{host}:{port}"

    def _recv_exact(self, conn: socket.socket, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                raise ConnectionError("peer closed")
            data += chunk
        return data

    def _read_header(self, conn: socket.socket) -> dict[str, str]:
        (length,) = self._struct.unpack("<I", self._recv_exact(conn, 4))
        raw, fields = self._recv_exact(conn, length), {}
        while raw:
            (size,) = self._struct.unpack("<I", raw[:4])
            key, _, value = raw[4 : 4 + size].decode().partition("=")
            fields[key], raw = value, raw[4 + size :]
        return fields

    def _write_header(self, conn: socket.socket, fields: dict[str, str]) -> None:
        body = b"".join(self._struct.pack("<I", len(f"{k}={v}")) + f"{k}={v}".encode() for k, v in fields.items())
        conn.sendall(self._struct.pack("<I", len(body)) + body)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(5)
                try:
                    header = self._read_header(conn)
                    if header.get("probe") == "1":
                        continue
                    self._write_header(conn, {"callerid": "/hang_up_peer", "md5sum": self.md5sum, "type": self.srv_type})
                    (length,) = self._struct.unpack("<I", self._recv_exact(conn, 4))
                    self._recv_exact(conn, length)
                    self.requests += 1  # ... and hang up without a word
                except (OSError, ConnectionError):
                    pass

    def register(self, service: str, caller_api: str) -> None:
        import rosgraph

        rosgraph.Master("/hang_up_peer").registerService(service, self.uri, caller_api)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._server.close()


@dataclass
class RosSim:
    """``axon-sim --transport ros1|ros2`` as a child process serving under ``namespace``."""

    transport: str  # ros1 | ros2
    namespace: str
    data_dir: Path
    proc: subprocess.Popen
    log_path: Path

    def client(self, **kwargs: Any):
        """A recorder client of the same ROS generation (the caller closes it)."""
        kwargs.setdefault("timeout_seconds", 30.0)  # the first finish imports lance in the simulator
        kwargs.setdefault("retry_attempts", 0)
        if self.transport == "ros2":
            from axon_dagster.recorder.ros2 import Ros2Recorder

            return Ros2Recorder(self.namespace, **kwargs)
        from axon_dagster.recorder.ros1 import Ros1Recorder

        return Ros1Recorder(self.namespace, **kwargs)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def spawn_sim(transport: str, directory: Path, namespace: str | None = None, *, faults: str | None = None,
              robot_id: str = "robot-1") -> RosSim:
    """Start the simulator as a ROS node (returns at once; :func:`wait_sim` waits for its services)."""
    namespace = namespace or new_namespace(f"sim{transport[-1]}")
    log_path = directory / f"{namespace}.log"
    command = [
        # the ROS services of the reference design serve Lance-era recorders
        *axon_sim_command(), "--transport", transport, "--namespace", namespace, "--format", "lance",
        "--data-dir", str(directory / f"data-{namespace}"), "--robot-id", robot_id,
    ]
    if faults:
        command += ["--faults", faults]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=open(log_path, "w"), text=True)
    return RosSim(transport, namespace, directory / f"data-{namespace}", proc, log_path)


def wait_sim(sim: RosSim) -> RosSim:
    """Wait for the line saying all four services exist (fails the test, never hangs)."""
    line = read_line(sim.proc.stdout, STARTUP_TIMEOUT)
    if f"serving ROS {sim.transport[-1]} services under /{sim.namespace}/" not in line:
        kill(sim)
        raise AssertionError(f"axon-sim did not start: {line!r}\n{sim.log()}")
    return sim


def launch_sim(transport: str, directory: Path, **kwargs: Any) -> RosSim:
    """The simulator as a ROS node under a fresh namespace, once its services exist."""
    return wait_sim(spawn_sim(transport, directory, **kwargs))


def kill(sim: RosSim) -> None:
    # SIGKILL: a clean stop is tested on its own; here it would only cost a second per sim, and
    # the stale registration it leaves is under a namespace no other test uses
    if sim.proc.poll() is None:
        sim.proc.kill()
    sim.proc.wait(timeout=10)

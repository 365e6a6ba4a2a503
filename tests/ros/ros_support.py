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
from pathlib import Path
from typing import Any, Callable


_namespaces = itertools.count(1)


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
    return [str(script)] if script.exists() else [sys.executable, "-m", "axon_dagster.recorder.sim.cli"]


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

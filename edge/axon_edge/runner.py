"""Wiring: build an agent from addresses, serve its HTTP surface, run until told to stop.

``start_agent_in_thread`` is for programs that host agents (the demo's simulated fleet, tests);
``run_agent`` is the foreground process of ``axon-edge run`` (SIGTERM/SIGINT stop it cleanly).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from axon_dagster.api.client import EdgeSyncClient
from axon_dagster.recorder.factory import recorder_from_config

from .agent import EdgeAgent
from .http import create_app

log = logging.getLogger(__name__)

DEFAULT_PORT = 8090
DEFAULT_POLL_INTERVAL = 2.0
# finish flushes the whole recording to disk before it answers: give it more than a status call.
DEFAULT_RECORDER_TIMEOUT = 15.0


def build_agent(
    robot_id: str,
    control_plane_url: str,
    token: str,
    data_dir: str | os.PathLike,
    recorder_url: str,
    *,
    poll_interval: float = DEFAULT_POLL_INTERVAL,
    recorder_timeout_seconds: float = DEFAULT_RECORDER_TIMEOUT,
    **agent_options,
) -> EdgeAgent:
    control_plane = EdgeSyncClient(control_plane_url, token)
    recorder = recorder_from_config("http", url=recorder_url, timeout_seconds=recorder_timeout_seconds)
    return EdgeAgent(robot_id, control_plane, recorder, Path(data_dir), poll_interval=poll_interval, **agent_options)


@dataclass
class RunningAgent:
    agent: EdgeAgent
    host: str
    port: int
    _server: uvicorn.Server
    _thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving, stop the loops, close the clients. Safe to call twice."""
        self._server.should_exit = True
        self._thread.join(timeout)
        if self.agent.running:
            self.agent.stop(timeout)
        for client in (self.agent.control_plane, self.agent.recorder):
            close = getattr(client, "close", None)
            if callable(close):
                close()


def start_agent_in_thread(
    robot_id: str,
    control_plane_url: str,
    token: str,
    data_dir: str | os.PathLike,
    recorder_url: str,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    poll_interval: float = DEFAULT_POLL_INTERVAL,
    agent: EdgeAgent | None = None,
    startup_timeout: float = 10.0,
    **agent_options,
) -> RunningAgent:
    """Start an agent (loops + HTTP) in background threads; ``port=0`` picks a free port.
    Pass ``agent`` to serve one built by the caller (other clients, options)."""
    if agent is None:
        agent = build_agent(
            robot_id, control_plane_url, token, data_dir, recorder_url, poll_interval=poll_interval, **agent_options
        )
    sock = _listen(host, port)
    actual_port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(agent), log_config=None, access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    agent.start()
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"axon-edge-http-{agent.robot_id}", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            agent.stop()
            raise RuntimeError(f"edge agent HTTP server did not start on {host}:{actual_port}")
        time.sleep(0.01)
    log.info("edge agent %s serving on http://%s:%d", agent.robot_id, host, actual_port)
    return RunningAgent(agent=agent, host=host, port=actual_port, _server=server, _thread=thread)


def run_agent(
    robot_id: str,
    control_plane_url: str,
    token: str,
    data_dir: str | os.PathLike,
    recorder_url: str,
    *,
    host: str = "0.0.0.0",
    port: int = DEFAULT_PORT,
    poll_interval: float = DEFAULT_POLL_INTERVAL,
) -> int:
    """Run in the foreground until SIGTERM or SIGINT; returns the process exit code."""
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        running = start_agent_in_thread(
            robot_id, control_plane_url, token, data_dir, recorder_url, host=host, port=port, poll_interval=poll_interval
        )
        try:
            while not stop.wait(1.0):
                if not running._thread.is_alive():
                    log.error("HTTP server stopped unexpectedly")
                    return 1
        finally:
            running.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(False)
    return sock

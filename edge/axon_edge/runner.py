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

from axon_dagster.client import EdgeSyncClient
from axon_dagster.recorder.factory import DEFAULT_NAMESPACE, recorder_from_config

from .access import HttpAccess
from .agent import EdgeAgent
from .http import create_app
from .teleop_ros import TELEOP_TRANSPORTS, RosTeleopListener, ensure_ros1_node

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
    recorder_url: str | None,
    *,
    poll_interval: float = DEFAULT_POLL_INTERVAL,
    recorder_timeout_seconds: float = DEFAULT_RECORDER_TIMEOUT,
    recorder_transport: str = "http",
    recorder_namespace: str = DEFAULT_NAMESPACE,
    **agent_options,
) -> EdgeAgent:
    """``recorder_transport``: ``http`` (Axon HTTP RPC at ``recorder_url``), ``ros1`` or ``ros2``
    (the recorder's services under ``/<recorder_namespace>/``; ROS_MASTER_URI, ROS_DOMAIN_ID & co. from the env)."""
    control_plane = EdgeSyncClient(control_plane_url, token)
    if recorder_transport == "ros1":
        try:
            ensure_ros1_node(recorder_timeout_seconds)  # now, so that ROS keeps our logging as it is
        except Exception as exc:  # the recorder client reports it (unreachable) and retries later
            log.warning("ROS 1 node not registered yet: %s", exc)
    recorder = recorder_from_config(
        recorder_transport, url=recorder_url, timeout_seconds=recorder_timeout_seconds, namespace=recorder_namespace
    )
    return EdgeAgent(robot_id, control_plane, recorder, Path(data_dir), poll_interval=poll_interval, **agent_options)


@dataclass
class RunningAgent:
    agent: EdgeAgent
    host: str
    port: int
    _server: uvicorn.Server
    _thread: threading.Thread
    teleop_listener: RosTeleopListener | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving, stop the loops, close the clients. Safe to call twice."""
        self._server.should_exit = True
        self._thread.join(timeout)
        if self.teleop_listener is not None:
            self.teleop_listener.stop()
            self.teleop_listener = None
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
    teleop: str = "http",
    callbacks: bool = True,
    access: HttpAccess | None = None,
    **agent_options,
) -> RunningAgent:
    """Start an agent (loops + HTTP) in background threads; ``port=0`` picks a free port.
    Pass ``agent`` to serve one built by the caller (other clients, options)."""
    if agent is None:
        agent = build_agent(
            robot_id, control_plane_url, token, data_dir, recorder_url, poll_interval=poll_interval, **agent_options
        )
    if teleop not in TELEOP_TRANSPORTS:
        raise ValueError(f"unknown teleop transport {teleop!r}; expected one of {', '.join(TELEOP_TRANSPORTS)}")
    sock = _listen(host, port)
    actual_port = sock.getsockname()[1]
    if callbacks and not agent.callback_base_url:
        # The recorder runs on the same robot: it calls back over loopback.
        local = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        agent.callback_base_url = f"http://{'[' + local + ']' if ':' in local else local}:{actual_port}"
    listener = None
    if teleop in ("ros1", "ros2"):
        listener = RosTeleopListener(agent, generation=teleop)
        try:
            listener.start()
        except BaseException:
            sock.close()
            raise
    config = uvicorn.Config(create_app(agent, access), log_config=None, access_log=False, lifespan="off")
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
            if listener is not None:
                listener.stop()
            agent.stop()
            raise RuntimeError(f"edge agent HTTP server did not start on {host}:{actual_port}")
        time.sleep(0.01)
    log.info("edge agent %s serving on http://%s:%d", agent.robot_id, host, actual_port)
    return RunningAgent(agent=agent, host=host, port=actual_port, _server=server, _thread=thread, teleop_listener=listener)


def run_agent(
    robot_id: str,
    control_plane_url: str,
    token: str,
    data_dir: str | os.PathLike,
    recorder_url: str,
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    poll_interval: float = DEFAULT_POLL_INTERVAL,
    teleop: str = "http",
    access: HttpAccess | None = None,
    **agent_options,
) -> int:
    """Run in the foreground until SIGTERM or SIGINT; returns the process exit code."""
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        running = start_agent_in_thread(
            robot_id, control_plane_url, token, data_dir, recorder_url, host=host, port=port, poll_interval=poll_interval,
            teleop=teleop, access=access, **agent_options,
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

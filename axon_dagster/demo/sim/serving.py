"""Running a simulated recorder: sockets, a uvicorn server in a thread, and the exit statuses of ``axon-sim``."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Any, Callable, Mapping

from .faults import SimFaults
from .recorder import SimulatedRecorder

logger = logging.getLogger(__name__)

EXIT_CRASHED = 1  # a simulated crash (fault die_after_seconds)
EXIT_USAGE = 2  # bad arguments, or the transport cannot be served: nothing started


def bind_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening-ready TCP socket; port 0 picks a free one (read it back from getsockname)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve_app_in_thread(
    app: Any, *, host: str = "127.0.0.1", port: int = 0, sock: socket.socket | None = None, startup_timeout: float = 10.0
) -> tuple[str, Callable[[], None], Any]:
    """Serve an ASGI ``app`` with uvicorn in a daemon thread; return ``(url, stop, server)``.
    ``sock`` may be a socket bound earlier (and not yet listening): connections are refused
    until the server starts, which lets a caller reserve a port race-free."""
    import uvicorn

    sock = sock or bind_socket(host, port)
    url = url_of(sock)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_level="warning",
            lifespan="off",
            access_log=False,
            # stop() must not hang behind a request that never finishes
            timeout_graceful_shutdown=1,
        )
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn-{url}", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError(f"server did not start on {url}")
        time.sleep(0.01)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()

    return url, stop, server


def serve_in_thread(
    port: int = 0,
    data_dir: str | os.PathLike | None = None,
    *,
    robot_id: str = "sim-robot",
    faults: SimFaults | Mapping[str, Any] | None = None,
    host: str = "127.0.0.1",
    recorder: SimulatedRecorder | None = None,
) -> tuple[str, Callable[[], None]]:
    """Serve a simulated recorder on ``host:port`` in a background thread; return its base URL
    and a ``stop()`` that shuts it down (idempotent). Pass ``recorder`` to keep a handle on it
    (faults, state); otherwise one is built from ``data_dir``, ``robot_id`` and ``faults``.
    With the fault ``die_after_seconds`` the server shuts itself down, as a crashed recorder."""
    if recorder is None:
        if data_dir is None:
            raise ValueError("serve_in_thread needs data_dir (or a recorder)")
        recorder = SimulatedRecorder(data_dir, robot_id, faults=faults)
    url, stop, server = serve_app_in_thread(recorder.app, host=host, port=port)
    previous_on_crash = recorder.on_crash

    def crash() -> None:
        server.should_exit = True
        if previous_on_crash is not None:
            previous_on_crash()

    recorder.on_crash = crash
    recorder.on_quit = lambda: setattr(server, "should_exit", True)
    logger.info("simulated recorder %s serving on %s (data in %s)", recorder.robot_id, url, recorder.data_dir)
    return url, stop

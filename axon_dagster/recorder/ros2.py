"""``RecorderClient`` over the recorder's ROS 2 services (rclpy).

One node of our own, with a client per service (``/<namespace>/start_recording`` ...), spun by a
``SingleThreadedExecutor`` in a background thread; a call is ``wait_for_service`` (bounded by
``timeout_seconds``) then ``call_async`` and a bounded wait on the future. The service types are
those rosidl builds from ``recorder/ros_interfaces`` (package ``axon_recorder_msgs``).

Errors, as for every backend (:mod:`axon_dagster.recorder.protocol`):

- :class:`RecorderUnreachable` — the service is not available within the timeout (retried
  ``retry_attempts`` times with exponential backoff: the request was never sent);
- :class:`RecorderTimeout` — the request went out and no reply came in time; the pending request
  is dropped so a late reply is ignored. Never retried: the recorder may have acted on it;
- :class:`RecorderRefused` — ``success=false`` with the recorder's message;
- :class:`RecorderProtocolError` — the reply does not match our ``.srv``.

``close()`` shuts the executor down, joins its thread, destroys the node and — only if this
module initialised the rclpy context, and once its last client is closed — shuts rclpy down; a
host process that initialised rclpy itself keeps its context.

``rclpy_module`` / ``srv_module`` exist so tests can pass a test double: the code path is the
one that runs on a robot.
"""

from __future__ import annotations

import importlib
import itertools
import logging
import os
import threading
import time
from types import ModuleType
from typing import Any

from .protocol import (
    RecorderError,
    RecorderTimeout,
    RecorderUnreachable,
)
from .srv import (
    RosServiceRecorder,
    PACKAGE,
    SERVICES,
    service_name,
)

logger = logging.getLogger(__name__)

NODE_NAME = "axon_dagster_recorder_client"
DEFAULT_NAMESPACE = "axon"
_node_numbers = itertools.count(1)


class Ros2Unavailable(ImportError):
    """rclpy, or the built interface package, cannot be imported here."""


def import_rclpy() -> ModuleType:
    try:
        import rclpy
        import rclpy.executors  # noqa: F401  (the executor classes live in the submodule)
    except ImportError as exc:
        raise Ros2Unavailable(
            f"rclpy is not installed ({exc}): the ros2 recorder transport runs where ROS 2 is installed and "
            "sourced (source /opt/ros/<distro>/setup.bash); use transport 'ros1' or 'http' elsewhere"
        ) from exc
    return rclpy


def import_srv_module() -> ModuleType:
    try:
        return importlib.import_module(f"{PACKAGE}.srv")
    except ImportError as exc:
        raise Ros2Unavailable(
            f"the ROS 2 interface package {PACKAGE} is not built ({exc}): build axon_dagster/recorder/ros_interfaces "
            "with colcon and source its install/setup.bash"
        ) from exc


# -- the rclpy context: initialised at most once by us, shut down after our last client ----------

_context_lock = threading.Lock()
_context_leases: dict[int, dict[str, Any]] = {}  # id(rclpy module) -> {"users": n, "owned": bool}


def _acquire_context(rclpy: ModuleType) -> None:
    with _context_lock:
        lease = _context_leases.setdefault(id(rclpy), {"users": 0, "owned": False})
        if lease["users"] == 0:
            lease["owned"] = not rclpy.ok()
            if lease["owned"]:
                rclpy.init()
        lease["users"] += 1


def _release_context(rclpy: ModuleType) -> None:
    with _context_lock:
        lease = _context_leases.get(id(rclpy))
        if lease is None:
            return
        lease["users"] -= 1
        if lease["users"] > 0:
            return
        del _context_leases[id(rclpy)]
        if lease["owned"] and rclpy.ok():
            rclpy.shutdown()


class Ros2Recorder(RosServiceRecorder):
    """The Axon recorder's ROS 2 services under ``/<namespace>/``. Close it (or use ``with``)."""

    def __init__(
        self,
        namespace: str = DEFAULT_NAMESPACE,
        timeout_seconds: float = 5.0,
        retry_attempts: int = 3,
        *,
        rclpy_module: ModuleType | Any | None = None,
        srv_module: ModuleType | Any | None = None,
        backoff_seconds: float = 0.1,
        max_backoff_seconds: float = 2.0,
    ):
        # every argument is checked before rclpy is touched: bad input changes nothing
        self._configure(namespace, timeout_seconds, retry_attempts, backoff_seconds, max_backoff_seconds)
        self._rclpy = rclpy_module if rclpy_module is not None else import_rclpy()
        srv = srv_module if srv_module is not None else import_srv_module()
        self._types = {op: getattr(srv, name) for op, name in SERVICES.items()}
        self._names = {op: service_name(self.namespace, op) for op in SERVICES}
        self.attempts = 0  # calls sent or tried, retries included (for logs and tests)
        self._closed = False
        self._close_lock = threading.Lock()

        _acquire_context(self._rclpy)
        self._node: Any = None
        self._executor: Any = None
        try:
            self._node = self._rclpy.create_node(f"{NODE_NAME}_{os.getpid()}_{next(_node_numbers)}")
            self._clients = {op: self._node.create_client(self._types[op], self._names[op]) for op in SERVICES}
            self._executor = self._rclpy.executors.SingleThreadedExecutor()
            self._executor.add_node(self._node)
            self._spin_thread = threading.Thread(target=self._spin, name=f"rclpy-executor {self.namespace}", daemon=True)
            self._spin_thread.start()
        except BaseException:
            self._teardown()
            raise

    def __repr__(self) -> str:
        return f"Ros2Recorder(namespace={self.namespace!r})"

    def _spin(self) -> None:
        try:
            self._executor.spin()
        except Exception:  # the context was shut down under us, ...: calls will time out and say so
            if not self._closed:
                logger.exception("rclpy executor of %r stopped", self)

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """Stop spinning, destroy the node, and shut rclpy down if we initialised it. Idempotent."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._teardown()

    def _teardown(self) -> None:
        try:
            if self._executor is not None:
                self._executor.shutdown(timeout_sec=self.timeout_seconds)
                thread = getattr(self, "_spin_thread", None)
                if thread is not None:
                    thread.join(self.timeout_seconds)
                    if thread.is_alive():
                        logger.warning("rclpy executor thread of %r did not stop within %gs", self, self.timeout_seconds)
            if self._node is not None:
                self._node.destroy_node()  # destroys its clients too
        finally:
            _release_context(self._rclpy)

    # -- the ROS graph (topic_availability sensor) ---------------------------------------------

    def available_topics(self) -> dict[str, str]:
        """``{topic: type}`` of every topic with at least one publisher, from the ROS 2 graph."""
        self._check_open()
        return {
            name: types[0] if types else ""
            for name, types in self._node.get_topic_names_and_types()
            if self._node.count_publishers(name) > 0
        }

    # -- plumbing ----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RecorderError(f"{self!r} is closed")

    def _call(self, operation: str, **fields: Any) -> Any:
        self._check_open()
        name = self._names[operation]
        request = self._types[operation].Request(**fields)
        client = self._clients[operation]
        attempts = self.retry_attempts + 1
        for attempt in range(1, attempts + 1):
            self.attempts += 1
            if client.wait_for_service(timeout_sec=self.timeout_seconds):
                return self._invoke(name, client, request)
            if attempt == attempts:
                break
            delay = min(self.backoff_seconds * 2 ** (attempt - 1), self.max_backoff_seconds)
            logger.warning("service %s not available; retry %d/%d in %.2fs", name, attempt, self.retry_attempts, delay)
            time.sleep(delay)
        raise RecorderUnreachable(
            f"recorder unreachable: service {name} not available within {self.timeout_seconds:g}s after {attempts} attempt(s)"
        )

    def _invoke(self, name: str, client: Any, request: Any) -> Any:
        future = client.call_async(request)
        answered = threading.Event()
        future.add_done_callback(lambda _future: answered.set())
        if not answered.wait(self.timeout_seconds):
            # forget the request, so a late reply completes nothing (remove_pending_request: Humble+)
            remove = getattr(client, "remove_pending_request", None)
            if remove is not None:
                remove(future)
            future.cancel()
            gone = "" if client.service_is_ready() else "; the service is no longer available (did the recorder die?)"
            raise RecorderTimeout(f"recorder did not answer {name} within {self.timeout_seconds:g}s{gone}")
        if future.cancelled():
            raise RecorderUnreachable(f"the call to {name} was cancelled (rclpy shutting down?)")
        error = future.exception()
        if error is not None:
            raise RecorderUnreachable(f"the call to {name} failed: {error}") from error
        return future.result()

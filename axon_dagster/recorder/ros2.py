"""``RecorderClient`` over the recorder's ROS 2 services (rclpy).

One node of our own (:class:`~.ros2_env.SpinningNode`: its own executor in a background
thread), with a client per service (``/<namespace>/start_recording`` ...); a call is
``wait_for_service`` (bounded by ``timeout_seconds``) then ``call_async`` and a bounded wait on
the future. The service types are those rosidl builds from our ``.srv`` files (package
``axon_recorder_msgs``, :mod:`axon_dagster.recorder.ros2_build`).

Errors, as for every backend (:mod:`axon_dagster.recorder.protocol`):

- :class:`RecorderUnreachable` — the service is not available within the timeout (retried
  ``retry_attempts`` times with exponential backoff: the request was never sent);
- :class:`RecorderTimeout` — the request went out and no reply came in time; the pending request
  is dropped so a late reply is ignored. Never retried: the recorder may have acted on it;
- :class:`RecorderRefused` — ``success=false`` with the recorder's message;
- :class:`RecorderProtocolError` — the reply does not match our ``.srv``.

``close()`` shuts the executor down, joins its thread, destroys the node and — only if rclpy was
initialised for us, and once its last user in the process is closed — shuts rclpy down; a host
process that initialised rclpy itself keeps its context.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from typing import Any

from .protocol import (
    RecorderError,
    RecorderTimeout,
    RecorderUnreachable,
)
from .ros2_env import Ros2Unavailable, SpinningNode, import_rclpy, load_srv_module
from .srv import (
    RosServiceRecorder,
    SERVICES,
    service_name,
)

logger = logging.getLogger(__name__)

NODE_NAME = "axon_dagster_recorder_client"
DEFAULT_NAMESPACE = "axon"
_node_numbers = itertools.count(1)

__all__ = ["Ros2Recorder", "Ros2Unavailable", "import_rclpy"]


class Ros2Recorder(RosServiceRecorder):
    """The Axon recorder's ROS 2 services under ``/<namespace>/``. Close it (or use ``with``)."""

    def __init__(
        self,
        namespace: str = DEFAULT_NAMESPACE,
        timeout_seconds: float = 5.0,
        retry_attempts: int = 3,
        *,
        backoff_seconds: float = 0.1,
        max_backoff_seconds: float = 2.0,
    ):
        # every argument is checked before rclpy is touched: bad input changes nothing
        self._configure(namespace, timeout_seconds, retry_attempts, backoff_seconds, max_backoff_seconds)
        srv = load_srv_module()
        self._types = {op: getattr(srv, name) for op, name in SERVICES.items()}
        self._names = {op: service_name(self.namespace, op) for op in SERVICES}
        self.attempts = 0  # calls sent or tried, retries included (for logs and tests)
        self._closed = False
        self._close_lock = threading.Lock()
        self._spinner = SpinningNode(f"{NODE_NAME}_{os.getpid()}_{next(_node_numbers)}", shutdown_timeout=self.timeout_seconds)
        try:
            self._node = self._spinner.node
            self._clients = {op: self._node.create_client(self._types[op], self._names[op]) for op in SERVICES}
        except BaseException:
            self._spinner.close()
            raise

    def __repr__(self) -> str:
        return f"Ros2Recorder(namespace={self.namespace!r})"

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """Stop spinning, destroy the node, and shut rclpy down if it was initialised for us. Idempotent."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._spinner.close()

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

"""``RecorderClient`` over the recorder's ROS 1 services (rospy).

Calls ``/<namespace>/start_recording``, ``stop_recording``, ``get_status`` and ``update_config``
with the classes genpy generates from our ``.srv`` files. Every wait is bounded by
``timeout_seconds`` — registering with the master, ``wait_for_service`` and the call itself —
and each cause of failure has its own error (see :mod:`axon_dagster.recorder.protocol`):

- :class:`RecorderUnreachable` — no master, the service is not advertised, or nobody answers at
  its address. The request never reached the recorder, so it is retried ``retry_attempts`` times
  with exponential backoff;
- :class:`RecorderTimeout` — the call went out and no reply came in time. Never retried: the
  recorder may have acted on it. rospy has no per-call timeout, so the call runs in a worker
  thread on a connection of its own, which is closed on timeout to free that thread;
- :class:`RecorderRefused` — ``success=false`` (or the service handler raised), with the message;
- :class:`RecorderProtocolError` — the service has another type (md5sum mismatch) or the reply
  does not match our ``.srv``.

rospy allows one node per process: the first client registers an anonymous node
(``disable_signals=True``, so the host process keeps its own signal handling) and every later
one shares it; a process that already called ``rospy.init_node`` is used as it is.
"""

from __future__ import annotations

import logging
import threading
import time
from types import ModuleType
from typing import Any, Callable, TypeVar

from .protocol import (
    RecorderError,
    RecorderProtocolError,
    RecorderRefused,
    RecorderTimeout,
    RecorderUnreachable,
)
from .ros1_env import import_ros1
from .srv import (
    RosServiceRecorder,
    SERVICES,
    service_name,
)

logger = logging.getLogger(__name__)

NODE_NAME = "axon_dagster_recorder_client"
DEFAULT_NAMESPACE = "axon"
# Calls that change nothing on the recorder may be repeated after a connection lost mid-call.
READ_ONLY_OPERATIONS = frozenset({"get_status"})

T = TypeVar("T")


class _NotReached(Exception):
    """The request did not reach the recorder: safe to try again."""


# -- the process's one rospy node --------------------------------------------------------------

_node_lock = threading.Lock()
_init_thread: threading.Thread | None = None
_init_error: BaseException | None = None


def ensure_node(timeout_seconds: float, node_name: str = NODE_NAME) -> ModuleType:
    """Register this process's rospy node (once), waiting at most ``timeout_seconds``.

    ``rospy.init_node`` blocks until the master answers, for ever if there is none; it runs in a
    daemon thread that keeps trying in the background, so a master that comes up later is used
    by the next call. Raises :class:`RecorderUnreachable` when the master is not there.
    """
    global _init_thread
    rospy = import_ros1("rospy")
    if rospy.core.is_initialized():
        return rospy
    rosgraph = import_ros1("rosgraph")
    master_uri = rosgraph.get_master_uri()
    with _node_lock:
        if _init_error is not None:
            raise RecorderError(f"rospy.init_node failed in this process: {_init_error}")
        if _init_thread is None:
            # fail fast with a clear message rather than let init_node wait for a master that is not there
            if not rosgraph.is_master_online(master_uri):
                raise RecorderUnreachable(f"no ROS master answers at {master_uri} (ROS_MASTER_URI)")
            _init_thread = threading.Thread(target=_init_node, args=(rospy, node_name), name="rospy-init-node", daemon=True)
            _init_thread.start()
        thread = _init_thread
    thread.join(timeout_seconds)
    if _init_error is not None:
        raise RecorderError(f"rospy.init_node failed in this process: {_init_error}")
    if not rospy.core.is_initialized():
        raise RecorderUnreachable(f"could not register with the ROS master at {master_uri} within {timeout_seconds:g}s")
    return rospy


def _init_node(rospy: ModuleType, node_name: str) -> None:
    global _init_error
    try:
        rospy.init_node(node_name, anonymous=True, disable_signals=True)
        logger.info("rospy node %s registered", rospy.get_name())
    except BaseException as exc:  # reported to every caller of ensure_node
        _init_error = exc


# -- the client ---------------------------------------------------------------------------------


class Ros1Recorder(RosServiceRecorder):
    """The Axon recorder's ROS 1 services under ``/<namespace>/``.

    ``retry_attempts`` is the number of *re*-tries after the first attempt when the recorder
    cannot be reached; backoff doubles from ``backoff_seconds`` up to ``max_backoff_seconds``.
    ``srv_module`` is the module holding the service classes (default: generated with genpy from
    our ``.srv`` files at first use).
    """

    def __init__(
        self,
        namespace: str = DEFAULT_NAMESPACE,
        timeout_seconds: float = 5.0,
        retry_attempts: int = 3,
        *,
        backoff_seconds: float = 0.1,
        max_backoff_seconds: float = 2.0,
        srv_module: ModuleType | None = None,
    ):
        self._configure(namespace, timeout_seconds, retry_attempts, backoff_seconds, max_backoff_seconds)
        # import now, so a machine without ROS 1 fails at configuration time with the install hint
        self._rospy = import_ros1("rospy")
        if srv_module is None:
            from .genpy_build import load_srv_module

            srv_module = load_srv_module()
        self._types = {op: getattr(srv_module, srv) for op, srv in SERVICES.items()}
        self._names = {op: service_name(self.namespace, op) for op in SERVICES}
        self.attempts = 0  # calls sent or tried, retries included (for logs and tests)

    def __repr__(self) -> str:
        return f"Ros1Recorder(namespace={self.namespace!r})"

    def close(self) -> None:
        """Nothing to release: proxies live for one call and the node belongs to the process."""

    # -- the ROS graph (topic_availability sensor) ---------------------------------------------

    def available_topics(self) -> dict[str, str]:
        """``{topic: type}`` of every topic someone publishes, from the master."""
        rosgraph = import_ros1("rosgraph")

        def query() -> dict[str, str]:
            rospy = self._node()
            try:
                return dict(rosgraph.Master(rospy.get_name()).getPublishedTopics(""))
            except OSError as exc:
                raise _NotReached(f"ROS master unreachable: {exc}") from exc

        return self._with_retries("getPublishedTopics", lambda: self._bounded("getPublishedTopics", query))

    # -- plumbing ----------------------------------------------------------------------------

    def _node(self) -> ModuleType:
        try:
            return ensure_node(self.timeout_seconds)
        except RecorderUnreachable as exc:  # no master (yet): nothing was sent, try again
            raise _NotReached(str(exc)) from exc

    def _call(self, operation: str, **fields: Any) -> Any:
        srv_type = self._types[operation]
        name = self._names[operation]
        request = srv_type._request_class(**fields)
        return self._with_retries(name, lambda: self._call_once(operation, name, srv_type, request))

    def _with_retries(self, what: str, attempt_fn: Callable[[], T]) -> T:
        attempts = self.retry_attempts + 1
        for attempt in range(1, attempts + 1):
            self.attempts += 1
            try:
                return attempt_fn()
            except _NotReached as exc:  # only what never reached the recorder is tried again
                failure: Exception = exc
            if attempt == attempts:
                break
            delay = min(self.backoff_seconds * 2 ** (attempt - 1), self.max_backoff_seconds)
            logger.warning("recorder unreachable at %s (%s); retry %d/%d in %.2fs", what, failure, attempt, self.retry_attempts, delay)
            time.sleep(delay)
        raise RecorderUnreachable(f"recorder unreachable: {what} failed after {attempts} attempt(s): {failure}") from failure

    def _call_once(self, operation: str, name: str, srv_type: Any, request: Any) -> Any:
        rospy = self._node()
        try:
            rospy.wait_for_service(name, timeout=self.timeout_seconds)
        except rospy.ROSInterruptException as exc:
            raise RecorderUnreachable(f"rospy is shutting down; cannot call {name}") from exc
        except rospy.ROSException as exc:
            raise _NotReached(f"service {name} not available within {self.timeout_seconds:g}s ({exc})") from exc
        # persistent: the proxy owns its connection, so closing it on timeout frees the worker
        proxy = rospy.ServiceProxy(name, srv_type, persistent=True)
        try:
            return self._bounded(name, lambda: self._invoke(rospy, operation, name, proxy, request), on_timeout=proxy.close)
        finally:
            proxy.close()

    def _invoke(self, rospy: ModuleType, operation: str, name: str, proxy: Any, request: Any) -> Any:
        try:
            return proxy.call(request)
        except rospy.ServiceException as exc:
            raise _classify(operation, name, str(exc)) from exc
        except rospy.ROSInterruptException as exc:
            raise RecorderUnreachable(f"rospy is shutting down; call to {name} interrupted") from exc
        except (rospy.ROSSerializationException, TypeError) as exc:
            raise ValueError(f"cannot encode the request for {name}: {exc}") from exc

    def _bounded(self, what: str, fn: Callable[[], T], on_timeout: Callable[[], None] | None = None) -> T:
        """Run ``fn`` in a worker thread and wait at most ``timeout_seconds`` for it."""
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["value"] = fn()
            except BaseException as exc:  # re-raised in the caller's thread
                box["error"] = exc

        worker = threading.Thread(target=run, name=f"ros1-call {what}", daemon=True)
        worker.start()
        worker.join(self.timeout_seconds)
        if worker.is_alive():
            if on_timeout is not None:
                on_timeout()
            raise RecorderTimeout(f"recorder did not answer {what} within {self.timeout_seconds:g}s")
        if "error" in box:
            raise box["error"]
        return box["value"]


def _classify(operation: str, name: str, message: str) -> Exception:
    """Map rospy's ServiceException (one class for every failure) onto our errors by its text."""
    if "md5sum" in message:
        return RecorderProtocolError(
            f"{operation}: the service at {name} has another type than ours ({message}); "
            "is the recorder built from the same .srv files?"
        )
    if "responded with an error" in message:
        # the handler raised: the recorder received the request and declined it
        return RecorderRefused(operation, message)
    never_sent = message.startswith(("unable to connect", "unable to contact master")) or (
        message.startswith("service [") and message.endswith("unavailable")  # the master does not know it
    )
    if never_sent:
        return _NotReached(f"{name}: {message}")
    if operation in READ_ONLY_OPERATIONS:
        return _NotReached(f"{name}: {message}")
    return RecorderUnreachable(f"connection to the recorder was lost during {name}: {message}")

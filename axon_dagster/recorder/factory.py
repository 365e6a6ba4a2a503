"""Choose a recorder backend from configuration.

``http`` (Axon's HTTP RPC), ``ros1`` (rospy) and ``ros2`` (rclpy) take the same
``timeout_seconds`` and ``retry_attempts`` (plus ``url`` for http, ``namespace`` for ROS), so
callers never change. The ROS backends import their client library only when chosen.
"""

from __future__ import annotations

from typing import Callable

from axon_dagster.settings.ros import RECORDER_URL_ENV, RosSettings

from .axon_http import AxonHttpRecorder
from .protocol import RecorderClient

DEFAULT_NAMESPACE = "axon"


def _http_backend(*, url: str | None, timeout_seconds: float, retry_attempts: int, namespace: str) -> RecorderClient:
    url = url or RosSettings.load().recorder_url
    if not url:
        raise ValueError(f"the http recorder transport needs url= (or ${RECORDER_URL_ENV})")
    return AxonHttpRecorder(url, timeout_seconds=timeout_seconds, retry_attempts=retry_attempts)


def _ros1_backend(*, url: str | None, timeout_seconds: float, retry_attempts: int, namespace: str) -> RecorderClient:
    from .ros1 import Ros1Recorder  # imports rospy: only when asked for

    return Ros1Recorder(namespace, timeout_seconds=timeout_seconds, retry_attempts=retry_attempts)


def _ros2_backend(*, url: str | None, timeout_seconds: float, retry_attempts: int, namespace: str) -> RecorderClient:
    from .ros2 import Ros2Recorder  # imports rclpy: only when asked for

    return Ros2Recorder(namespace, timeout_seconds=timeout_seconds, retry_attempts=retry_attempts)


# transport name -> builder (ros1/ros2 raise ImportError with an install hint where ROS is missing)
BACKENDS: dict[str, Callable[..., RecorderClient]] = {"http": _http_backend, "ros1": _ros1_backend, "ros2": _ros2_backend}


def recorder_from_config(
    transport: str = "http",
    url: str | None = None,
    timeout_seconds: float = 5.0,
    retry_attempts: int = 3,
    namespace: str = DEFAULT_NAMESPACE,
) -> RecorderClient:
    """A :class:`RecorderClient` for ``transport``. ``url`` is the recorder's base URL for ``http``
    (default ``$AXON_RECORDER_URL``); ``namespace`` is the ROS service namespace for ``ros1``/``ros2``."""
    builder = BACKENDS.get(transport)
    if builder is None:
        raise ValueError(f"unknown recorder transport {transport!r}; available: {sorted(BACKENDS)}")
    return builder(url=url, timeout_seconds=timeout_seconds, retry_attempts=retry_attempts, namespace=namespace)

"""Choose a recorder backend from configuration.

Only ``http`` (Axon's HTTP RPC) exists today; the ROS 1 and ROS 2 service backends of a later
issue register here under ``ros1`` / ``ros2`` and take the same ``timeout_seconds`` and
``retry_attempts`` (plus ``namespace``), so callers never change.
"""

from __future__ import annotations

import os
from typing import Callable

from .axon_http import AxonHttpRecorder
from .protocol import RecorderClient

RECORDER_URL_ENV = "AXON_RECORDER_URL"
DEFAULT_NAMESPACE = "axon"


def _http_backend(*, url: str | None, timeout_seconds: float, retry_attempts: int, namespace: str) -> RecorderClient:
    url = url or os.environ.get(RECORDER_URL_ENV)
    if not url:
        raise ValueError(f"the http recorder transport needs url= (or ${RECORDER_URL_ENV})")
    return AxonHttpRecorder(url, timeout_seconds=timeout_seconds, retry_attempts=retry_attempts)


# transport name -> builder; later issues add "ros1" and "ros2".
BACKENDS: dict[str, Callable[..., RecorderClient]] = {"http": _http_backend}
PLANNED_TRANSPORTS = ("ros1", "ros2")


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
        if transport in PLANNED_TRANSPORTS:
            raise ValueError(f"recorder transport {transport!r} is not available in this build; available: {sorted(BACKENDS)}")
        raise ValueError(f"unknown recorder transport {transport!r}; available: {sorted(BACKENDS)}")
    return builder(url=url, timeout_seconds=timeout_seconds, retry_attempts=retry_attempts, namespace=namespace)

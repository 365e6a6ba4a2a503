"""The simulator's ROS 2 mode: an rclpy node serving the recorder's four services.

    axon-sim --transport ros2 --namespace axon --data-dir DIR

serves ``/<namespace>/start_recording``, ``/stop_recording``, ``/get_status`` and
``/update_config`` (the rosidl types of our ``.srv`` files, :mod:`axon_dagster.recorder.ros2_build`)
backed by the same :class:`~.recorder.SimulatedRecorder` and the same service semantics
(:class:`~.ros1_node.RecorderServices`) as the ROS 1 and HTTP modes. DDS settings (domain,
discovery range, Fast DDS profile) come from the environment, as for any ROS 2 node.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, Callable

from axon_dagster.recorder.srv import SERVICES, service_name, validate_namespace
from axon_dagster.settings.ros import RosSettings

from .recorder import SimulatedRecorder
from .ros_services import RecorderServices, serve_until_stopped, service_handlers
from .serving import EXIT_USAGE

logger = logging.getLogger(__name__)

NODE_NAME = "axon_sim"


class Ros2ServiceNode:
    """The four services on an rclpy node of their own, spun in a background thread."""

    def __init__(self, services: RecorderServices, namespace: str = "axon"):
        from axon_dagster.recorder.ros2_env import SpinningNode, load_srv_module

        srv = load_srv_module()
        self.namespace = validate_namespace(namespace)
        self.services = services
        handlers = service_handlers(services)
        self._spinner = SpinningNode(f"{NODE_NAME}_{os.getpid()}")
        try:
            for operation, name in SERVICES.items():
                self._spinner.node.create_service(
                    getattr(srv, name), service_name(self.namespace, operation), _adapt(operation, handlers[operation])
                )
        except BaseException:
            self._spinner.close()
            raise
        logger.info("serving %s under /%s/ over ROS 2", ", ".join(SERVICES), self.namespace)

    @property
    def names(self) -> list[str]:
        return [service_name(self.namespace, op) for op in SERVICES]

    def shutdown(self) -> None:
        self._spinner.close()


def _adapt(operation: str, handler: Callable[[Any], dict[str, Any]]) -> Callable[[Any, Any], Any]:
    def handle(request: Any, response: Any) -> Any:
        fields = handler(request)
        logger.info("%s -> %s", operation, {k: v for k, v in fields.items() if k != "active_topics"})
        for key, value in fields.items():
            setattr(response, key, value)
        return response

    return handle


def run_ros2(recorder: SimulatedRecorder, namespace: str) -> int:
    """Serve until SIGTERM/SIGINT (exit 0) or a simulated crash (exit 1: the process dies on the
    spot, without leaving the DDS graph cleanly, as a crashed recorder does)."""
    try:
        node = Ros2ServiceNode(RecorderServices(recorder), namespace)
    except ImportError as exc:
        print(f"axon-sim: cannot serve ROS 2: {exc}", file=sys.stderr)
        return EXIT_USAGE
    # the line a supervisor waits for: every service exists on the node by now
    return serve_until_stopped(
        recorder,
        f"axon-sim serving ROS 2 services under /{node.namespace}/ (ROS_DOMAIN_ID {RosSettings.load().domain_id or '0'})",
        on_stop=node.shutdown,
    )

"""The simulator's ROS 1 mode: a rospy node serving the recorder's four services.

    ROS_MASTER_URI=http://127.0.0.1:11311 axon-sim --transport ros1 --namespace axon --data-dir DIR

serves ``/<namespace>/start_recording``, ``/stop_recording``, ``/get_status`` and
``/update_config`` (types generated from our ``.srv`` files) backed by the same
:class:`~.recorder.SimulatedRecorder` as the HTTP mode, so both modes share one state machine, one
set of faults and one dataset writer.

:class:`~.ros_services.RecorderServices` is the services' meaning, independent of the transport (request fields
in, response fields out); :class:`Ros1ServiceNode` only adapts it to rospy.
"""

from __future__ import annotations

import logging
import sys
import time
from types import ModuleType
from typing import Any, Callable

from axon_dagster.recorder.srv import SERVICES, service_name, validate_namespace
from axon_dagster.settings.ros import RosSettings

from .recorder import SimulatedRecorder
from .ros_services import RecorderServices, serve_until_stopped, service_handlers
from .serving import EXIT_USAGE

logger = logging.getLogger(__name__)

NODE_NAME = "axon_sim"

class Ros1ServiceNode:
    """The four services advertised with rospy (the process's node must be initialised)."""

    def __init__(self, services: RecorderServices, namespace: str = "axon", *, srv_module: ModuleType | None = None):
        from axon_dagster.recorder.ros1_env import import_ros1

        rospy = import_ros1("rospy")
        if srv_module is None:
            from axon_dagster.recorder.genpy_build import load_srv_module

            srv_module = load_srv_module()
        self.namespace = validate_namespace(namespace)
        self.services = services
        self._advertised = []
        handlers = service_handlers(services)
        for operation, srv in SERVICES.items():
            srv_type = getattr(srv_module, srv)
            self._advertised.append(
                rospy.Service(service_name(self.namespace, operation), srv_type, _adapt(operation, handlers[operation], srv_type))
            )
        logger.info("serving %s under /%s/", ", ".join(SERVICES), self.namespace)

    @property
    def names(self) -> list[str]:
        return [service_name(self.namespace, op) for op in SERVICES]

    def shutdown(self) -> None:
        for service in self._advertised:
            service.shutdown("axon-sim stopping")
        self._advertised.clear()


def _adapt(operation: str, handler: Callable[[Any], dict[str, Any]], srv_type: Any) -> Callable[[Any], Any]:
    def handle(request: Any) -> Any:
        fields = handler(request)
        logger.info("%s -> %s", operation, {k: v for k, v in fields.items() if k != "active_topics"})
        return srv_type._response_class(**fields)

    return handle


def run_ros1(recorder: SimulatedRecorder, namespace: str, *, startup_timeout: float = 10.0) -> int:
    """Serve until SIGTERM/SIGINT (exit 0) or a simulated crash (exit 1: the process dies on the
    spot, leaving its registration at the master behind, as a crashed recorder does)."""
    from axon_dagster.recorder.protocol import RecorderError
    from axon_dagster.recorder.ros1 import ensure_node

    try:
        rospy = ensure_node(startup_timeout, node_name=NODE_NAME)
        node = Ros1ServiceNode(RecorderServices(recorder), namespace)
    except (ImportError, RecorderError) as exc:
        print(f"axon-sim: cannot serve ROS 1: {exc}", file=sys.stderr)
        return EXIT_USAGE

    def stop_node() -> None:
        node.shutdown()
        rospy.signal_shutdown("axon-sim stopping")
        # rospy's shutdown hooks run in its own threads; give them a moment, never forever
        time.sleep(0.05)

    # the line a supervisor waits for: every service is advertised by now
    return serve_until_stopped(
        recorder,
        f"axon-sim serving ROS 1 services under /{node.namespace}/ (master {RosSettings.load().master_uri or ''})",
        alive=lambda: not rospy.is_shutdown(),
        on_stop=stop_node,
    )

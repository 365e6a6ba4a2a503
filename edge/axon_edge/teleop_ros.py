"""Teleop over ROS (1 or 2): the handheld device publishes start/stop presses on a topic.

    /teleop/recording_commands   std_msgs/String   {"task_id": "...", "command": "start" | "stop"}
    /teleop/recording_feedback   std_msgs/String   {"task_id", "command", "ok", "error", "status"}

Each command calls the same :meth:`EdgeAgent.teleop` as ``POST /teleop`` does, so a duplicate press
is harmless and a stop for a task that is not recording is refused with the same clear error. Every
command gets one feedback message (``ok`` false with ``error`` when refused or malformed), so the
device can show what happened; refusals are logged too.

The ROS library is imported only when this listener is started: ``axon-edge run --teleop ros1``
shares the process's one rospy node with the ros1 recorder client (``ROS_MASTER_URI`` from the
env); ``--teleop ros2`` runs an rclpy node of its own (a subscription and a publisher, spun in a
background thread) in the process's rclpy context, shared with the ros2 recorder client (DDS
settings such as ``ROS_DOMAIN_ID`` from the env).
"""

from __future__ import annotations

import json
import logging
from typing import Any, Protocol

from .errors import EdgeError



class TeleopTarget(Protocol):
    """What a teleop listener drives (``axon_edge.agent.EdgeAgent``)."""

    def teleop(self, task_id: str, command: str) -> Any: ...
    def wake(self) -> None: ...

log = logging.getLogger(__name__)

COMMAND_TOPIC = "/teleop/recording_commands"
FEEDBACK_TOPIC = "/teleop/recording_feedback"
TELEOP_TRANSPORTS = ("http", "ros1", "ros2")  # http is always served; ros1/ros2 add this listener
QUEUE_DEPTH = 20


def ensure_ros1_node(timeout_seconds: float) -> Any:
    """Register the process's rospy node (shared with the ros1 recorder client), keeping the
    agent's logging: ``rospy.init_node`` loads ROS's logging config, which disables every logger
    that already exists and replaces the root handlers, so the agent would go silent on stderr."""
    from axon_dagster.recorder.ros1 import ensure_node

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        return ensure_node(timeout_seconds)
    finally:
        for logger in list(logging.Logger.manager.loggerDict.values()):
            if isinstance(logger, logging.Logger) and not logger.name.startswith(("rospy", "rosout", "rosgraph")):
                logger.disabled = False
        for handler in handlers:
            if handler not in root.handlers:
                root.addHandler(handler)
        root.setLevel(level)


class TeleopUnavailable(EdgeError):
    """The ROS teleop listener cannot start (no ROS 1 or ROS 2 here, no master)."""


class RosTeleopListener:
    """``generation``: ``ros1`` (rospy) or ``ros2`` (rclpy)."""

    def __init__(
        self,
        agent: TeleopTarget,
        *,
        generation: str = "ros1",
        command_topic: str = COMMAND_TOPIC,
        feedback_topic: str = FEEDBACK_TOPIC,
        timeout_seconds: float = 10.0,
    ):
        if generation not in ("ros1", "ros2"):
            raise ValueError(f"unknown ROS generation {generation!r} for teleop; expected ros1 or ros2")
        self.agent = agent
        self.generation = generation
        self.command_topic = command_topic
        self.feedback_topic = feedback_topic
        self.timeout_seconds = timeout_seconds
        self._subscriber: Any = None
        self._publisher: Any = None
        self._String: Any = None
        self._spinner: Any = None

    def start(self) -> None:
        if self.generation == "ros2":
            self._start_ros2()
        else:
            self._start_ros1()
        log.info(
            "listening for teleop commands on %s topic %s (feedback on %s)",
            self.generation.upper().replace("ROS", "ROS "), self.command_topic, self.feedback_topic,
        )

    def _start_ros2(self) -> None:
        import os

        from axon_dagster.recorder.ros2_env import Ros2Unavailable, SpinningNode

        try:
            self._spinner = SpinningNode(f"axon_edge_teleop_{os.getpid()}", shutdown_timeout=self.timeout_seconds)
            from std_msgs.msg import String
        except (Ros2Unavailable, ImportError) as exc:
            if self._spinner is not None:
                self._spinner.close()
                self._spinner = None
            raise TeleopUnavailable(f"cannot listen for teleop on ROS 2 topic {self.command_topic}: {exc}") from None
        self._String = String
        node = self._spinner.node
        self._publisher = node.create_publisher(String, self.feedback_topic, QUEUE_DEPTH)
        self._subscriber = node.create_subscription(String, self.command_topic, self._on_message, QUEUE_DEPTH)

    def _start_ros1(self) -> None:
        from axon_dagster.recorder.protocol import RecorderError
        from axon_dagster.recorder.ros1_env import Ros1Unavailable, import_ros1

        try:
            rospy = ensure_ros1_node(self.timeout_seconds)
            self._String = import_ros1("std_msgs.msg").String
        except (Ros1Unavailable, RecorderError) as exc:
            raise TeleopUnavailable(f"cannot listen for teleop on ROS topic {self.command_topic}: {exc}") from None
        self._publisher = rospy.Publisher(self.feedback_topic, self._String, queue_size=QUEUE_DEPTH)
        self._subscriber = rospy.Subscriber(self.command_topic, self._String, self._on_message, queue_size=QUEUE_DEPTH)

    def stop(self) -> None:
        if self._spinner is not None:  # ros2: the node takes its subscription and publisher with it
            spinner, self._spinner = self._spinner, None
            self._subscriber = self._publisher = None
            spinner.close()
            return
        for handle in (self._subscriber, self._publisher):
            if handle is not None:
                try:
                    handle.unregister()
                except Exception as exc:  # shutting down: nothing left to do about it
                    log.debug("unregister failed: %s", exc)
        self._subscriber = self._publisher = None

    # rospy calls this on the subscriber's own thread, rclpy on the node's executor thread; one message at a time.
    def _on_message(self, message: Any) -> None:
        feedback = self.handle(getattr(message, "data", message))
        self._publish(feedback)

    def handle(self, raw: Any) -> dict[str, Any]:
        """One command (the message's JSON text) -> the feedback to publish."""
        task_id = command = None
        try:
            try:
                body = json.loads(raw)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"teleop command is not JSON: {exc}") from None
            if not isinstance(body, dict):
                raise ValueError("teleop command must be a JSON object {task_id, command}")
            task_id, command = body.get("task_id"), body.get("command")
            if not isinstance(task_id, str) or not isinstance(command, str):
                raise ValueError("teleop command needs string fields task_id and command (start|stop)")
            task = self.agent.teleop(task_id, command)
        except (EdgeError, ValueError) as exc:
            log.warning("teleop %s for task %s refused: %s", command, task_id, exc)
            return {"task_id": task_id, "command": command, "ok": False, "error": str(exc), "status": None}
        except Exception as exc:  # never let a press kill the subscriber thread
            log.exception("teleop %s for task %s failed", command, task_id)
            return {"task_id": task_id, "command": command, "ok": False, "error": f"internal error: {exc}", "status": None}
        self.agent.wake()
        log.info("teleop %s for task %s: now %s", command, task_id, task.status.value)
        return {"task_id": task_id, "command": command, "ok": True, "error": None, "status": task.status.value}

    def _publish(self, feedback: dict[str, Any]) -> None:
        if self._publisher is None:
            return
        try:
            self._publisher.publish(self._String(data=json.dumps(feedback)))
        except Exception as exc:
            log.warning("cannot publish teleop feedback %s: %s", feedback, exc)

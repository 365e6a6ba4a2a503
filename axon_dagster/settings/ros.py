"""Settings of the ROS side shared by several processes: the recorder backends (the edge agent runs
them on the robot), the ROS interface builds and the simulator. Stdlib only.

Variables: ``AXON_RECORDER_URL`` (the http backend's URL when none is passed),
``AXON_ROS1_MSGS_DIR`` / ``AXON_ROS2_MSGS_DIR`` (where the generated interface packages go),
``AXON_ROS1_PYTHONPATH`` (extra ``:``-separated places for rospy), ``AXON_ROS_DOMAIN_LOCK_DIR``
(where runs reserve their ``ROS_DOMAIN_ID``), and ROS's own ``ROS_DOMAIN_ID``, ``ROS_MASTER_URI``,
``ROS_DISTRO``. The simulator's own settings (``axon-sim``): :class:`SimSettings`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

from .environ import Env

RECORDER_URL_ENV = "AXON_RECORDER_URL"
ROS1_MSGS_DIR_ENV = "AXON_ROS1_MSGS_DIR"
ROS2_MSGS_DIR_ENV = "AXON_ROS2_MSGS_DIR"
ROS1_PYTHONPATH_ENV = "AXON_ROS1_PYTHONPATH"
DOMAIN_LOCK_DIR_ENV = "AXON_ROS_DOMAIN_LOCK_DIR"


@dataclass(frozen=True)
class RosSettings:
    recorder_url: str | None = None
    ros1_msgs_dir: str | None = None
    ros2_msgs_dir: str | None = None
    ros1_pythonpath: tuple[str, ...] = ()
    domain_lock_dir: str | None = None
    domain_id: str | None = None
    master_uri: str | None = None
    distro: str | None = None

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> RosSettings:
        env = Env(environ)
        return cls(
            recorder_url=env.text(RECORDER_URL_ENV),
            ros1_msgs_dir=env.text(ROS1_MSGS_DIR_ENV),
            ros2_msgs_dir=env.text(ROS2_MSGS_DIR_ENV),
            ros1_pythonpath=env.items(ROS1_PYTHONPATH_ENV, os.pathsep),
            domain_lock_dir=env.text(DOMAIN_LOCK_DIR_ENV),
            domain_id=env.text("ROS_DOMAIN_ID"),
            master_uri=env.text("ROS_MASTER_URI"),
            distro=env.text("ROS_DISTRO"),
        )


@dataclass(frozen=True)
class SimSettings:
    """``axon-sim``: the robot id it writes into recordings (``AXON_ROBOT_ID``) and the device
    metadata of its sidecars (``AXON_DEVICE_MODEL``, ``AXON_DEVICE_SERIAL``), as a robot would have."""

    robot_id: str = "sim-robot"
    device_model: str | None = None
    device_serial: str | None = None

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> SimSettings:
        env = Env(environ)
        return cls(robot_id=env.raw("AXON_ROBOT_ID") or cls.robot_id, device_model=env.raw("AXON_DEVICE_MODEL"),
                   device_serial=env.raw("AXON_DEVICE_SERIAL"))

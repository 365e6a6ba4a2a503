"""Session-wide settings for every suite.

ROS 2 network discipline: the whole test run (this process and every child it starts) uses a
ROS_DOMAIN_ID of its own, held for the session (parallel runs on one machine never see each
other's nodes), with DDS discovery kept on 127.0.0.1 (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and
the Fast DDS loopback profile). Set before any test can initialise rclpy.
"""

from __future__ import annotations

import os

from axon_dagster.recorder.ros2_env import reserve_domain_id

_reservation = None


def pytest_configure(config):
    global _reservation
    _reservation = reserve_domain_id()
    os.environ.update(_reservation.env())


def pytest_unconfigure(config):
    if _reservation is not None:
        _reservation.release()


def pytest_report_header(config):
    if _reservation is not None:
        return f"ROS 2: ROS_DOMAIN_ID={_reservation.domain_id}, discovery on loopback only"

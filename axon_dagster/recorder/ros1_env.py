"""Make ROS 1's Python packages (rospy, genpy, rosgraph, ...) importable from our virtualenv.

On a ROS 1 robot ``source /opt/ros/noetic/setup.bash`` puts them on ``PYTHONPATH``; on Debian
build machines they come from apt (``python3-rospy`` & co., see ``scripts/ros1-deps.sh``) into
the system ``dist-packages``, which a virtualenv does not see. We append that directory to
``sys.path`` — *after* the virtualenv's site-packages, so Debian's older copies of shared
dependencies (PyYAML, ...) never shadow ours — and only when rospy is actually needed, so nothing
else in the process changes for users of the HTTP transport.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from types import ModuleType

# Extra places to look, ':'-separated, before the Debian default (e.g. a ROS install's
# /opt/ros/noetic/lib/python3/dist-packages when the environment is not sourced).
ROS1_PYTHONPATH_ENV = "AXON_ROS1_PYTHONPATH"
DEBIAN_DIST_PACKAGES = "/usr/lib/python3/dist-packages"
INSTALL_HINT = (
    "install ROS 1's Python packages (Debian: `bash scripts/ros1-deps.sh`, which installs python3-rospy "
    "python3-rosmaster python3-genpy python3-std-msgs; a ROS robot: source /opt/ros/<distro>/setup.bash) "
    f"or point ${ROS1_PYTHONPATH_ENV} at their dist-packages"
)

_lock = threading.Lock()


class Ros1Unavailable(ImportError):
    """rospy (or genpy) cannot be imported on this machine."""


def candidate_paths() -> list[str]:
    extra = [p for p in os.environ.get(ROS1_PYTHONPATH_ENV, "").split(os.pathsep) if p]
    return [*extra, DEBIAN_DIST_PACKAGES]


def import_ros1(name: str = "rospy") -> ModuleType:
    """Import ``name`` (``rospy``, ``genpy``, ``rosgraph``, ...), appending the ROS 1 package
    directories to ``sys.path`` first if it is not importable as things stand."""
    with _lock:
        try:
            return importlib.import_module(name)
        except ImportError:
            pass
        added = False
        for path in candidate_paths():
            if os.path.isdir(path) and path not in sys.path:
                sys.path.append(path)  # appended: the virtualenv keeps precedence
                added = True
        if added:
            importlib.invalidate_caches()
        try:
            return importlib.import_module(name)
        except ImportError as exc:
            raise Ros1Unavailable(f"{name} is not installed ({exc}); {INSTALL_HINT}") from exc


def ros1_available() -> bool:
    try:
        import_ros1("rospy")
        import_ros1("genpy")
    except Ros1Unavailable:
        return False
    return True

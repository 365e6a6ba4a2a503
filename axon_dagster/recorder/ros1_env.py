"""Make ROS 1's Python packages (rospy, genpy, rosgraph, ...) importable from our virtualenv.

On a ROS 1 robot ``source /opt/ros/noetic/setup.bash`` puts them on ``PYTHONPATH``; on Debian
build machines they come from apt (``python3-rospy`` & co., see ``scripts/ros1-deps.sh``) into
the system ``dist-packages``, which a virtualenv does not see. We append that directory to
``sys.path`` — *after* the virtualenv's site-packages, so Debian's older copies of shared
dependencies (PyYAML, ...) never shadow ours — and only when rospy is actually needed, so nothing
else in the process changes for users of the HTTP transport.

Two message packages exist in both generations under the same name: ``std_msgs`` and
``rosgraph_msgs`` (ROS 2's come with the rclpy wheels into the virtualenv, which wins on
``sys.path``). ROS 1 code gets ROS 1's: they are imported from the ROS 1 directories while rospy
& co. are imported, then kept aside (``import_ros1("std_msgs.msg")`` returns them) and the
names are handed back to whatever held them, so ROS 2 code in the same process still imports its
own. (Classes keep their module objects, so rospy goes on using ROS 1's after the swap.)
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import sys
import threading
from types import ModuleType

from axon_dagster.settings.ros import ROS1_PYTHONPATH_ENV, RosSettings

# Extra places to look, ':'-separated, before the Debian default (e.g. a ROS install's
# /opt/ros/noetic/lib/python3/dist-packages when the environment is not sourced).
DEBIAN_DIST_PACKAGES = "/usr/lib/python3/dist-packages"
INSTALL_HINT = (
    "install ROS 1's Python packages (Debian: `bash scripts/ros1-deps.sh`, which installs python3-rospy "
    "python3-rosmaster python3-genpy python3-std-msgs; a ROS robot: source /opt/ros/<distro>/setup.bash) "
    f"or point ${ROS1_PYTHONPATH_ENV} at their dist-packages"
)

# top-level packages that ROS 2 installs under the same names
SHARED_NAMES = ("std_msgs", "rosgraph_msgs")

_lock = threading.RLock()
_ros1_modules: dict[str, ModuleType] = {}  # ROS 1's copies of SHARED_NAMES (and submodules), kept aside


class Ros1Unavailable(ImportError):
    """rospy (or genpy) cannot be imported on this machine."""


def candidate_paths() -> list[str]:
    extra = list(RosSettings.load().ros1_pythonpath)
    return [*extra, DEBIAN_DIST_PACKAGES]


def import_ros1(name: str = "rospy") -> ModuleType:
    """Import ``name`` (``rospy``, ``genpy``, ``rosgraph``, ``std_msgs.msg``, ...), appending the
    ROS 1 package directories to ``sys.path`` first if it is not importable as things stand."""
    with _lock:
        kept = _ros1_modules.get(name)
        if kept is not None:
            return kept
        added = False
        for path in candidate_paths():
            if os.path.isdir(path) and path not in sys.path:
                sys.path.append(path)  # appended: the virtualenv keeps precedence
                added = True
        if added:
            importlib.invalidate_caches()
        try:
            with _ros1_message_packages():
                return importlib.import_module(name)
        except ImportError as exc:
            raise Ros1Unavailable(f"{name} is not installed ({exc}); {INSTALL_HINT}") from exc


def _is_shared(module_name: str) -> bool:
    return module_name.split(".", 1)[0] in SHARED_NAMES


class _ros1_message_packages:
    """While active, ``std_msgs`` & co. in ``sys.modules`` are ROS 1's (loaded from the ROS 1
    directories the first time); on exit, ROS 1's modules are kept aside and the names restored."""

    def __enter__(self) -> None:
        self._held = {n: m for n, m in sys.modules.items() if _is_shared(n)}
        for n in self._held:
            del sys.modules[n]
        sys.modules.update(_ros1_modules)
        ros1_dirs = [p for p in candidate_paths() if os.path.isdir(p)]
        for top in SHARED_NAMES:
            if top in sys.modules:
                continue
            spec = importlib.machinery.PathFinder.find_spec(top, ros1_dirs)
            if spec is None or spec.loader is None:
                continue  # not installed for ROS 1: an import of it fails as it would anyway
            module = importlib.util.module_from_spec(spec)
            sys.modules[top] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[top]
                raise

    def __exit__(self, *exc_info: object) -> None:
        for n in [n for n in sys.modules if _is_shared(n)]:
            _ros1_modules[n] = sys.modules.pop(n)
        sys.modules.update(self._held)


def ros1_available() -> bool:
    try:
        import_ros1("rospy")
        import_ros1("genpy")
    except Ros1Unavailable:
        return False
    return True

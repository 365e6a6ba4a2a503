"""ROS 2 in our processes: rclpy and our interface package, the context, and DDS on loopback.

rclpy comes from the ROS 2 wheels on PyPI (the ``ros2`` extra; a robot with a sourced ROS 2
install uses that one instead). Our service types come from the interface package
:mod:`axon_dagster.recorder.ros2_build` builds: :func:`load_srv_module` imports it as a sourced
install would, else builds it (when stale) and loads it from the build directory. Its libraries
are loaded before the import, because rosidl's type-support dispatch ``dlopen``\\ s them by bare
name, which only ``LD_LIBRARY_PATH`` (read once, at process start) or an already loaded library
satisfies.

Network discipline for tests, the demo and ``make dev`` (:func:`loopback_env`): DDS discovery
never leaves 127.0.0.1 — ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` plus a Fast DDS profile
(``fastdds_loopback.xml``) with one UDPv4 transport whitelisted to loopback, unicast discovery
and no multicast locator; and a ``ROS_DOMAIN_ID`` of the run's own (:func:`reserve_domain_id`),
so parallel runs on one machine never see each other's nodes. Production leaves DDS to the
deployment (the edge chart's ``ros.*`` values).

The rclpy context is shared by everything in a process (recorder client, teleop listener, the
simulator's node): :func:`acquire_context` initialises it at most once and
:func:`release_context` shuts it down after its last user — only if we initialised it.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import importlib
import os
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from axon_dagster.settings.ros import RosSettings

from .srv import PACKAGE

LOOPBACK_PROFILE = Path(__file__).resolve().parent / "fastdds_loopback.xml"
DOMAIN_ID_ENV = "ROS_DOMAIN_ID"
# 0 is everybody's default; 1..101 are the ids whose ports stay below Linux's ephemeral range
DOMAIN_IDS = range(1, 102)
INSTALL_HINT = (
    "install the ROS 2 wheels into this virtualenv (`make install`, or `pip install -e '.[ros2]'`), or source a "
    "ROS 2 install (source /opt/ros/<distro>/setup.bash)"
)

_lock = threading.Lock()


class Ros2Unavailable(ImportError):
    """rclpy, or our built interface package, cannot be imported here."""


# -- imports ------------------------------------------------------------------------------------


def import_rclpy() -> ModuleType:
    try:
        import rclpy
        import rclpy.executors  # noqa: F401  (the executor classes live in the submodule)
    except ImportError as exc:
        raise Ros2Unavailable(f"rclpy is not installed ({exc}); {INSTALL_HINT}") from exc
    return rclpy


def ros2_available() -> bool:
    try:
        import_rclpy()
    except Ros2Unavailable:
        return False
    return True


def _is_rosidl(module: ModuleType) -> bool:
    return hasattr(getattr(module, "GetStatus", None), "Request")


def load_srv_module(build_dir: str | os.PathLike | None = None) -> ModuleType:
    """``axon_recorder_msgs.srv`` as rosidl builds it (``.GetStatus.Request`` ...): from a sourced
    ROS 2 install if there is one, else from our build (built first when missing or stale)."""
    name = f"{PACKAGE}.srv"
    with _lock:
        module = sys.modules.get(name)
        if module is not None and _is_rosidl(module):
            return module
        import_rclpy()
        if build_dir is None:
            try:
                module = importlib.import_module(name)
                if _is_rosidl(module):
                    return module
            except ImportError:
                pass
        from .ros2_build import Ros2BuildError, build, python_site_dir

        try:
            prefix = build(build_dir)
        except Ros2BuildError as exc:
            raise Ros2Unavailable(f"the ROS 2 interface package {PACKAGE} is not built and cannot be built here: {exc}") from exc
        for library in sorted((prefix / "lib").glob(f"lib{PACKAGE}__*.so")):
            ctypes.CDLL(str(library), mode=ctypes.RTLD_GLOBAL)
        site = str(python_site_dir(prefix))
        if site not in sys.path:
            sys.path.append(site)
        for stale in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
            del sys.modules[stale]
        importlib.invalidate_caches()
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise Ros2Unavailable(f"cannot import {name} from {site}: {exc}") from exc
        if not _is_rosidl(module):
            raise Ros2Unavailable(f"{name} at {getattr(module, '__file__', '?')} is not a rosidl-generated package")
        return module


# -- the rclpy context ---------------------------------------------------------------------------

_context_lock = threading.Lock()
_context_users = 0
_context_owned = False


def acquire_context(rclpy: ModuleType) -> None:
    """Initialise rclpy unless it is (first user only); pair with :func:`release_context`."""
    global _context_users, _context_owned
    with _context_lock:
        if _context_users == 0:
            _context_owned = not rclpy.ok()
            if _context_owned:
                rclpy.init()
        _context_users += 1


def release_context(rclpy: ModuleType) -> None:
    """Shut rclpy down after its last user, if :func:`acquire_context` initialised it."""
    global _context_users, _context_owned
    with _context_lock:
        if _context_users == 0:
            return
        _context_users -= 1
        if _context_users == 0 and _context_owned and rclpy.ok():
            rclpy.shutdown()
            _context_owned = False


class SpinningNode:
    """One rclpy node spun by its own executor in a daemon thread; :meth:`close` undoes it all.
    (Call ``close`` from another thread than the executor's.)"""

    def __init__(self, name: str, *, shutdown_timeout: float = 5.0):
        self.rclpy = import_rclpy()
        self.shutdown_timeout = shutdown_timeout
        self._closed = False
        self.node: Any = None
        self._executor: Any = None
        self._thread: threading.Thread | None = None
        acquire_context(self.rclpy)
        try:
            self.node = self.rclpy.create_node(name)
            self._executor = self.rclpy.executors.SingleThreadedExecutor()
            self._executor.add_node(self.node)
            self._thread = threading.Thread(target=self._spin, name=f"rclpy-executor {name}", daemon=True)
            self._thread.start()
        except BaseException:
            self.close()
            raise

    def _spin(self) -> None:
        try:
            self._executor.spin()
        except Exception:  # the context was shut down under us: calls time out and say so
            if not self._closed:
                import logging

                logging.getLogger(__name__).exception("rclpy executor of %s stopped", self.node.get_name())

    @property
    def spinning(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self._executor is not None:
                self._executor.shutdown(timeout_sec=self.shutdown_timeout)
            if self._thread is not None:
                self._thread.join(self.shutdown_timeout)
            if self.node is not None:
                self.node.destroy_node()  # its clients, services, publishers and subscriptions too
        finally:
            release_context(self.rclpy)


# -- network discipline --------------------------------------------------------------------------


def loopback_env(domain_id: int) -> dict[str, str]:
    """The environment that keeps a ROS 2 graph on 127.0.0.1 in domain ``domain_id``."""
    if isinstance(domain_id, bool) or not isinstance(domain_id, int) or not 0 <= domain_id <= 232:
        raise ValueError(f"ROS_DOMAIN_ID must be an integer in 0..232, got {domain_id!r}")
    return {
        DOMAIN_ID_ENV: str(domain_id),
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        "ROS_STATIC_PEERS": "",
        "FASTDDS_DEFAULT_PROFILES_FILE": str(LOOPBACK_PROFILE),
        "RMW_IMPLEMENTATION": "rmw_fastrtps_cpp",
    }


@dataclass
class DomainReservation:
    """A ROS_DOMAIN_ID held for this process by an exclusive lock on a file; :meth:`release` it
    (or let the process end) to free it."""

    domain_id: int
    _file: Any

    def release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def env(self) -> dict[str, str]:
        return loopback_env(self.domain_id)


def reserve_domain_id(lock_dir: str | os.PathLike | None = None) -> DomainReservation:
    """A ROS_DOMAIN_ID no other run on this machine holds (tests, demos, benchmarks each take one).
    Starts at an offset from the pid, so runs rarely even try the same id."""
    directory = Path(lock_dir or RosSettings.load().domain_lock_dir or Path(tempfile.gettempdir()) / "axon-ros-domains")
    if not directory.is_dir():
        directory.mkdir(parents=True, exist_ok=True)
        try:
            directory.chmod(0o1777)  # shared by every user's runs on the machine, like /tmp
        except OSError:
            pass
    ids = list(DOMAIN_IDS)
    start = os.getpid() % len(ids)
    for domain_id in ids[start:] + ids[:start]:
        path = directory / f"{domain_id}.lock"
        try:
            handle = os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666), "a")
        except PermissionError:
            continue  # another user's lock file we may not open: that id is theirs
        try:
            os.fchmod(handle.fileno(), 0o666)  # the umask narrowed it: let other users' runs lock it too
        except OSError:
            pass
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            handle.close()
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                continue
            raise
        return DomainReservation(domain_id, handle)
    raise RuntimeError(f"every ROS_DOMAIN_ID in {DOMAIN_IDS.start}..{DOMAIN_IDS.stop - 1} is held by another run (locks in {directory})")

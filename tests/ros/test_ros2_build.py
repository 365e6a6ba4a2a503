"""The ROS 2 interface package is built by our own step (rosidl generators from the wheels, CMake,
Ninja), cached, and rebuilt when a .srv changes; a bad .srv fails the build and keeps the last one.

These builds run into temporary directories with a one-service package (the real four-service
package is the one every other ROS 2 test imports, built by `make install` or at first use).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from axon_dagster.recorder.ros2_build import STAMP, Ros2BuildError, build, python_site_dir
from axon_dagster.recorder.srv import PACKAGE

pytestmark = pytest.mark.slow


def generated_module(prefix: Path, name: str) -> Path:
    return python_site_dir(prefix) / PACKAGE / "srv" / f"_{name}.py"


def test_build_is_cached_redone_when_a_srv_changes_and_a_bad_srv_keeps_the_last_build(tmp_path):
    srv_dir = tmp_path / "srv"
    srv_dir.mkdir()
    (srv_dir / "Ping.srv").write_text("string text\n---\nbool ok\n")
    out = tmp_path / "build"

    prefix = build(out, srv_dir=srv_dir)
    assert prefix == out / PACKAGE and (prefix / STAMP).exists()
    module = generated_module(prefix, "ping")
    assert "text" in module.read_text() and "robot_id" not in module.read_text()
    for library in ("rosidl_typesupport_c", "rosidl_typesupport_fastrtps_c", "rosidl_generator_py"):
        assert (prefix / "lib" / f"lib{PACKAGE}__{library}.so").exists(), library
    # relocatable: the libraries find each other through $ORIGIN, not the build's path
    runpath = subprocess.run(["readelf", "-d", str(prefix / "lib" / f"lib{PACKAGE}__rosidl_typesupport_c.so")],
                             capture_output=True, text=True).stdout
    assert "$ORIGIN" in runpath and str(tmp_path) not in runpath

    first_mtime = module.stat().st_mtime_ns
    assert build(out, srv_dir=srv_dir) == prefix
    assert module.stat().st_mtime_ns == first_mtime, "an up-to-date build is left alone"

    (srv_dir / "Ping.srv").write_text("string text\nstring robot_id\n---\nbool ok\n")
    build(out, srv_dir=srv_dir)
    assert "robot_id" in module.read_text()

    (srv_dir / "Ping.srv").write_text("strng text\n---\nbool ok\n")
    with pytest.raises(Ros2BuildError, match=r"building axon_recorder_msgs from \['Ping.srv'\] failed"):
        build(out, srv_dir=srv_dir)
    assert "robot_id" in module.read_text(), "the previous build stays in place"
    assert sorted(p.name for p in out.iterdir()) == [".lock", PACKAGE], "no staging or retired directories left behind"


def test_the_explicit_build_step_prints_the_prefix_and_bad_input_fails_clearly(tmp_path):
    from axon_dagster.recorder.ros2_build import default_build_dir

    # the real package: built by `make install` (or the first ROS 2 test), so this is the cached path
    proc = subprocess.run([sys.executable, "-m", "axon_dagster.recorder.ros2_build"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()) == default_build_dir() / PACKAGE
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(Ros2BuildError, match="no .srv files"):
        build(tmp_path / "c", srv_dir=empty)
    assert not (tmp_path / "c").exists()

"""``axon-sim --transport ros1`` as a process, the factory's ROS transports, and ros1_env's path rule."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from axon_dagster.recorder.factory import recorder_from_config
from axon_dagster.recorder.ros1_env import import_ros1, ros1_available
from axon_dagster.demo.sim.cli import main as sim_main
from ros_support import free_port, wait_until


def test_sigterm_stops_the_ros1_simulator_cleanly_and_unregisters_its_services(start_ros1_sim):
    sim = start_ros1_sim()
    rosgraph = import_ros1("rosgraph")
    master = rosgraph.Master("/test_probe")
    name = f"/{sim.namespace}/get_status"
    assert master.lookupService(name).startswith("rosrpc://")
    sim.proc.send_signal(signal.SIGTERM)
    assert sim.proc.wait(timeout=10) == 0, sim.log()

    def unregistered() -> bool:
        try:
            master.lookupService(name)
        except rosgraph.MasterError:
            return True
        return False

    wait_until(unregistered, timeout=5)


def test_bad_namespace_is_a_usage_error_and_starts_nothing(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        sim_main(["--transport", "ros1", "--namespace", "1bad", "--data-dir", str(tmp_path / "d")])
    assert exited.value.code == 2
    assert "--namespace: invalid ROS namespace '1bad'" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_without_a_master_client_and_simulator_fail_fast_with_clear_errors(ros_env, tmp_path):
    # rospy.init_node waits for ever without a master: neither side may. A fresh process, since
    # this one's node is registered already.
    code = (
        "import json, time\n"
        "from axon_dagster.recorder import RecorderUnreachable\n"
        "from axon_dagster.recorder.ros1 import Ros1Recorder\n"
        "from axon_dagster.demo.sim.cli import main\n"
        "t = time.monotonic()\n"
        "try:\n"
        "    Ros1Recorder(timeout_seconds=0.5, retry_attempts=1, backoff_seconds=0.05).get_status()\n"
        "    client = 'no error'\n"
        "except RecorderUnreachable as exc:\n"
        "    client = str(exc)\n"
        "elapsed = time.monotonic() - t\n"
        f"status = main(['--transport', 'ros1', '--data-dir', {str(tmp_path / 'd')!r}])\n"
        "print(json.dumps({'client': client, 'elapsed': elapsed, 'sim_status': status}))\n"
    )
    env = {**os.environ, "ROS_MASTER_URI": f"http://127.0.0.1:{free_port()}"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.splitlines()[-1])
    assert "no ROS master answers at" in result["client"] and result["elapsed"] < 3.0
    assert result["sim_status"] == 2 and "cannot serve ROS 1: no ROS master answers at" in out.stderr


def test_the_factory_builds_the_ros1_backend(rosmaster):
    from axon_dagster.recorder.ros1 import Ros1Recorder

    client = recorder_from_config("ros1", namespace="robot_7/axon", timeout_seconds=2, retry_attempts=1)
    assert isinstance(client, Ros1Recorder)
    assert (client.namespace, client.timeout_seconds, client.retry_attempts) == ("robot_7/axon", 2.0, 1)
    with pytest.raises(ValueError, match="invalid ROS namespace"):
        recorder_from_config("ros1", namespace="robot 7")


def test_the_factory_builds_the_ros2_backend(ros2_ready):
    from axon_dagster.recorder.ros2 import Ros2Recorder

    with recorder_from_config("ros2", namespace="robot_7/axon", timeout_seconds=2, retry_attempts=1) as client:
        assert isinstance(client, Ros2Recorder)
        assert (client.namespace, client.timeout_seconds, client.retry_attempts) == ("robot_7/axon", 2.0, 1)
    with pytest.raises(ValueError, match="invalid ROS namespace"):
        recorder_from_config("ros2", namespace="robot 7")


def _probe(code: str, **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env={**clean, **env})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_ros1_packages_are_appended_after_the_virtualenv_and_only_when_needed():
    # a fresh process: this one imported rospy long ago
    result = _probe(
        "import json, sys\n"
        "import axon_dagster.recorder.factory\n"
        "before = '/usr/lib/python3/dist-packages' in sys.path\n"
        "from axon_dagster.recorder.ros1_env import Ros1Unavailable, import_ros1\n"
        "import_ros1('rospy')\n"
        "import yaml, rospy\n"
        "site = next(i for i, p in enumerate(sys.path) if p.endswith('site-packages'))\n"
        "try:\n"
        "    import_ros1('no_such_ros_package')\n"
        "    missing = 'imported'\n"
        "except Ros1Unavailable as exc:\n"
        "    missing = str(exc)\n"
        "print(json.dumps({'before': before, 'site': site, 'debian': sys.path.index('/usr/lib/python3/dist-packages'),\n"
        "                  'yaml': yaml.__file__, 'rospy': rospy.__file__, 'missing': missing}))\n"
    )
    assert result["before"] is False, "importing the recorder package must not touch sys.path"
    assert result["debian"] > result["site"], "Debian's packages come after the virtualenv's"
    assert result["yaml"].startswith(sys.prefix), "the virtualenv's PyYAML is not shadowed by Debian's"
    assert result["rospy"].startswith("/usr/lib/python3/dist-packages/")
    assert "no_such_ros_package is not installed" in result["missing"] and "scripts/ros1-deps.sh" in result["missing"]
    assert ros1_available()

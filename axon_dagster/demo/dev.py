"""``axon-dagster dev``: the simulated fleet plus ``dagster dev`` (UI and daemon), until Ctrl-C or
SIGTERM — either stops ``dagster dev`` and every process of the fleet. ``axon-dagster dev --help``."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from axon_dagster.settings import child_environ
from axon_dagster.settings.tools import CliSettings

from .processes import stop_on_signals

# How long ``dagster dev`` gets to stop its webserver, daemon and code servers after SIGINT.
DAGSTER_STOP_SECONDS = 30.0


def build_parser() -> argparse.ArgumentParser:
    dev = argparse.ArgumentParser(prog="axon-dagster dev", description="The simulated fleet plus `dagster dev`, until Ctrl-C.")
    dev.add_argument("--log-level", default=CliSettings.load().log_level)
    dev.add_argument("--robots", type=int, default=2)
    dev.add_argument("--workdir")
    dev.add_argument("--api-port", type=int, default=8000)
    dev.add_argument("--ui-port", type=int, default=3000)
    dev.add_argument("--transport", default="http", choices=["http", "ros1", "ros2"], help="as for demo")
    return dev


def run(args: argparse.Namespace) -> int:
    from axon_dagster.recorder.ros2_env import reserve_domain_id

    from .collectors import SimulatedCollector
    from .fleet import SimulatedFleet

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="axon-dev-")).resolve()
    with SimulatedFleet(workdir, robots=args.robots, control_plane_port=args.api_port, transport=args.transport) as fleet:
        stop = threading.Event()
        for robot in fleet.robot_processes:
            SimulatedCollector(robot.edge_url, f"collector-{robot.robot_id}", stop_event=stop).start()
        # whatever speaks ROS 2 here stays on loopback, in the fleet's domain (ros2) or one of its own
        domain = None if "ROS_DOMAIN_ID" in fleet.ros_env else reserve_domain_id()
        first = fleet.robot_processes[0] if fleet.robot_processes else None
        overrides = {
            **fleet.cloud_env(),
            "AXON_ADMIN_TOKEN": fleet.admin_token,
            "AXON_RECORDER_URL": first.recorder_url if first else "",
            "AXON_RECORDER_TRANSPORT": args.transport,
            "DAGSTER_HOME": str(workdir / "dagster-home"),
            **fleet.ros_env,
            **(domain.env() if domain is not None else {}),
        }
        if args.transport != "http":
            overrides["AXON_RECORDER_NAMESPACE"] = first.recorder_namespace if first else ""
        env = child_environ(overrides, drop=("AXON_RECORDER_NAMESPACE",))
        Path(env["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
        print(f"control plane {fleet.control_plane_url} (admin token in {workdir / 'admin-token'})")
        (workdir / "admin-token").write_text(fleet.admin_token)
        password = _dev_admin_account(fleet.database_url)
        (workdir / "admin-password").write_text(password)
        print(f"pages: sign in at {fleet.control_plane_url}/login as 'admin' (password in {workdir / 'admin-password'})")
        for robot in fleet.robot_processes:
            print(f"{robot.robot_id}: edge agent {robot.edge_url}, recorder {robot.recorder_url or '/' + robot.recorder_namespace + '/'}")
        print(f"ROS 2 on loopback only, ROS_DOMAIN_ID {env['ROS_DOMAIN_ID']}")
        print(f"Dagster UI on http://127.0.0.1:{args.ui_port} — launch order_processing from the launchpad; Ctrl-C stops all", flush=True)
        # dagster dev in a process group of its own: it (webserver, daemon, code servers) is stopped
        # by us, in order, whether we got Ctrl-C or SIGTERM, never left behind.
        dagster = subprocess.Popen(
            [sys.executable, "-m", "dagster", "dev", "-m", "axon_dagster.defs", "-p", str(args.ui_port), "-h", "127.0.0.1"],
            env=env,
            start_new_session=True,
        )
        try:
            return dagster.wait()
        except KeyboardInterrupt:
            return 0
        finally:
            _stop_group(dagster)
            stop.set()
            if domain is not None:
                domain.release()


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGINT to the process group (dagster dev's own clean stop), then SIGKILL whatever is left."""
    for sig, wait_s in ((signal.SIGINT, DAGSTER_STOP_SECONDS), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue
        try:
            os.killpg(proc.pid, 0)  # the leader is gone; are its children?
        except ProcessLookupError:
            return


def _dev_admin_account(database_url: str) -> str:
    """`make dev`: an `admin` account for the pages (its random password is returned)."""
    import secrets

    from axon_dagster.control_plane.accounts import create_user
    from axon_dagster.control_plane.persistence import UnitOfWorkFactory, make_engine

    password = secrets.token_urlsafe(12)
    engine = make_engine(database_url)
    try:
        create_user(UnitOfWorkFactory(engine)(), "admin", "admin", password)
    finally:
        engine.dispose()
    return password


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with stop_on_signals():  # SIGTERM/SIGHUP stop dagster dev and the fleet, as Ctrl-C does
        try:
            return run(args)
        except KeyboardInterrupt:
            return 0


if __name__ == "__main__":
    sys.exit(main())

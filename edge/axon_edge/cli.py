"""``axon-edge run``: the robot-side agent as a process.

Every option defaults from its environment variable (docs/contracts.md; read through
:mod:`axon_edge.settings`, the agent's only reader of its environment), so a k3s pod only sets env;
a required one that is missing from both, or a bad value, is a clear error (exit 2).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from .access import is_loopback, load_access
from .errors import EdgeError

# Re-exported for programs that host agents (the demo): ``from axon_edge.cli import start_agent_in_thread``.
from .agent import DEFAULT_LONG_POLL_SECONDS, MAX_LONG_POLL_SECONDS
from .runner import DEFAULT_POLL_INTERVAL, DEFAULT_PORT, run_agent, start_agent_in_thread
from .settings import REQUIRED_ENV, DataPathSettings, environment

__all__ = ["main", "run_agent", "start_agent_in_thread"]

log = logging.getLogger("axon_edge")



def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="axon-edge", description="The axon-dagster edge agent (one per robot).")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the agent until SIGTERM/SIGINT")
    env = environment().get
    run.add_argument("--robot-id", default=env("AXON_ROBOT_ID"), help="this robot's id [AXON_ROBOT_ID]")
    run.add_argument(
        "--control-plane-url", default=env("AXON_CONTROL_PLANE_URL"), help="control-plane API [AXON_CONTROL_PLANE_URL]"
    )
    run.add_argument("--token", default=env("AXON_ROBOT_TOKEN"), help="this robot's bearer token [AXON_ROBOT_TOKEN]")
    run.add_argument("--data-dir", default=env("AXON_EDGE_DATA_DIR"), help="task DB and configs [AXON_EDGE_DATA_DIR]")
    run.add_argument("--recorder-url", default=env("AXON_RECORDER_URL"), help="Axon recorder HTTP RPC [AXON_RECORDER_URL]")
    run.add_argument(
        "--recorder-transport",
        default=env("AXON_RECORDER_TRANSPORT", "http"),
        choices=["http", "ros1", "ros2"],
        help="how to reach the recorder: Axon HTTP RPC, ROS 1 or ROS 2 services [AXON_RECORDER_TRANSPORT, default http]",
    )
    run.add_argument(
        "--recorder-namespace",
        default=env("AXON_RECORDER_NAMESPACE", "axon"),
        help="ROS namespace of the recorder's services (ros1/ros2) [AXON_RECORDER_NAMESPACE, default axon]",
    )
    run.add_argument(
        "--recorder-output-dir",
        default=env("AXON_RECORDER_OUTPUT_DIR"),
        help="the recorder's output directory (Axon's dataset.path, e.g. /tmp/axon/recording): recordings are "
        "found there by name (<task_id>.mcap) when neither the finish callback nor /rpc/stats says where "
        "[AXON_RECORDER_OUTPUT_DIR]",
    )
    run.add_argument(
        "--teleop",
        default=env("AXON_TELEOP", "http"),
        choices=["http", "ros1", "ros2"],
        help="teleop device transport: http (POST /teleop, always served), ros1 or ros2 (also listen on "
        "/teleop/recording_commands; ROS_MASTER_URI / ROS_DOMAIN_ID & co. from the env) [AXON_TELEOP, default http]",
    )
    run.add_argument(
        "--supervision-interval",
        default=env("AXON_SUPERVISION_INTERVAL", "1.0"),
        help="seconds between recorder status polls while a task records [AXON_SUPERVISION_INTERVAL, default 1.0]",
    )
    run.add_argument(
        "--host", default=env("AXON_EDGE_HOST", "127.0.0.1"),
        help="address to serve the collector API on; beyond loopback a collector PIN is required [AXON_EDGE_HOST, default 127.0.0.1]",
    )
    run.add_argument(
        "--collector-pin-file", default=None,
        help="file holding the robot-local collector PIN/token (or AXON_COLLECTOR_PIN / AXON_COLLECTOR_PIN_FILE); at least 6 characters",
    )
    run.add_argument(
        "--debug-routes", action="store_true", default=env("AXON_EDGE_DEBUG_ROUTES", "") in ("1", "true", "yes"),
        help="also serve /debug/modules [AXON_EDGE_DEBUG_ROUTES]",
    )
    run.add_argument(
        "--port", default=env("AXON_EDGE_PORT", str(DEFAULT_PORT)), help=f"port [AXON_EDGE_PORT, default {DEFAULT_PORT}]"
    )
    run.add_argument(
        "--poll-interval", default=str(DEFAULT_POLL_INTERVAL), help=f"seconds between syncs (default {DEFAULT_POLL_INTERVAL})"
    )
    run.add_argument(
        "--long-poll",
        default=env("AXON_LONG_POLL_SECONDS", str(DEFAULT_LONG_POLL_SECONDS)),
        help="seconds the control plane may hold an idle pull (new work arrives at once; 0 = poll every "
        f"--poll-interval) [AXON_LONG_POLL_SECONDS, default {DEFAULT_LONG_POLL_SECONDS:g}]",
    )
    run.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    missing = [
        f"--{name.replace('_', '-')} (or {var})" for name, (var, required) in REQUIRED_ENV.items() if required and not getattr(args, name)
    ]
    if args.recorder_transport == "http" and not args.recorder_url:
        missing.append("--recorder-url (or AXON_RECORDER_URL), needed by --recorder-transport http")
    if missing:
        parser.error("missing required setting(s): " + ", ".join(missing))
    port = _number(parser, args.port, "--port", int)
    if not 0 <= port <= 65535:
        parser.error(f"--port must be between 0 and 65535, got {port}")
    poll_interval = _number(parser, args.poll_interval, "--poll-interval", float)
    if poll_interval <= 0:
        parser.error(f"--poll-interval must be positive, got {poll_interval}")
    long_poll = _number(parser, args.long_poll, "--long-poll", float)
    if not 0 <= long_poll <= MAX_LONG_POLL_SECONDS:
        parser.error(f"--long-poll must be between 0 and {MAX_LONG_POLL_SECONDS:g} seconds, got {long_poll}")
    supervision_interval = _number(parser, args.supervision_interval, "--supervision-interval", float)
    if supervision_interval <= 0:
        parser.error(f"--supervision-interval must be positive, got {supervision_interval}")
    if "ros2" in (args.recorder_transport, args.teleop):
        from axon_dagster.recorder.ros2_env import Ros2Unavailable, import_rclpy, load_srv_module

        try:
            # the recorder client needs our interface package too (built now if it is missing)
            load_srv_module() if args.recorder_transport == "ros2" else import_rclpy()
        except Ros2Unavailable as exc:
            parser.error(f"ROS 2 (--recorder-transport/--teleop ros2): {exc}")
    try:
        access = load_access(environment(), pin_file=args.collector_pin_file, debug_routes=args.debug_routes)
    except (OSError, ValueError) as exc:
        parser.error(f"collector PIN: {exc}")
    if not is_loopback(args.host) and access.collector_credential is None:
        parser.error(f"--host {args.host} exposes the collector page and teleop beyond this robot: set a collector PIN "
                     "(AXON_COLLECTOR_PIN, AXON_COLLECTOR_PIN_FILE or --collector-pin-file)")
    try:
        data_path = DataPathSettings.from_env()
    except ValueError as exc:
        parser.error(str(exc))
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return run_agent(
            args.robot_id,
            args.control_plane_url,
            args.token,
            args.data_dir,
            args.recorder_url,
            host=args.host,
            port=port,
            poll_interval=poll_interval,
            teleop=args.teleop,
            access=access,
            recorder_transport=args.recorder_transport,
            recorder_namespace=args.recorder_namespace,
            supervision_interval=supervision_interval,
            long_poll_seconds=long_poll,
            recorder_output_dir=args.recorder_output_dir or None,
            data_path=data_path,
        )
    except (EdgeError, ValueError, OSError) as exc:
        log.error("%s", exc)
        print(f"axon-edge: error: {exc}", file=sys.stderr)
        return 1


def _number(parser: argparse.ArgumentParser, raw: str, option: str, kind: type) -> int | float:
    try:
        return kind(raw)
    except ValueError:
        parser.error(f"{option} must be a number, got {raw!r}")
    raise AssertionError("unreachable")


if __name__ == "__main__":
    sys.exit(main())

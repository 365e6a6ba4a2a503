"""``axon-dagster demo``: a simulated fleet through both flows, end to end; a results table, exit 0
only when every task is UPLOADED with a verified cloud copy. ``axon-dagster demo --help``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections import Counter
from pathlib import Path

from axon_dagster.settings.tools import CliSettings

from .driver import DEFAULT_ISOLATION, DEFAULT_RECORDING_FORMAT
from .processes import stop_on_signals

STATUS_ORDER = ("PENDING", "READY", "ASSIGNED", "EXECUTING", "EXECUTED", "UPLOADED", "FAILED", "CANCELLED")


def build_parser() -> argparse.ArgumentParser:
    demo = argparse.ArgumentParser(prog="axon-dagster demo", description="Run a simulated fleet through both flows, end to end.")
    demo.add_argument("--log-level", default=CliSettings.load().log_level)
    demo.add_argument("--robots", type=int, default=2)
    demo.add_argument("--skills", default="navigation,pick_place", help="comma-separated skills")
    demo.add_argument("--tasks-per-skill", type=int, default=2)
    demo.add_argument("--duration", type=float, default=3.0, help="seconds each recording lasts")
    demo.add_argument("--workdir", help="where databases, recordings, cache and 'cloud' go (default: a temp dir)")
    demo.add_argument("--json", help="write the per-task results as JSON to this path")
    demo.add_argument("--timeout", type=float, default=110.0)
    demo.add_argument(
        "--transport",
        default="http",
        choices=["http", "ros1", "ros2"],
        help="how edge agents reach their recorders: Axon HTTP RPC, or ROS 1 services on a real rosmaster "
        "the demo starts, or ROS 2 services (rclpy nodes on loopback, in a ROS_DOMAIN_ID of the demo's own)",
    )
    demo.add_argument(
        "--format",
        dest="recording_format",
        default=DEFAULT_RECORDING_FORMAT,
        choices=["mcap", "lance"],
        help=f"what the simulated recorders write: Axon v0.4 MCAP or the Lance-era layout (default {DEFAULT_RECORDING_FORMAT})",
    )
    demo.add_argument(
        "--external-recorder",
        action="append",
        metavar="ROBOT_ID=URL,DATA_DIR",
        help="run against a recorder that is already running (a real Axon, or `axon-sim`) instead of starting "
        "simulators: its robot id, HTTP RPC URL and output directory; repeat for more robots",
    )
    demo.add_argument(
        "--isolation",
        default=DEFAULT_ISOLATION,
        choices=["auto", "on", "off"],
        help="run each robot's recorder and edge agent as an OS user of its own (axon-robot-N, 0700 data directory) "
        "and the control plane and Dagster as axon-cloud: auto = where the demo can create users (root with useradd), "
        f"saying why not elsewhere; on = or fail (default {DEFAULT_ISOLATION})",
    )
    return demo


def _progress_printer(console):
    last: dict[str, object] = {}

    def show(tasks: list[dict], elapsed: float) -> None:
        counts = Counter(t["status"] for t in tasks)
        line = "  ".join(f"{s.lower()}={counts[s]}" for s in STATUS_ORDER if counts[s])
        if line != last.get("line"):
            console.print(f"[dim]{elapsed:6.1f}s[/dim]  {len(tasks)} tasks  {line}")
            last["line"] = line

    return show


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from .driver import DemoOptions, DemoTransportUnavailable, check_transport, run_demo
    from .fleet import ExternalRecorder

    console = Console(width=None if sys.stdout.isatty() else 160)
    try:
        external = [ExternalRecorder.parse(spec) for spec in args.external_recorder or []]
    except ValueError as exc:
        print(f"axon-dagster demo: error: {exc}", file=sys.stderr)
        return 2
    if external and args.transport != "http":
        print("axon-dagster demo: error: --external-recorder speaks Axon's HTTP RPC: use --transport http", file=sys.stderr)
        return 2
    if len({r.robot_id for r in external}) != len(external):
        print("axon-dagster demo: error: --external-recorder names a robot twice", file=sys.stderr)
        return 2
    options = DemoOptions(
        robots=args.robots,
        skills=tuple(s for s in args.skills.split(",") if s),
        tasks_per_skill=args.tasks_per_skill,
        duration_seconds=args.duration,
        workdir=Path(args.workdir) if args.workdir else None,
        json_path=Path(args.json) if args.json else None,
        timeout_seconds=args.timeout,
        transport=args.transport,
        recording_format=args.recording_format,
        external_recorders=external,
        isolation=args.isolation,
    )
    if external:
        options.robots = len(external)
    try:
        check_transport(options.transport)
    except DemoTransportUnavailable as exc:
        print(f"axon-dagster demo: error: {exc}", file=sys.stderr)
        return 2
    fleet_text = (
        f"{len(external)} external recorder(s) ({', '.join(f'{r.robot_id}={r.url}' for r in external)})"
        if external
        else f"{options.robots} simulated robots ({options.transport} recorders, {options.recording_format})"
    )
    console.print(
        f"[bold]axon-dagster demo[/bold]: {fleet_text}, order {options.order_id}: "
        f"{len(options.skills)} skills x {options.tasks_per_skill} tasks of {options.duration_seconds:g}s"
    )
    from .isolation import IsolationUnavailable

    try:
        result = run_demo(options, progress=_progress_printer(console), announce=console.print)
    except IsolationUnavailable as exc:
        print(f"axon-dagster demo: error: {exc}", file=sys.stderr)
        return 2
    lake = result.workdir / "cloud" / "lake"
    table = Table(title=f"order {options.order_id}: {result.elapsed_seconds:.1f}s; cloud store {lake}")
    for column in ("task", "robot", "user", "status", "QC score", "cloud path", "digest", "seconds"):
        table.add_column(column)
    cloud_root = f"file://{lake}/"
    for row in result.tasks:
        task = row["task_id"].removeprefix(f"{options.order_id}_")
        cloud = (row["cloud_path"] or "-").removeprefix(cloud_root)
        score = f"{row['qc_score']:.3f}" if row["qc_score"] is not None else "-"
        status = row["status"] if not row.get("failure_reason") else f"{row['status']}: {row['failure_reason']}"
        table.add_row(
            task, row["robot_id"] or "-", row.get("robot_user") or "-", status, score, cloud,
            "verified" if row["digest_verified"] else "NOT verified", str(row["seconds"] or "-"),
        )
    console.print(table)
    _print_isolation(console, result.isolation)
    if args.json:
        console.print(f"wrote {args.json}")
    if result.all_uploaded:
        console.print(f"[green]all {len(result.tasks)} tasks UPLOADED, cloud digests verified[/green]")
        return 0
    console.print("[red]not every task reached UPLOADED with a verified cloud copy — see the table and logs in "
                  f"{result.workdir / 'logs'}[/red]")
    return 1


def _print_isolation(console, isolation: dict) -> None:
    """Who ran what, as read from /proc while it ran, and what the cloud's user got reading robots' directories."""
    if not isolation.get("enabled"):
        return
    cloud = isolation["cloud"]
    console.print(f"cloud: {', '.join(f'{name} as {user}' for name, user in cloud['processes'].items())}")
    for robot_id, robot in isolation["robots"].items():
        ran = ", ".join(f"{name} as {user}" for name, user in robot["processes"].items())
        tried = "; ".join(f"{path}: {outcome}" for path, outcome in robot["cloud_read_attempt"].items())
        console.print(f"{robot_id}: {ran}; {robot['data_dir']} mode {robot['data_dir_mode']}; {cloud['user']} reading it: {tried}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with stop_on_signals():  # SIGTERM/SIGHUP end the demo as Ctrl-C does: the fleet's processes stop
        try:
            return run(args)
        except KeyboardInterrupt:
            print("axon-dagster demo: interrupted; the fleet's processes are stopped", file=sys.stderr)
            return 130


if __name__ == "__main__":
    sys.exit(main())

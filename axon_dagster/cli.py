"""`axon-dagster …`: entry points that only wire. Run `axon-dagster --help`."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections import Counter
from pathlib import Path

STATUS_ORDER = ("PENDING", "READY", "ASSIGNED", "EXECUTING", "EXECUTED", "UPLOADED", "FAILED", "CANCELLED")


def _database_url(args) -> str:
    return args.database_url or os.environ.get("AXON_DATABASE_URL") or "sqlite:///.axon/control-plane.db"


def cmd_api(args) -> int:
    from axon_dagster.api.server import serve

    serve(host=args.host, port=args.port, database_url=_database_url(args), admin_token=os.environ.get("AXON_ADMIN_TOKEN"), workers=args.workers)
    return 0


def cmd_db_upgrade(args) -> int:
    from axon_dagster.control_plane.persistence import upgrade

    url = _database_url(args)
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    upgrade(url)
    print(f"database at {url.split('@')[-1]} is at the latest schema")
    return 0


def _progress_printer(console):
    last: dict[str, object] = {}

    def show(tasks: list[dict], elapsed: float) -> None:
        counts = Counter(t["status"] for t in tasks)
        line = "  ".join(f"{s.lower()}={counts[s]}" for s in STATUS_ORDER if counts[s])
        if line != last.get("line"):
            console.print(f"[dim]{elapsed:6.1f}s[/dim]  {len(tasks)} tasks  {line}")
            last["line"] = line

    return show


def cmd_demo(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from axon_dagster.demo.driver import DemoOptions, run_demo
    from axon_dagster.demo.fleet import ExternalRecorder

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
    )
    if external:
        options.robots = len(external)
    from axon_dagster.demo.driver import DemoTransportUnavailable, check_transport

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
    result = run_demo(options, progress=_progress_printer(console))
    table = Table(title=f"order {options.order_id}: {result.elapsed_seconds:.1f}s; cloud store {result.workdir / 'cloud'}")
    for column in ("task", "robot", "status", "QC score", "cloud path", "digest", "seconds"):
        table.add_column(column)
    cloud_root = f"file://{result.workdir / 'cloud'}/"
    for row in result.tasks:
        task = row["task_id"].removeprefix(f"{options.order_id}_")
        cloud = (row["cloud_path"] or "-").removeprefix(cloud_root)
        score = f"{row['qc_score']:.3f}" if row["qc_score"] is not None else "-"
        status = row["status"] if not row.get("failure_reason") else f"{row['status']}: {row['failure_reason']}"
        table.add_row(
            task, row["robot_id"] or "-", status, score, cloud,
            "verified" if row["digest_verified"] else "NOT verified", str(row["seconds"] or "-"),
        )
    console.print(table)
    if args.json:
        console.print(f"wrote {args.json}")
    if result.all_uploaded:
        console.print(f"[green]all {len(result.tasks)} tasks UPLOADED, cloud digests verified[/green]")
        return 0
    console.print("[red]not every task reached UPLOADED with a verified cloud copy — see the table and logs in "
                  f"{result.workdir / 'logs'}[/red]")
    return 1


def cmd_dev(args) -> int:
    import subprocess
    import tempfile
    import threading

    from axon_dagster.demo.collectors import SimulatedCollector
    from axon_dagster.demo.fleet import SimulatedFleet
    from axon_dagster.recorder.ros2_env import reserve_domain_id

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="axon-dev-")).resolve()
    with SimulatedFleet(workdir, robots=args.robots, control_plane_port=args.api_port, transport=args.transport) as fleet:
        stop = threading.Event()
        for robot in fleet.robot_processes:
            SimulatedCollector(robot.edge_url, f"collector-{robot.robot_id}", stop_event=stop).start()
        # whatever speaks ROS 2 here stays on loopback, in the fleet's domain (ros2) or one of its own
        domain = None if "ROS_DOMAIN_ID" in fleet.ros_env else reserve_domain_id()
        env = {
            **os.environ,
            "AXON_CONTROL_PLANE_URL": fleet.control_plane_url,
            "AXON_ADMIN_TOKEN": fleet.admin_token,
            "AXON_EDGE_CACHE_DIR": str(workdir / "edge-cache"),
            "AXON_OBJECT_STORE_URL": f"file://{workdir / 'cloud'}",
            "AXON_RECORDER_URL": fleet.robot_processes[0].recorder_url if fleet.robot_processes else "",
            "AXON_RECORDER_TRANSPORT": args.transport,
            "AXON_RECORDER_NAMESPACE": fleet.robot_processes[0].recorder_namespace if fleet.robot_processes else "",
            "DAGSTER_HOME": str(workdir / "dagster-home"),
            **fleet.ros_env,
            **(domain.env() if domain is not None else {}),
        }
        if args.transport == "http":
            del env["AXON_RECORDER_NAMESPACE"]
        Path(env["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
        print(f"control plane {fleet.control_plane_url} (admin token in {workdir / 'admin-token'})")
        (workdir / "admin-token").write_text(fleet.admin_token)
        password = _dev_admin_account(fleet.database_url)
        (workdir / "admin-password").write_text(password)
        print(f"pages: sign in at {fleet.control_plane_url}/login as 'admin' (password in {workdir / 'admin-password'})")
        for robot in fleet.robot_processes:
            print(f"{robot.robot_id}: edge agent {robot.edge_url}, recorder {robot.recorder_url or '/' + robot.recorder_namespace + '/'}")
        print(f"ROS 2 on loopback only, ROS_DOMAIN_ID {env['ROS_DOMAIN_ID']}")
        print(f"Dagster UI on http://127.0.0.1:{args.ui_port} — launch order_processing from the launchpad; Ctrl-C stops all")
        try:
            return subprocess.call(
                [sys.executable, "-m", "dagster", "dev", "-m", "axon_dagster.defs", "-p", str(args.ui_port), "-h", "127.0.0.1"], env=env
            )
        except KeyboardInterrupt:
            return 0
        finally:
            stop.set()
            if domain is not None:
                domain.release()


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="axon-dagster", description="Robot data-collection orchestration.")
    parser.add_argument("--log-level", default=os.environ.get("AXON_LOG_LEVEL", "WARNING"))
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (_, help_text) in DELEGATED.items():
        sub.add_parser(name, help=help_text, add_help=False)

    demo = sub.add_parser("demo", help="run a simulated fleet through both flows, end to end")
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
    from axon_dagster.demo.driver import DEFAULT_RECORDING_FORMAT

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
    demo.set_defaults(func=cmd_demo)

    dev = sub.add_parser("dev", help="the simulated fleet plus `dagster dev`, until Ctrl-C")
    dev.add_argument("--robots", type=int, default=2)
    dev.add_argument("--workdir")
    dev.add_argument("--api-port", type=int, default=8000)
    dev.add_argument("--ui-port", type=int, default=3000)
    dev.add_argument("--transport", default="http", choices=["http", "ros1", "ros2"], help="as for demo")
    dev.set_defaults(func=cmd_dev)

    api = sub.add_parser("api", help="serve the control-plane API")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8000)
    api.add_argument("--database-url")
    api.add_argument(
        "--workers", type=int, default=None, help="uvicorn worker processes (default: AXON_API_WORKERS, else one per CPU, at most 4)"
    )
    api.set_defaults(func=cmd_api)

    db = sub.add_parser("db", help="control-plane database")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    upgrade = db_sub.add_parser("upgrade", help="apply migrations")
    upgrade.add_argument("--database-url")
    upgrade.set_defaults(func=cmd_db_upgrade)
    return parser


# Subcommands with their own parser live beside their room; `axon-dagster X ...` hands over the rest.
DELEGATED = {
    "inspect": ("axon_dagster.inspection.cli", "inspect a Lance or MCAP recording: axon-dagster inspect PATH [--runner ...] [--json]"),
    "datasets": ("axon_dagster.datasets_cli", "search datasets: axon-dagster datasets --scene ... [--json]"),
    "accounts": ("axon_dagster.accounts_cli", "people and service tokens: axon-dagster accounts add NAME --role reviewer"),
}


def main(argv: list[str] | None = None) -> int:
    import importlib
    import warnings

    warnings.filterwarnings("ignore", message=".*is currently in beta.*")
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in DELEGATED:
        return importlib.import_module(DELEGATED[argv[0]][0]).main(argv[1:])
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

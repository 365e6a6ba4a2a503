"""``axon-sim``: run one simulated Axon recorder (HTTP RPC v0.4, or ROS 1 services) as a process.

    axon-sim --port 8080 --data-dir .axon/sim/robot-1 --robot-id robot-1 --faults '{"drop_rate": 0.1}'
    axon-sim --format lance ...        # the Lance-era layout instead of Axon v0.4 MCAP
    ROS_MASTER_URI=http://127.0.0.1:11311 axon-sim --transport ros1 --namespace axon --data-dir DIR
    ROS_DOMAIN_ID=7 axon-sim --transport ros2 --namespace axon --data-dir DIR

With ``--transport ros1`` (``ros2``) the line printed once ready is ``axon-sim serving ROS 1 (ROS 2) services under /<ns>/ ...``.

Prints ``axon-sim listening on <url>`` on stdout once it accepts connections (with ``--port 0``
that line says which port was chosen). Exit status: 0 after Ctrl-C / SIGTERM, 1 after a simulated crash (fault ``die_after_seconds``),
2 for bad arguments (nothing is started).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import socket
import sys
import threading
from pathlib import Path

from axon_dagster.domain import InvalidIdError, validate_id
from axon_dagster.settings.ros import SimSettings
from axon_dagster.storage.recording import RECORDING_FORMATS

from .axon_mcap import ENCODINGS, SCHEMA_MODES, SIDECAR_MODES, axon_default_topics
from .faults import FaultsError, SimFaults
from .recorder import SimulatedRecorder
from .serving import EXIT_CRASHED, EXIT_USAGE, bind_socket, url_of
from .session import DEFAULT_DISK_HARD_LIMIT_GB, DEFAULT_FINISH_SECONDS_PER_GB, DEFAULT_PORT
from .synthetic import default_topics

logger = logging.getLogger(__name__)



def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="axon-sim",
        description="Simulated Axon recorder: serves Axon's HTTP RPC (v0.4) and writes synthetic recordings "
        "as Axon does (<task_id>.mcap + .json sidecar + .mcap.done), or in the Lance-era layout.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port to listen on; 0 picks a free one (default {DEFAULT_PORT}, Axon's)"
    )
    parser.add_argument(
        "--robot-id",
        default=SimSettings.load().robot_id,
        help="robot id written into every recording (default $AXON_ROBOT_ID or sim-robot)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where recordings are written (default .axon/sim/<robot-id>)",
    )
    parser.add_argument(
        "--faults",
        default=None,
        help='faults as JSON, e.g. \'{"drop_rate": 0.1, "gap_seconds": 2, "missing_topics": ["/imu"], '
        '"fail_start": true, "die_after_seconds": 5}\'',
    )
    parser.add_argument(
        "--transport",
        default="http",
        choices=["http", "ros1", "ros2"],
        help="http: Axon's HTTP RPC on --host/--port (default); ros1: the four ROS services under "
        "/<namespace>/ as a rospy node of $ROS_MASTER_URI; ros2: the same services as an rclpy node "
        "(DDS settings such as ROS_DOMAIN_ID from the environment)",
    )
    parser.add_argument("--namespace", default="axon", help="ROS namespace of the services with --transport ros1/ros2 (default axon)")
    parser.add_argument(
        "--format",
        dest="recording_format",
        default="mcap",
        choices=list(RECORDING_FORMATS),
        help="mcap: Axon v0.4 recordings (default); lance: the Lance-era layout (<task_id>.lance + sidecar)",
    )
    parser.add_argument("--encoding", default="ros2", choices=list(ENCODINGS), help="MCAP message encoding: ros2 (CDR, default) or ros1")
    parser.add_argument(
        "--schema", default="empty", choices=list(SCHEMA_MODES), help="MCAP schema data: empty (Axon's default) or full (.msg text)"
    )
    parser.add_argument("--sidecar", default="always", choices=list(SIDECAR_MODES), help="write the JSON sidecar (always) or not (none)")
    parser.add_argument(
        "--finish-seconds-per-gb",
        type=float,
        default=DEFAULT_FINISH_SECONDS_PER_GB,
        help=f"how long finish takes per GB recorded (Axon re-scans and hashes the file; default {DEFAULT_FINISH_SECONDS_PER_GB})",
    )
    parser.add_argument(
        "--disk-hard-limit-gb", type=float, default=DEFAULT_DISK_HARD_LIMIT_GB, help="the disk guard's hard limit reported in /rpc/stats"
    )
    parser.add_argument(
        "--camera-bytes",
        type=int,
        default=None,
        help="bytes per camera frame (default 8 KiB; 921600 is a 640x480 rgb8 frame)",
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    try:
        robot_id = validate_id(args.robot_id, "robot_id")
    except InvalidIdError as exc:
        parser.error(str(exc))
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be between 0 and 65535, got {args.port}")
    faults = SimFaults()
    if args.faults:
        try:
            faults = SimFaults.from_dict(json.loads(args.faults))
        except json.JSONDecodeError as exc:
            parser.error(f"--faults is not valid JSON: {exc}")
        except FaultsError as exc:
            parser.error(f"--faults: {exc}")
    data_dir = args.data_dir or Path(".axon") / "sim" / robot_id
    topics = None
    if args.camera_bytes is not None:
        if args.camera_bytes < 1:
            parser.error(f"--camera-bytes must be a positive number of bytes, got {args.camera_bytes}")
        make = axon_default_topics if args.recording_format == "mcap" else default_topics
        topics = make(args.camera_bytes)
    options = dict(
        faults=faults,
        topics=topics,
        recording_format=args.recording_format,
        encoding=args.encoding,
        schema=args.schema,
        sidecar_mode=args.sidecar,
        finish_seconds_per_gb=args.finish_seconds_per_gb,
        disk_hard_limit_gb=args.disk_hard_limit_gb,
    )
    problem = SimulatedRecorder.check_options(**options)  # before anything is created
    if problem:
        parser.error(problem)

    def make_recorder() -> SimulatedRecorder:
        return SimulatedRecorder(data_dir, robot_id, **options)

    if args.transport in ("ros1", "ros2"):
        from axon_dagster.recorder.srv import validate_namespace

        try:
            namespace = validate_namespace(args.namespace)
        except ValueError as exc:
            parser.error(f"--namespace: {exc}")
        if args.transport == "ros2":
            from .ros2_node import run_ros2

            return run_ros2(make_recorder(), namespace)
        from .ros1_node import run_ros1

        return run_ros1(make_recorder(), namespace)
    try:
        sock = bind_socket(args.host, args.port)
    except OSError as exc:
        print(f"axon-sim: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return _serve(sock, make_recorder())


def _serve(sock: socket.socket, recorder: SimulatedRecorder) -> int:
    import uvicorn

    level = logging.getLogger().getEffectiveLevel()
    server = uvicorn.Server(
        uvicorn.Config(
            recorder.app,
            log_level=logging.getLevelName(level).lower(),
            lifespan="off",
            access_log=level <= logging.DEBUG,
        )
    )

    def crash() -> None:
        server.should_exit = True

    def shut_down(signum: int, _frame: object) -> None:
        logger.info("axon-sim %s: %s received, shutting down", recorder.robot_id, signal.Signals(signum).name)
        server.should_exit = True

    recorder.on_crash = crash
    recorder.on_quit = crash  # POST /rpc/quit: stop serving; exit status 0 (not a crash)
    # Listening before the announcement: a client that reads the line and connects at once is
    # queued until uvicorn accepts, instead of being refused.
    sock.listen(128)
    # uvicorn runs in a worker thread so that these handlers, not uvicorn's (which re-raise the
    # signal and end the process with -15), decide the exit status: a requested stop is a clean 0.
    previous_handlers = {sig: signal.signal(sig, shut_down) for sig in (signal.SIGTERM, signal.SIGINT)}
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="axon-sim-server")
    thread.start()
    # The line a supervisor (the demo, a test) waits for, whatever the log level; with
    # --port 0 it is how the chosen port becomes known.
    print(f"axon-sim listening on {url_of(sock)}", flush=True)
    logger.info(
        "axon-sim %s serving on %s (data in %s, faults %s)",
        recorder.robot_id,
        url_of(sock),
        recorder.data_dir,
        recorder.faults.to_dict(),
    )
    try:
        while thread.is_alive():
            thread.join(timeout=0.2)
    finally:
        server.should_exit = True
        thread.join()
        sock.close()
        for sig, handler in previous_handlers.items():
            signal.signal(sig, handler)
    if recorder.crashed.is_set():
        logger.error("axon-sim %s exiting after a simulated crash", recorder.robot_id)
        return EXIT_CRASHED
    return 0


if __name__ == "__main__":
    sys.exit(main())

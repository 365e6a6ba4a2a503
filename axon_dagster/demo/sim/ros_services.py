"""The recorder's four ROS services, whatever the ROS version: what they mean over a
:class:`.recorder.SimulatedRecorder` (request fields in, response fields out) and the ROS modes'
main loop. :mod:`.ros1_node` and :mod:`.ros2_node` only adapt them to rospy / rclpy."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from typing import Any, Callable

from axon_dagster.recorder.config import RecordingConfig, RecordingConfigError

from .recorder import SimulatedRecorder
from .serving import EXIT_CRASHED
from .session import PAUSED, READY, RECORDING, RpcRefusal

logger = logging.getLogger(__name__)

OPEN = (RECORDING, PAUSED)


class RecorderServices:
    """What the recorder's ROS services do, over a :class:`SimulatedRecorder`.

    Mirrors Axon: ``start_recording`` reads the task's config file, holds it (clearing another
    task's pending config) and begins; starting the task already recording is a harmless repeat;
    refusals come back as ``success=false`` with the reason, never as exceptions. Calls are
    serialized, as a recorder holds one task at a time.
    """

    def __init__(self, recorder: SimulatedRecorder):
        self.recorder = recorder
        self._lock = threading.Lock()

    def start_recording(self, config_path: str) -> dict[str, Any]:
        with self._lock:
            try:
                config = RecordingConfig.read(config_path)
                _message, state = self.recorder.rpc_state()
                if state["state"] in OPEN:
                    if state.get("task_id") == config.task_id:
                        return _ok(f"already {state['state']} task {config.task_id}")
                    return _refused(
                        f"recorder is busy: {state['state']} task {state.get('task_id')!r}; finish or cancel it first"
                    )
                self._hold(config, state)
                message, data = self.recorder.rpc_begin({"task_id": config.task_id})
                return _ok(f"{message}: task {config.task_id} to {data['dataset_path']}")
            except (RecordingConfigError, RpcRefusal) as exc:
                return _refused(str(exc))

    def stop_recording(self) -> dict[str, Any]:
        with self._lock:
            _message, state = self.recorder.rpc_state()
            if state["state"] not in OPEN:
                return {**_refused(f"nothing to stop: recorder is {state['state']}"), "flushed_batches": 0}
            try:
                message, data = self.recorder.rpc_finish({"task_id": state["task_id"]})
            except RpcRefusal as exc:
                return {**_refused(str(exc)), "flushed_batches": 0}
            return {**_ok(f"{message}: {data['dataset_path']}"), "flushed_batches": int(data["flushed_batches"])}

    def get_status(self) -> dict[str, Any]:
        """The GetStatus fields, mapped as :meth:`AxonHttpRecorder.get_status` maps the RPC: per-topic
        message counts as ``batch_sizes``; ``dataset_path`` the open session's, else the last written."""
        _message, state = self.recorder.rpc_state()
        _message, stats = self.recorder.rpc_stats()
        is_open = state["state"] in OPEN
        topics = sorted(stats["topics"]) if is_open else []
        return {
            "is_recording": is_open,
            "dataset_path": str(state.get("dataset_path" if is_open else "last_dataset_path") or ""),
            "active_topics": topics,
            "batch_sizes": [int(stats["topics"][t]["messages"]) for t in topics],
            "pending_batches": int(stats["pending_batches"]),
            "disk_usage_gb": float(stats["disk_usage_gb"]),
            "last_error": str(stats.get("last_error") or ""),
        }

    def update_config(self, config_path: str) -> dict[str, Any]:
        with self._lock:
            try:
                config = RecordingConfig.read(config_path)
                _message, state = self.recorder.rpc_state()
                if state["state"] in OPEN:
                    return _refused(
                        f"recorder is busy: {state['state']} task {state.get('task_id')!r}; "
                        f"config for task {config.task_id!r} can be pushed once it finishes"
                    )
                message = self._hold(config, state)
                return _ok(message)
            except (RecordingConfigError, RpcRefusal) as exc:
                return _refused(str(exc))

    def _hold(self, config: RecordingConfig, state: dict[str, Any]) -> str:
        if state["state"] == READY and state.get("task_id") != config.task_id:
            logger.info("clearing the pending config of task %s for task %s", state.get("task_id"), config.task_id)
            self.recorder.rpc_clear({})
        message, _data = self.recorder.rpc_config({"task_config": config.task_config()})
        return f"{message}: task {config.task_id}"


def _ok(message: str) -> dict[str, Any]:
    return {"success": True, "message": message}


def _refused(message: str) -> dict[str, Any]:
    return {"success": False, "message": message}


def service_handlers(services: RecorderServices) -> dict[str, Callable[[Any], dict[str, Any]]]:
    """Each service's handler, by operation name, from a request object of either ROS version."""
    return {
        "start_recording": lambda req: services.start_recording(req.config_path),
        "stop_recording": lambda req: services.stop_recording(),
        "get_status": lambda req: services.get_status(),
        "update_config": lambda req: services.update_config(req.config_path),
    }


def serve_until_stopped(
    recorder: SimulatedRecorder, ready_line: str, *, alive: Callable[[], bool] = lambda: True, on_stop: Callable[[], None]
) -> int:
    """The ROS modes' main loop: print ``ready_line``, then wait for SIGTERM/SIGINT (exit 0) or a
    simulated crash (exit 1 on the spot: a crashed recorder leaves its registrations behind)."""
    def crash() -> None:
        logger.error("axon-sim %s: simulated crash (fault die_after_seconds); exiting on the spot", recorder.robot_id)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_CRASHED)

    stop = threading.Event()

    def shut_down(signum: int, _frame: object) -> None:
        logger.info("axon-sim %s: %s received, shutting down", recorder.robot_id, signal.Signals(signum).name)
        stop.set()

    recorder.on_crash = crash
    previous = {sig: signal.signal(sig, shut_down) for sig in (signal.SIGTERM, signal.SIGINT)}
    print(ready_line, flush=True)
    try:
        while not stop.is_set() and alive():
            stop.wait(0.2)
    finally:
        on_stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0

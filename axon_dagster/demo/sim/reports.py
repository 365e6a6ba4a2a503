"""The simulated recorder's read-only RPCs: state, statistics, tasks, health (Axon v0.4's fields)."""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Mapping

from axon_dagster import __version__

from .session import PAUSED, READY, RECORDING, SERVICE_NAME, Session, require_task_id
from .task_config import public_task_config
from .writer import directory_bytes


class RecorderReports:
    """Mixed into :class:`.recorder.SimulatedRecorder`: what it reports, never what changes its state."""

    def rpc_state(self) -> tuple[str, dict[str, Any]]:
        with self._lock:
            _message, stats = self.rpc_stats()
            data: dict[str, Any] = {
                "version": recorder_version(),
                "state": self._state,
                "running": stats["messages_written"] > 0 or stats["messages_received"] > 0,
                "duration_sec": stats["duration_sec"],
                "message_count": stats["messages_written"],
                "bytes_written": stats["bytes_written"],
            }
            if self._state in (READY, RECORDING, PAUSED) and self._config is not None:
                data["task_config"] = public_task_config(self._session.task_config if self._session else self._config)
                data["task_id"] = data["task_config"]["task_id"]
            if self._session is not None:
                data["dataset_path"] = str(self._session.output_path)
            data["last_dataset_path"] = self._last.output_path if self._last else ""
            data["last_error"] = self._last_error
        return "State retrieved successfully", data

    def rpc_stats(self) -> tuple[str, dict[str, Any]]:
        """Axon's statistics: totals, ``topic_message_counts`` (every subscription; zero when
        idle: counts reset at finish), ``disk_usage`` and the last finished file's ``metadata``."""
        with self._lock:
            now = time.monotonic()
            session = self._session
            counts = self._topic_counts(session, now)
            elapsed = session.recorded_seconds(now) if session else 0.0
            written = sum(c["written"] for c in counts.values())
            received = sum(c["received"] for c in counts.values())
            bytes_written = sum(c["written"] * self.subscriptions[t].payload_bytes for t, c in counts.items())
            used = directory_bytes(self.data_dir) + (bytes_written if self.recording_format == "mcap" else 0)
            limit = round(self.disk_hard_limit_gb * 1e9)
            if self._disk_reason:
                used = max(used, limit)
            rate = bytes_written / elapsed / 1e6 if elapsed > 0 else 0.0
            data: dict[str, Any] = {
                "state": self._state,
                "messages_received": received,
                "messages_written": written,
                "messages_dropped": received - written,
                "bytes_written": bytes_written,
                "bytes_received": sum(c["received"] * self.subscriptions[t].payload_bytes for t, c in counts.items()),
                "receive_rate_mbps": rate,
                "write_rate_mbps": rate,
                "duration_sec": elapsed,
                "message_count": written,
                "topic_message_counts": counts,
                "disk_usage": {
                    "enabled": True,
                    "state": "hard_limit" if self._disk_reason else "normal",
                    "reason": self._disk_reason,
                    "total_used_bytes": used,
                    "total_used_gb": used / 1e9,
                    "warn_usage_gb": self.disk_hard_limit_gb * 0.9,
                    "hard_limit_bytes": limit,
                    "hard_limit_gb": self.disk_hard_limit_gb,
                    "current_task_bytes": bytes_written,
                    "current_task_gb": bytes_written / 1e9,
                },
                "metadata": self._metadata(),
                # the simulator's own (not on the wire): for the ROS service nodes
                "topics": {
                    name: {
                        "message_type": self.subscriptions[name].message_type,
                        "rate_hz": self.subscriptions[name].rate_hz,
                        "messages": c["written"],
                        "messages_dropped": c["dropped"],
                        "bytes": c["written"] * self.subscriptions[name].payload_bytes,
                    }
                    for name, c in counts.items()
                    if session is not None and c["received"] > 0
                },
                "pending_batches": 0,
                "disk_usage_gb": used / 1e9,
                "last_error": self._last_error,
                "available_topics": sorted(self.subscriptions),
            }
        return "Statistics retrieved successfully", data

    def rpc_tasks(self) -> tuple[str, dict[str, Any]]:
        """``GET /rpc/tasks``: the current task (a config held or being recorded), if any."""
        with self._lock:
            task = self._task_snapshot()
            return "Tasks retrieved successfully", {"tasks": [task] if task else [], "count": 1 if task else 0, "state": self._state}

    def rpc_task_status(self, body: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """``POST /rpc/task_status {task_id}``: found only for the current task."""
        task_id = require_task_id(body, self._state)
        with self._lock:
            task = self._task_snapshot()
            data: dict[str, Any] = {"task_id": task_id, "state": self._state}
            if task and task["task_id"] == task_id:
                data.update(found=True, task=task)
            else:
                data.update(found=False, status="unknown")
        return "Task status retrieved successfully", data

    def rpc_drop_stats(self) -> tuple[str, dict[str, Any]]:
        _message, stats = self.rpc_stats()
        keys = ("state", "messages_received", "messages_written", "messages_dropped", "topic_message_counts")
        return "Drop statistics retrieved successfully", {k: stats[k] for k in keys}

    def rpc_latency_stats(self) -> tuple[str, dict[str, Any]]:
        return "Latency statistics retrieved successfully", {"enabled": False, "topics": {}}

    def rpc_log_levels(self) -> tuple[str, dict[str, Any]]:
        level = logging.getLevelName(logging.getLogger().getEffectiveLevel()).lower()
        return "Log levels retrieved successfully", {
            "console_enabled": True,
            "file_enabled": False,
            "console_level": level,
            "file_level": level,
            "effective_console_level": level,
            "effective_file_level": level,
        }

    def _task_snapshot(self) -> dict[str, Any] | None:
        if self._state not in (READY, RECORDING, PAUSED) or not self._config:
            return None
        _message, stats = self.rpc_stats()
        config = self._session.task_config if self._session else self._config
        return {
            "task_id": config["task_id"],
            "state": self._state,
            "active": True,
            "task_config": public_task_config(config),
            "duration_sec": stats["duration_sec"],
            "message_count": stats["messages_written"],
            "bytes_written": stats["bytes_written"],
        }

    def rpc_health(self) -> dict[str, Any]:
        """``/health``: a bare object, not the envelope (as Axon's http_server answers)."""
        return {"status": "ok", "service": SERVICE_NAME, "version": recorder_version(), "running": True, "state": self._state}

    # -- helpers -----------------------------------------------------------------------------

    def _topic_counts(self, session: Session | None, now_mono: float) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {}
        for name, spec in sorted(self.subscriptions.items()):
            received = written = 0
            if session is not None and name not in session.faults.recording.missing_topics:
                received = math.ceil(session.recorded_seconds(now_mono) * spec.rate_hz - 1e-9)
                written = received - round(received * session.faults.recording.drop_rate)
            counts[name] = {"received": received, "written": written, "dropped": received - written}
        return counts

    def _metadata(self) -> dict[str, Any]:
        last = self._last
        return {
            "output_path": last.output_path if last else None,
            "sidecar_enabled": self.sidecar_mode != "none",
            "sidecar_generation_mode": self.sidecar_mode,
            "sidecar_generated": bool(last and last.sidecar_path),
            "sidecar_path": last.sidecar_path if last else None,
            "checksum_sha256": last.checksum_sha256 if last else None,
            "incident_bundle_enabled": False,
            "incident_bundle_created": False,
            "incident_bundle_path": None,
            "incident_bundle_error": None,
        }


def recorder_version() -> str:
    from .axon_mcap import RECORDER_VERSION

    return f"{RECORDER_VERSION}-sim+{__version__}"

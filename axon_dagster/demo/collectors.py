"""Simulated data collectors: a person beside each robot who picks up READY tasks on the edge
agent and presses start and stop on the teleop device (the edge agent's HTTP teleop endpoint)."""

from __future__ import annotations

import logging
import threading

import httpx

log = logging.getLogger(__name__)

STOP_TIMEOUT_SECONDS = 900.0


class SimulatedCollector(threading.Thread):
    def __init__(self, edge_url: str, collector_id: str, *, stop_event: threading.Event, recording_seconds: float | None = None):
        super().__init__(name=f"collector-{collector_id}", daemon=True)
        self.edge_url = edge_url.rstrip("/")
        self.collector_id = collector_id
        self.stop_event = stop_event
        self.recording_seconds = recording_seconds  # None: the task's own duration
        self.recorded: list[str] = []
        self.errors: list[str] = []

    def run(self) -> None:
        with httpx.Client(base_url=self.edge_url, timeout=10.0) as http:
            while not self.stop_event.is_set():
                try:
                    ready = http.get("/tasks", params={"status": "READY"}).json()
                    tasks = ready.get("tasks", ready) if isinstance(ready, dict) else ready
                    if not tasks:
                        self.stop_event.wait(0.3)
                        continue
                    self.record(http, tasks[0])
                except httpx.HTTPError as exc:
                    self.errors.append(str(exc))
                    log.warning("%s: %s", self.name, exc)
                    self.stop_event.wait(1.0)

    def record(self, http: httpx.Client, task: dict) -> None:
        task_id = task["task_id"]
        self._ok(http.post(f"/tasks/{task_id}/pickup", json={"collector_id": self.collector_id}), "pickup", task_id)
        self._ok(http.post("/teleop", json={"task_id": task_id, "command": "start"}), "start", task_id)
        seconds = self.recording_seconds if self.recording_seconds is not None else float(task.get("duration_seconds") or 1.0)
        self.stop_event.wait(seconds)
        # A stop waits for the recorder's finish (minutes for a large recording) and its checksum.
        self._ok(http.post("/teleop", json={"task_id": task_id, "command": "stop"}, timeout=STOP_TIMEOUT_SECONDS), "stop", task_id)
        self.recorded.append(task_id)

    def _ok(self, response: httpx.Response, action: str, task_id: str) -> None:
        if response.status_code >= 400:
            raise httpx.HTTPStatusError(
                f"{action} {task_id}: {response.status_code} {response.text[:200]}", request=response.request, response=response
            )

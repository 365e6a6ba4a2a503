"""The demo's cloud side, a process of its own (as the cloud's OS user when the demo isolates):
Dagster on an ephemeral instance, configured from the environment as the code location is.

    python -m axon_dagster.demo.cloud --order ORDER_JSON --timeout 100 --result OUT.json

It runs the order through ``order_processing``, then does what the Dagster daemon does in
production: ticks the sensors that move data with their cursors and executes each run they
request once per run_key, until every task of the order is terminal or the time is up. Then it
writes one row per task (with the published copy's digest verified) to ``--result``. It reaches the
control plane over HTTP and reads only the cloud's own store: never a robot's directory.

Between ticks it does not sleep a fixed interval: it watches the order's datasets (one light query
every ``PROBE_SECONDS``) and ticks as soon as one changes (a recording reported, granted, staged,
reviewed), or after ``IDLE_TICK_SECONDS`` whatever happened; right after a tick that ran something it
ticks again. Like a long-running daemon it has the data flow's heavy libraries (Lance, Daft) loaded
before the first recording arrives, not while it waits for one.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger(__name__)

TERMINAL = {"UPLOADED", "FAILED", "CANCELLED"}
IDLE_TICK_SECONDS = 0.5  # every sensor is evaluated at least this often
PROBE_SECONDS = 0.1  # how often the order's datasets are looked at for a change between ticks


class DagsterDriver:
    """Ticks the sensor and executes the runs it requests, like the daemon would."""

    # The demo shows its own progress; Dagster's per-step DEBUG lines would drown it.
    LOGGING = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    # robots' recordings: uploads granted, staged datasets through data_flow, review decisions
    SENSORS = ("upload_grant_sensor", "staged_dataset_sensor", "review_decision_sensor")

    def __init__(self, defs, instance):
        self.defs = defs
        self.instance = instance
        names = {s.name for s in defs.sensors or []}
        self.sensors = [defs.resolve_sensor_def(name) for name in self.SENSORS if name in names]
        self.cursors: dict[str, str | None] = {}
        self.launched: set[str] = set()
        self.failed_runs: list[str] = []

    def run_order(self, order_config: dict) -> None:
        result = self.defs.resolve_job_def("order_processing").execute_in_process(
            run_config={"ops": {"create_order": {"config": order_config}}, **self.LOGGING}, instance=self.instance, raise_on_error=True
        )
        assert result.success

    def tick(self) -> int:
        """One evaluation of each sensor that moves data (new recordings, uploads through the
        bandwidth gate, review decisions), then every run they request, once per run_key."""
        import dagster as dg

        started = 0
        for sensor in self.sensors:
            resources = {k: self.defs.resources[k] for k in sensor.required_resource_keys}
            with dg.build_sensor_context(instance=self.instance, cursor=self.cursors.get(sensor.name), resources=resources) as context:
                result = sensor.evaluate_tick(context)
            self.cursors[sensor.name] = result.cursor
            for request in result.run_requests or []:
                if request.run_key in self.launched:
                    continue
                self.launched.add(request.run_key)
                job = self.defs.resolve_job_def(request.job_name or sensor.job_name)
                run = job.execute_in_process(
                    run_config={**request.run_config, **self.LOGGING}, instance=self.instance, tags=request.tags, raise_on_error=False
                )
                if not run.success:
                    self.failed_runs.append(run.run_id)
                    log.error("%s run %s for %s failed", job.name, run.run_id, request.tags.get("axon/task_id"))
                started += 1
        return started


def run(order: dict, timeout_seconds: float) -> dict[str, Any]:
    import dagster as dg

    from axon_dagster.client.orders import all_tasks
    from axon_dagster.defs import build_definitions

    deadline = time.monotonic() + timeout_seconds
    defs = build_definitions()  # from the environment, as `dagster api grpc -m axon_dagster.defs` builds them
    client = defs.resources["control_plane"].client()
    threading.Thread(target=load_data_flow_libraries, name="warm-up", daemon=True).start()
    driver = DagsterDriver(defs, dg.DagsterInstance.ephemeral())
    driver.run_order(order)

    def probe() -> tuple:
        return datasets_signature(client, order["order_id"])

    while time.monotonic() < deadline:
        before = probe()  # what the tick will see; a change from here on wakes the next one
        started = driver.tick()
        tasks = list(all_tasks(client, order_id=order["order_id"]))
        if tasks and all(t["status"] in TERMINAL for t in tasks):
            break
        if not started:
            wait_for_change(probe, before, min(IDLE_TICK_SECONDS, max(0.0, deadline - time.monotonic())), PROBE_SECONDS)
    return {"tasks": result_rows(client, defs, order["order_id"]), "failed_runs": driver.failed_runs}


def datasets_signature(client, order_id: str) -> tuple:
    """What the order's datasets look like now (id, status, QC outcome, last change): it changes
    whenever a step of the data flow or a reviewer moves one of them."""
    page = client.search_datasets(order_id=order_id, limit=500)
    return tuple(sorted((d["dataset_id"], d["status"], d.get("qc_outcome"), d.get("updated_at")) for d in page["datasets"]))


def wait_for_change(probe: Callable[[], Any], baseline: Any, timeout: float, interval: float) -> bool:
    """Until ``probe()`` differs from ``baseline`` (True; at once if it does already) or ``timeout``
    seconds pass (False). A probe that fails counts as no change."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if probe() != baseline:
                return True
        except Exception as exc:  # noqa: BLE001 - the control plane busy or restarting: the next tick says more
            log.debug("probe failed: %s", exc)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(interval, remaining))


def load_data_flow_libraries() -> None:
    """Import what a data_flow run needs (Lance takes about a second), as a daemon that has been
    running for a while has: the first recording's run should not pay for it."""
    try:
        import daft  # noqa: F401
        import lance  # noqa: F401

        import axon_dagster.ingest.mcap_to_lance  # noqa: F401
        import axon_dagster.inspection.inspector  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - the run imports them again and says what is wrong
        log.warning("could not load the data flow's libraries ahead of time: %s", exc)


def result_rows(client, defs, order_id: str) -> list[dict[str, Any]]:
    """One row per task, with the published copy's digest re-verified."""
    from axon_dagster.client import ControlPlaneError
    from axon_dagster.client.orders import all_tasks
    from axon_dagster.services.data_flow import verify_cloud_copy

    store = defs.resources["object_store"].store()
    rows = []
    for task in all_tasks(client, order_id=order_id):
        try:
            dataset = client.get_dataset(task["task_id"])
        except ControlPlaneError:
            dataset = {}
        row = {
            "task_id": task["task_id"],
            "order_id": task["order_id"],
            "batch_id": task["batch_id"],
            "robot_id": task.get("robot_id"),
            "status": task["status"],
            "qc_score": dataset.get("qc_score"),
            "approved": dataset.get("qc_outcome") == "approved",
            "cloud_path": dataset.get("cloud_uri"),
            "dataset_digest": dataset.get("dataset_digest"),
            "failure_reason": task.get("failure_reason"),
            "seconds": _seconds(task),
            "digest_verified": False,
        }
        if task["status"] == "UPLOADED":
            try:
                row["digest_verified"] = bool(verify_cloud_copy(store, task, dataset))
            except Exception as exc:  # a row that says why, not a demo that dies at the end
                row["verify_error"] = f"{type(exc).__name__}: {exc}"
                log.error("verifying the published copy of %s: %s", task["task_id"], row["verify_error"])
        rows.append(row)
    return rows


def _seconds(task: dict) -> float | None:
    from datetime import datetime

    try:
        created = datetime.fromisoformat(task["created_at"])
        updated = datetime.fromisoformat(task["updated_at"])
        return round((updated - created).total_seconds(), 1)
    except (KeyError, TypeError, ValueError):
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m axon_dagster.demo.cloud", description=__doc__.split("\n\n")[0])
    parser.add_argument("--order", required=True, help="the order_processing config, as JSON")
    parser.add_argument("--timeout", type=float, required=True, help="seconds until the results are written, done or not")
    parser.add_argument("--result", type=Path, required=True, help="where to write the per-task rows (JSON)")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if logging.getLogger().getEffectiveLevel() > logging.INFO:  # the data flow's steps, a line each (what took how long)
        logging.getLogger("axon_dagster.services").setLevel(logging.INFO)
    import warnings

    warnings.filterwarnings("ignore", message=".*is currently in beta.*")
    result = run(json.loads(args.order), args.timeout)
    tmp = args.result.with_name(args.result.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2))
    tmp.replace(args.result)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Metrics of the Dagster side: data-flow stage durations, QC scores and outcomes, finished and
failed runs per job, alerts raised.

Where they are exported — a scrape endpoint, not the Pushgateway
-----------------------------------------------------------------
Dagster runs each job in a worker that exits when the run ends (a subprocess under ``dagster
dev``, a pod under the K8sRunLauncher). Metrics observed *inside* ops would die with the worker
before a scrape; the usual fix, the Pushgateway, fits badly here: every worker would push its own
group of counters that start at zero and are seen once, so ``rate()``/``increase()`` miss each
run's observations (a series' first sample has no predecessor) and the groups pile up until
someone deletes them.

So the run workers observe nothing. Every number below is derived **after** a run, from records
Dagster already keeps durably — the run's status, its step start/end times, the QC asset-check
evaluation it logged — by one sensor (:func:`axon_dagster.observability.sensors.run_failure_alert_sensor`)
that runs in the long-lived code-location process and walks finished runs by cursor, so each run
is counted exactly once whatever the run launcher. That process serves the default
``prometheus_client`` registry on ``AXON_METRICS_PORT`` (:func:`serve_metrics`), which Prometheus
scrapes like any service. The same endpoint re-exports the uploader's ``axon_upload_*`` series
when uploads run in that process (the demo's in-process runs do). The review queue (length, age)
is exported by the control-plane API instead, because its store holds the queue.

The ``observe_*`` functions are the recording surface (typed, bounded labels). The sensor calls
them; call them directly only from code that runs in a long-lived, scraped process, never from
ops as well as the sensor (that would count twice).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

# Runs are labelled `dagster_job`, not `job`: `job` is Prometheus' own target label.
# Data-flow stages and the op that runs each (the data_flow job's step keys).
STAGE_OF_STEP = {
    "ingest_staged_recording": "stage",
    "inspect_staged_dataset": "inspect",
    "settle_dataset": "upload",
}
STAGES = tuple(dict.fromkeys(STAGE_OF_STEP.values()))
QC_OUTCOMES = ("approved", "needs_review", "rejected")
RUN_STATUSES = ("success", "failure", "canceled")

# Staging is seconds (hardlinks) to minutes (copies); uploads of GB-sized datasets take up to hours.
STAGE_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 3 * 3600)
QC_SCORE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)

STAGE_DURATION = Histogram(
    "axon_dataflow_stage_duration_seconds",
    "Duration of a data-flow stage (stage, inspect, upload) per run, by outcome (ok, error)",
    ["stage", "outcome"],
    buckets=STAGE_BUCKETS,
)
QC_SCORE = Histogram("axon_qc_score", "Automated QC score of inspected datasets (0..1)", buckets=QC_SCORE_BUCKETS)
QC_OUTCOMES_TOTAL = Counter(
    "axon_qc_outcomes", "Inspection outcomes (approved, needs_review, rejected)", ["outcome"]
)  # exposed as axon_qc_outcomes_total
QC_CHECK_FAILURES = Counter(
    "axon_qc_check_failures", "Failed QC checks, by check name (a dataset can fail several)", ["check"]
)  # exposed as axon_qc_check_failures_total
RUNS_FINISHED = Counter(
    "axon_dagster_runs_finished", "Finished Dagster runs, by job and status (success, failure, canceled)", ["dagster_job", "status"]
)  # exposed as axon_dagster_runs_finished_total
RUN_FAILURES = Counter("axon_dagster_run_failures", "Failed Dagster runs, by job", ["dagster_job"])  # ..._total
RUN_FAILURE_RATIO = Gauge(
    "axon_dagster_run_failure_ratio", "Failed / finished runs of a job over the alert sensor's window", ["dagster_job"]
)
ALERT_FIRING = Gauge("axon_dagster_alert_firing", "1 while the run-failure alert sensor alerts on a job", ["dagster_job"])
ALERTS_TOTAL = Counter(
    "axon_dagster_alerts", "Alerts the run-failure alert sensor raised, by job", ["dagster_job"]
)  # exposed as axon_dagster_alerts_total

UPLOAD_GRANTS = Counter("axon_upload_grants", "Upload grants the grant sensor issued to robots")  # ..._total
UPLOAD_GRANT_SKIPS = Counter(
    "axon_upload_grant_skips", "Candidates the grant sensor left waiting, by reason (robot_busy, outside_window, ...)", ["reason"]
)  # exposed as axon_upload_grant_skips_total
UPLOAD_QUEUE_CANDIDATES = Gauge("axon_upload_queue_candidates", "Recorded datasets waiting for an upload grant (last tick)")

# The QC check names are the inspection's fixed set; anything else is folded so a bad report
# cannot blow up the label set.
MAX_CHECK_NAME = 64


def observe_stage(stage: str, seconds: float, ok: bool = True) -> None:
    """One data-flow stage took ``seconds`` (``stage`` is one of :data:`STAGES`)."""
    if stage not in STAGES:
        raise ValueError(f"unknown data-flow stage {stage!r}; expected one of {', '.join(STAGES)}")
    STAGE_DURATION.labels(stage, "ok" if ok else "error").observe(max(seconds, 0.0))


def observe_qc(score: float | None, outcome: str, failed_checks: Iterable[str] = ()) -> None:
    """One dataset was inspected: its score (None when the report has none), its outcome (one of
    :data:`QC_OUTCOMES`) and the names of the checks it failed."""
    if outcome not in QC_OUTCOMES:
        raise ValueError(f"unknown QC outcome {outcome!r}; expected one of {', '.join(QC_OUTCOMES)}")
    if score is not None:
        QC_SCORE.observe(min(max(float(score), 0.0), 1.0))
    QC_OUTCOMES_TOTAL.labels(outcome).inc()
    for check in failed_checks:
        QC_CHECK_FAILURES.labels(check if len(check) <= MAX_CHECK_NAME else "other").inc()


def observe_run_finished(job: str, status: str) -> None:
    """A run of ``job`` ended with ``status`` (one of :data:`RUN_STATUSES`). Job names are the
    code location's (bounded)."""
    if status not in RUN_STATUSES:
        raise ValueError(f"unknown run status {status!r}; expected one of {', '.join(RUN_STATUSES)}")
    RUNS_FINISHED.labels(job, status).inc()
    if status == "failure":
        RUN_FAILURES.labels(job).inc()
    else:
        RUN_FAILURES.labels(job)  # the series exists at 0, so failure ratios have a denominator


# ------------------------------------------------------------------------------- the endpoint

_server_lock = threading.Lock()
_served_port: int | None = None


def serve_metrics(port: int, addr: str = "0.0.0.0") -> int:
    """Serve the default registry on ``port`` once per process (later calls are no-ops and
    return the port already served). ``port=0`` picks a free port (tests)."""
    global _served_port
    with _server_lock:
        if _served_port is None:
            server, _thread = start_http_server(port, addr=addr, registry=REGISTRY)
            _served_port = server.server_address[1]
            log.info("Dagster-side metrics on http://%s:%d/metrics", addr, _served_port)
        return _served_port


def serve_metrics_from_env() -> int | None:
    """Start the endpoint when ``AXON_METRICS_PORT`` is set (``AXON_METRICS_ADDR``, default all
    interfaces). Failing to bind is logged, not raised: metrics never stop orchestration."""
    from axon_dagster.settings.code_location import MetricsSettings

    try:
        settings = MetricsSettings.load()
    except ValueError as exc:  # names the variable and the value
        log.warning("metrics endpoint not started: %s", exc)
        return None
    if settings.port is None:
        return None
    try:
        return serve_metrics(settings.port, settings.addr)
    except (OSError, ValueError) as exc:
        log.warning("metrics endpoint not started on AXON_METRICS_PORT=%s: %s", settings.port, exc)
        return None


def metric_names() -> set[str]:
    """Every sample name family this module defines (for the dashboard/alert name check)."""
    return {m.name for c in _COLLECTORS for m in c.describe()}


_COLLECTORS = (
    UPLOAD_GRANTS,
    UPLOAD_GRANT_SKIPS,
    UPLOAD_QUEUE_CANDIDATES,
    STAGE_DURATION,
    QC_SCORE,
    QC_OUTCOMES_TOTAL,
    QC_CHECK_FAILURES,
    RUNS_FINISHED,
    RUN_FAILURES,
    RUN_FAILURE_RATIO,
    ALERT_FIRING,
    ALERTS_TOTAL,
)

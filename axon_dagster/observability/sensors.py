"""The run-failure alert sensor (the reference design's ``recording_failure_sensor``).

Each tick it walks the runs that finished since its cursor, once each:

- counts them by job and status (``axon_dagster_runs_finished_total``, ``..._run_failures_total``);
- for data-flow runs, reads the step times and the QC asset-check evaluation Dagster recorded and
  feeds :func:`observe_stage` / :func:`observe_qc` (see :mod:`.metrics` for why metrics are derived
  here and not observed in the ops);
- computes each job's failure ratio over a sliding window and, when it crosses the threshold with
  enough runs to mean something, raises an alert: an ERROR log line, ``axon_dagster_alerts_total``
  and ``axon_dagster_alert_firing``, and a JSON POST to an optional webhook. It alerts on the
  transition only (not every tick) and logs when the job recovers.

It also makes sure the metrics endpoint is up (``AXON_METRICS_PORT``): sensors run in the
long-lived code-location process, which is the one Prometheus should scrape.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import dagster as dg
import httpx

from . import metrics

log = logging.getLogger(__name__)

_FINISHED = {
    dg.DagsterRunStatus.SUCCESS: "success",
    dg.DagsterRunStatus.FAILURE: "failure",
    dg.DagsterRunStatus.CANCELED: "canceled",
}
_RECENT_IDS = 2000  # run ids kept in the cursor to never count a run twice (runs get re-updated)
_PAGE = 500
# Same advice as the AxonDataFlowFailureRateHigh rule in monitoring/rules/axon-alerts.yml.
RUNBOOK = (
    "Open the failed runs in the Dagster UI (filter by job, status failure) and group them by failing step: "
    "stage = edge cache/disk, inspect = Ray/Daft, upload = object store. Infrastructure retries are already exhausted."
)


class RunFailureAlertResource(dg.ConfigurableResource):
    """Alert policy. From the environment: ``AXON_ALERT_FAILURE_RATIO``, ``AXON_ALERT_WINDOW_SECONDS``,
    ``AXON_ALERT_MIN_RUNS``, ``AXON_ALERT_WEBHOOK_URL`` (see :meth:`from_env`)."""

    failure_ratio_threshold: float = 0.2  # alert above this failed/finished ratio ...
    window_seconds: int = 1800  # ... over runs that ended in this window ...
    min_runs: int = 5  # ... once at least this many ended (one failure in two runs is noise)
    webhook_url: str = ""  # "" = no webhook; a JSON POST otherwise (Slack/Alertmanager-style bridges)
    webhook_timeout_seconds: float = 5.0
    data_flow_jobs: list[str] = ["data_flow"]  # runs whose steps and QC feed the data-flow metrics

    @classmethod
    def from_env(cls, alerts: "AlertSettings | None" = None) -> "RunFailureAlertResource":
        from axon_dagster.settings.code_location import AlertSettings

        alerts = alerts or AlertSettings.load()
        return cls(
            failure_ratio_threshold=alerts.failure_ratio,
            window_seconds=alerts.window_seconds,
            min_runs=alerts.min_runs,
            webhook_url=alerts.webhook_url,
        )


@dataclass(frozen=True)
class JobAlert:
    job: str
    failed: int
    finished: int
    ratio: float
    threshold: float
    window_seconds: int

    def payload(self) -> dict[str, Any]:
        return {
            "alert": "AxonDagsterRunFailureRateHigh",
            "job": self.job,
            "failed": self.failed,
            "finished": self.finished,
            "failure_ratio": round(self.ratio, 4),
            "threshold": self.threshold,
            "window_seconds": self.window_seconds,
            "summary": f"{self.failed} of {self.finished} {self.job} runs failed in the last {self.window_seconds}s",
            "runbook": RUNBOOK,
        }


@dg.sensor(
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Counts finished runs into metrics and alerts (log, metric, webhook) on a high failure rate.",
)
def run_failure_alert_sensor(context: dg.SensorEvaluationContext, run_failure_alert: RunFailureAlertResource) -> dg.SkipReason:
    metrics.serve_metrics_from_env()
    state = _Cursor.load(context.cursor)
    now = time.time()
    counted = _count_new_runs(context.instance, state, run_failure_alert.data_flow_jobs)
    alerts, recovered = _evaluate_window(context.instance, state, run_failure_alert, now)
    for alert in alerts:
        context.log.error(alert.payload()["summary"] + f" (ratio {alert.ratio:.0%} > {alert.threshold:.0%})")
        metrics.ALERTS_TOTAL.labels(alert.job).inc()
        _post_webhook(run_failure_alert, alert, context.log)
    for job in recovered:
        context.log.info(f"{job}: failure ratio back under the threshold")
    context.update_cursor(state.dump())
    return dg.SkipReason(f"counted {counted} finished run(s); alerting on: {', '.join(sorted(state.firing)) or 'none'}")


# ------------------------------------------------------------------------------ the steps


@dataclass
class _Cursor:
    after: float  # update timestamp of the newest run counted
    recent: list[str]  # ids of runs counted lately, newest last
    firing: set[str]
    fresh: bool = False  # no cursor yet: take note of runs, count none

    @classmethod
    def load(cls, raw: str | None) -> "_Cursor":
        if not raw:
            # First tick ever: count from now, not the whole history (a restart of the metrics
            # would otherwise re-count every run the instance ever had).
            return cls(after=time.time(), recent=[], firing=set(), fresh=True)
        data = json.loads(raw)
        return cls(after=float(data["after"]), recent=list(data.get("recent", [])), firing=set(data.get("firing", [])))

    def dump(self) -> str:  # (fresh is not kept: the next tick counts)
        return json.dumps({"after": self.after, "recent": self.recent[-_RECENT_IDS:], "firing": sorted(self.firing)})


def _finished_since(instance: dg.DagsterInstance, after: float) -> list[Any]:
    return list(
        instance.get_run_records(
            filters=dg.RunsFilter(statuses=list(_FINISHED), updated_after=datetime.fromtimestamp(after, timezone.utc)),
            limit=_PAGE,
            order_by="update_timestamp",
            ascending=True,
        )
    )


def _count_new_runs(instance: dg.DagsterInstance, state: _Cursor, data_flow_jobs: Iterable[str]) -> int:
    seen = set(state.recent)
    data_flow_jobs = set(data_flow_jobs)
    counted = 0
    for record in _finished_since(instance, state.after - 1.0):  # 1 s overlap: timestamps are not unique
        run = record.dagster_run
        if run.run_id in seen:
            continue
        if not state.fresh:
            metrics.observe_run_finished(run.job_name, _FINISHED[run.status])
            if run.job_name in data_flow_jobs:
                _observe_data_flow_run(instance, run.run_id)
        seen.add(run.run_id)
        state.recent.append(run.run_id)
        state.after = max(state.after, _ts(record.update_timestamp))
        counted += 0 if state.fresh else 1
    return counted


def _observe_data_flow_run(instance: dg.DagsterInstance, run_id: str) -> None:
    """Stage durations from Dagster's step stats; QC from the asset-check evaluation the inspect
    op logged (metadata ``qc_score``, ``outcome``, ``check.<name>``)."""
    try:
        for step in instance.get_run_step_stats(run_id):
            stage = metrics.STAGE_OF_STEP.get(step.step_key)
            if stage and step.start_time and step.end_time:
                ok = step.status is not None and step.status.value == "SUCCESS"
                metrics.observe_stage(stage, step.end_time - step.start_time, ok=ok)
        records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
        for rec in records:
            event = rec.event_log_entry.dagster_event
            evaluation = event.event_specific_data if event is not None else None
            meta = _plain(getattr(evaluation, "metadata", None) or {})
            if meta.get("outcome") in metrics.QC_OUTCOMES:
                failed = [k.removeprefix("check.") for k, v in meta.items() if k.startswith("check.") and v is False]
                score = meta.get("qc_score")
                metrics.observe_qc(float(score) if isinstance(score, (int, float)) else None, meta["outcome"], failed)
    except Exception:  # metrics must never break the sensor (and so the alerting)
        log.exception("could not derive data-flow metrics of run %s", run_id)


def _evaluate_window(
    instance: dg.DagsterInstance, state: _Cursor, policy: RunFailureAlertResource, now: float
) -> tuple[list[JobAlert], list[str]]:
    since = now - policy.window_seconds
    finished: dict[str, int] = {}
    failed: dict[str, int] = {}
    for record in _finished_since(instance, since):
        run = record.dagster_run
        ended = record.end_time or _ts(record.update_timestamp)
        if ended < since:
            continue
        finished[run.job_name] = finished.get(run.job_name, 0) + 1
        if run.status is dg.DagsterRunStatus.FAILURE:
            failed[run.job_name] = failed.get(run.job_name, 0) + 1
    alerts: list[JobAlert] = []
    for job in sorted(set(finished) | state.firing):
        n = finished.get(job, 0)
        ratio = failed.get(job, 0) / n if n else 0.0
        metrics.RUN_FAILURE_RATIO.labels(job).set(ratio)
        firing = n >= policy.min_runs and ratio > policy.failure_ratio_threshold
        metrics.ALERT_FIRING.labels(job).set(1 if firing else 0)
        if firing and job not in state.firing:
            alerts.append(JobAlert(job, failed.get(job, 0), n, ratio, policy.failure_ratio_threshold, policy.window_seconds))
    now_firing = {a.job for a in alerts} | {j for j in state.firing if _still_firing(j, finished, failed, policy)}
    recovered = sorted(state.firing - now_firing)
    state.firing = now_firing
    return alerts, recovered


def _still_firing(job: str, finished: Mapping[str, int], failed: Mapping[str, int], policy: RunFailureAlertResource) -> bool:
    n = finished.get(job, 0)
    return n >= policy.min_runs and failed.get(job, 0) / n > policy.failure_ratio_threshold


def _post_webhook(policy: RunFailureAlertResource, alert: JobAlert, logger: Any) -> None:
    if not policy.webhook_url:
        return
    try:
        response = httpx.post(policy.webhook_url, json=alert.payload(), timeout=policy.webhook_timeout_seconds)
        response.raise_for_status()
    except httpx.HTTPError as exc:  # the log line and the metric already carry the alert
        logger.warning(f"alert webhook failed: {exc}")


def _plain(meta: Mapping[str, Any]) -> dict[str, Any]:
    return {k: getattr(v, "value", v) for k, v in meta.items()}


def _ts(value: Any) -> float:
    return value.timestamp() if isinstance(value, datetime) else float(value)

"""Run statuses the sensors ask the instance about, named once; the alert a sensor raises once when
it gives a dataset up after its attempts."""

import json
from dataclasses import dataclass
from typing import Any

import dagster as dg

# A run that may still do work: never launch a second one beside it.
ACTIVE_RUN_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
# A run that ended without doing its work.
FAILED_RUN_STATUSES = [dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]

GIVEN_UP_KEPT = 1000  # dataset ids remembered in a sensor's cursor as already alerted on


@dataclass(frozen=True)
class GivenUp:
    """The alert raised once when a sensor stops launching ``job`` for a dataset (payload shape of
    the run-failure alerts)."""

    job: str
    dataset_id: str
    attempts: int
    last_failure: str

    @property
    def summary(self) -> str:
        return (
            f"{self.job} of dataset {self.dataset_id} given up after {self.attempts} attempt(s) (max attempts); "
            f"last failure: {self.last_failure}"
        )

    def payload(self) -> dict[str, Any]:
        return {
            "alert": "AxonDagsterDatasetGivenUp",
            "job": self.job,
            "dataset_id": self.dataset_id,
            "attempts": self.attempts,
            "last_failure": self.last_failure,
            "summary": self.summary,
            "runbook": f"Fix the cause (object store, digest, staging), then relaunch the {self.job} run "
            f"for {self.dataset_id} from the Dagster UI or raise the maximum of attempts.",
        }


def given_up_cursor(raw: str | None) -> list[str]:
    """Dataset ids a sensor's cursor remembers as already alerted on."""
    if not raw:
        return []
    try:
        return [str(x) for x in json.loads(raw).get("given_up", [])]
    except (ValueError, AttributeError):
        return []


def given_up_cursor_text(alerted: list[str]) -> str:
    return json.dumps({"given_up": alerted[-GIVEN_UP_KEPT:]})


def raise_given_up(context: dg.SensorEvaluationContext, alert: GivenUp) -> None:
    """Raise the alert the run-failure alert sensor's way: a log line, the alerts counter, its webhook."""
    from axon_dagster.observability import metrics
    from axon_dagster.observability.sensors import RunFailureAlertResource, _post_webhook

    context.log.warning(alert.summary)
    metrics.ALERTS_TOTAL.labels(alert.job).inc()
    _post_webhook(RunFailureAlertResource.from_env(), alert, context.log)

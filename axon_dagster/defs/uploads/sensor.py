"""``upload_grant_sensor``: grants robots their uploads through the control plane (issue 13).

Each tick: expire the grants that ran out (their datasets are candidates again), read the upload
queue (RECORDED datasets whose edge gate passed, by order priority then age; the active grants;
every robot's reported uplink), decide with the pure rules of :mod:`.grants`
(``max_grants_per_robot``, the robot's upload windows, ``min_bandwidth_mbps`` of its *reported*
uplink), and grant each chosen dataset for ``grant_ttl_seconds``. The robot sees its grant on its
next task pull and uploads into staging; the control plane marks the dataset STAGED, and
``staged_dataset_sensor`` starts its data flow. A grant is idempotent on the control plane's side
(the same grant while an unexpired one exists), so a tick repeated after a crash grants nothing twice.

The tick's skip reason says what was granted and why the rest waits; counters
``axon_upload_grants_total`` and ``axon_upload_grant_skips_total{reason}`` and the gauge
``axon_upload_queue_candidates`` carry the same for Prometheus. The cursor keeps the last tick's
counts (``{"granted": n, "skipped": {...}}``) for the UI.
"""

import json
from datetime import datetime, timezone

import dagster as dg
from pydantic import Field

from axon_dagster.client import ControlPlaneError
from axon_dagster.observability import metrics

from ..resources import ControlPlaneResource
from .grants import GrantRules, plan_grants

QUEUE_LIMIT = 1000


class UploadGrantPolicy(dg.ConfigurableResource):
    """When robots may upload: the grant rules and the grants' lifetime."""

    max_grants_per_robot: int = Field(default=1, ge=1, description="Active upload grants a robot may hold at once")
    min_bandwidth_mbps: float = Field(default=10.0, ge=0, description="Grant only while the robot reports at least this uplink")
    grant_ttl_seconds: int = Field(default=900, ge=10, description="How long a grant lasts (re-granted when it expires)")
    max_grants_per_tick: int = Field(default=100, ge=1)

    def rules(self) -> GrantRules:
        return GrantRules(self.max_grants_per_robot, self.min_bandwidth_mbps, self.max_grants_per_tick)


def upload_grant_policy_from_env(upload=None) -> UploadGrantPolicy:
    """From ``settings.upload`` (an ``UploadSettings``; loaded now when not given)."""
    from axon_dagster.settings.code_location import UploadSettings

    s = upload or UploadSettings.load()
    return UploadGrantPolicy(max_grants_per_robot=s.max_grants_per_robot, min_bandwidth_mbps=s.min_bandwidth_mbps,
                             grant_ttl_seconds=s.grant_ttl_seconds)


def evaluate_grants(context: dg.SensorEvaluationContext, control_plane: ControlPlaneResource, policy: UploadGrantPolicy,
                    now: datetime | None = None) -> dg.SensorResult:
    """The sensor body, callable without the decorator (tests, the demo's driver)."""
    with control_plane.client() as client:
        expired = client.expire_upload_grants()
        queue = client.upload_queue(limit=QUEUE_LIMIT)
        plan = plan_grants(queue, policy.rules(), now or datetime.now(timezone.utc))
        granted: list[str] = []
        for candidate in plan.grant:
            try:
                grant = client.grant_upload(candidate["task_id"], ttl_seconds=policy.grant_ttl_seconds)
            except ControlPlaneError as exc:
                if exc.status_code >= 500:
                    raise  # unavailable: the next tick tries again
                plan.skip("refused", f"{candidate['dataset_id']}: {exc}")  # e.g. it changed state meanwhile
                continue
            granted.append(f"{candidate['dataset_id']} -> {grant['robot_id']} (p{candidate.get('priority', 0)}, until {grant['expires_at']})")
    metrics.UPLOAD_QUEUE_CANDIDATES.set(len(queue.get("candidates") or []))
    metrics.UPLOAD_GRANTS.inc(len(granted))
    for reason, n in plan.skipped.items():
        metrics.UPLOAD_GRANT_SKIPS.labels(reason).inc(n)
    if granted:
        context.log.info(f"granted {len(granted)} upload(s): " + ", ".join(granted[:20]))
    if plan.unmeasured:
        context.log.info(f"robots without a measured uplink (granted anyway): {sorted(plan.unmeasured)[:20]}")
    note = f"{len(granted)} upload(s) granted, {expired} expired grant(s) released"
    if plan.skipped:
        note += "; waiting: " + "; ".join(f"{n} {reason} ({plan.examples[reason]})" for reason, n in plan.skipped.items())
    cursor = json.dumps({"granted": len(granted), "expired": expired, "skipped": dict(plan.skipped)}, sort_keys=True)
    return dg.SensorResult(skip_reason=dg.SkipReason(note), cursor=cursor)


@dg.sensor(
    name="upload_grant_sensor",
    minimum_interval_seconds=10,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Grants robots their uploads: order priority then age, per robot, inside its windows, above min_bandwidth_mbps.",
)
def upload_grant_sensor(context: dg.SensorEvaluationContext, control_plane: ControlPlaneResource, upload_grants: UploadGrantPolicy):
    return evaluate_grants(context, control_plane, upload_grants)

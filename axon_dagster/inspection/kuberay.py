"""KubeRay runner: inspect a dataset as a ``ray.io/v1`` RayJob on an existing RayCluster. (Over
~400 lines on purpose: the RayJob manifest, its submission, polling and clean-up are one protocol
with KubeRay, each step reading what the previous one wrote.)

The RayJob runs ``python -m axon_dagster.inspection.job --dataset <uri> --requirements <json>
--output <uri>`` on the axon-cloud chart's RayCluster (selected with ``spec.clusterSelector``),
submitted by KubeRay's submitter pod with Ray token auth (``RAY_AUTH_MODE=token``, token from a
Secret, never inlined in the manifest). The runner creates the RayJob through
``kubernetes.client.CustomObjectsApi``, polls ``status.jobStatus`` / ``status.jobDeploymentStatus``
until it ends or times out, and deletes it afterwards (RayJobs that target an existing cluster
are not garbage-collected by KubeRay).

Outcomes:
  * SUCCEEDED -> :class:`KubeRayJobResult`; the inspection report is at ``output_uri``.
  * anything else (FAILED, STOPPED, deployment failure, timeout, API refusal) -> a subclass of
    :class:`InspectionInfrastructureError`. None of these says anything about the data: the
    caller fails the run and retries, and never records the dataset as rejected because of it.

Importing this module needs neither a cluster nor the ``kubernetes`` package; the client is
imported when a runner without an injected API first talks to Kubernetes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import shlex
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from axon_dagster.settings.inspection import KubeRaySettings

from .errors import InspectionInfrastructureError
from .job_output import ENTRYPOINT_MODULE

logger = logging.getLogger(__name__)

RAY_GROUP = "ray.io"
RAY_VERSION = "v1"
RAYJOB_PLURAL = "rayjobs"
RAYCLUSTER_PLURAL = "rayclusters"
CLUSTER_LABEL = "ray.io/cluster"
# Lets the submitter pod through the axon-cloud chart's Ray NetworkPolicy.
RAY_CLIENT_LABEL = "axon.io/ray-client"

# KubeRay v1 status values (RayJob.status.jobStatus / .jobDeploymentStatus).
JOB_SUCCEEDED, JOB_FAILED, JOB_STOPPED = "SUCCEEDED", "FAILED", "STOPPED"
DEPLOYMENT_FAILED = {"Failed", "ValidationFailed"}
DEPLOYMENT_STOPPED = {"Suspended"}
DEPLOYMENT_COMPLETE = "Complete"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
# KubeRay derives the submitter Job's and Ray job id's names from the RayJob name; keep room.
MAX_RAYJOB_NAME = 47
SA_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
# Consecutive failed status reads tolerated before giving up (API server blips, restarts).
MAX_STATUS_READ_ERRORS = 5

__all__ = [
    "InspectionInfrastructureError",
    "KubeRayJobError",
    "KubeRayJobFailed",
    "KubeRayJobResult",
    "KubeRayJobStopped",
    "KubeRayJobTimeout",
    "KubeRayRunner",
    "KubeRayRunnerConfig",
    "KubeRaySubmitError",
    "build_entrypoint",
    "build_rayjob_manifest",
    "interpret_status",
    "rayjob_name",
]


# ------------------------------------------------------------------------------------ errors

class KubeRayJobError(InspectionInfrastructureError):
    """The inspection RayJob did not produce a result. Infrastructure, not a verdict on the data."""

    def __init__(self, dataset_path: str, reason: str, *, job_name: str | None = None,
                 job_status: str | None = None, deployment_status: str | None = None):
        self.job_name = job_name
        self.job_status = job_status or None
        self.deployment_status = deployment_status or None
        where = f"RayJob {job_name}: " if job_name else ""
        super().__init__(dataset_path, where + reason)


class KubeRaySubmitError(KubeRayJobError):
    """Kubernetes refused or could not take the RayJob (RBAC, missing CRD or RayCluster, API down)."""


class KubeRayJobFailed(KubeRayJobError):
    """The Ray job (or KubeRay's deployment of it) failed."""


class KubeRayJobStopped(KubeRayJobError):
    """The Ray job was stopped, suspended or deleted before it finished."""


class KubeRayJobTimeout(KubeRayJobError):
    """The Ray job did not finish in time; it has been stopped."""


# ------------------------------------------------------------------------------------ config

def _default_submitter_resources() -> dict[str, dict[str, str]]:
    return {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}}


@dataclass(frozen=True)
class KubeRayRunnerConfig:
    """Where and how to run inspection RayJobs. :meth:`from_env` reads what the axon-cloud chart
    puts in its env ConfigMap."""

    namespace: str
    cluster_name: str
    # Secret holding the Ray auth token (the chart's secrets.runtime).
    auth_secret_name: str
    # Image of the submitter pod (needs the `ray` CLI). None = the RayCluster head's image, read
    # at submit time, so the submitter always matches the cluster's Ray version.
    image: str | None = None
    auth_secret_key: str = "RAY_AUTH_TOKEN"
    timeout_s: float = 3600.0
    poll_interval_s: float = 5.0
    delete_finished: bool = True
    labels: Mapping[str, str] = field(default_factory=dict)
    submitter_resources: Mapping[str, Mapping[str, str]] = field(default_factory=_default_submitter_resources)
    # Matches the axon-ray image's `ray` user (rayproject/ray: uid 1000, gid 100).
    run_as_user: int = 1000
    run_as_group: int = 100

    def __post_init__(self) -> None:
        for attr, pattern in (("namespace", _DNS_LABEL), ("cluster_name", _DNS_LABEL),
                              ("auth_secret_name", _DNS_SUBDOMAIN)):
            value = getattr(self, attr)
            if not isinstance(value, str) or not pattern.match(value):
                raise ValueError(f"KubeRayRunnerConfig.{attr} must be a Kubernetes name, got {value!r}")
        if self.image is not None and (not isinstance(self.image, str) or not self.image.strip()):
            raise ValueError("KubeRayRunnerConfig.image must be None or an image reference")
        if not self.auth_secret_key:
            raise ValueError("KubeRayRunnerConfig.auth_secret_key must not be empty")
        if not self.timeout_s > 0 or not self.poll_interval_s > 0:
            raise ValueError("KubeRayRunnerConfig timeout_s and poll_interval_s must be positive")
        if self.run_as_user == 0:
            raise ValueError("KubeRayRunnerConfig.run_as_user must not be 0: the submitter never runs as root")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> KubeRayRunnerConfig:
        settings = KubeRaySettings.load(environ)
        namespace = settings.namespace
        if not namespace and os.path.exists(SA_NAMESPACE_FILE):
            with open(SA_NAMESPACE_FILE) as fh:
                namespace = fh.read().strip()
        return cls(
            namespace=namespace or "default",
            cluster_name=settings.cluster_name,
            image=settings.image,
            auth_secret_name=settings.auth_secret_name,
            timeout_s=settings.timeout_seconds,
            poll_interval_s=settings.poll_seconds,
        )


# ------------------------------------------------------------------------------------ manifest

def _requirements_json(requirements: Any) -> str:
    """Validated requirements, every key pinned (the cluster's defaults cannot drift from ours).
    Raises ValueError (PlanningError for unknown or bad keys) before anything is submitted."""
    from .checks import checked_requirements

    if isinstance(requirements, str):
        try:
            requirements = json.loads(requirements)
        except json.JSONDecodeError as exc:
            raise ValueError(f"requirements is not valid JSON: {exc}") from None
    elif hasattr(requirements, "to_dict"):
        requirements = requirements.to_dict()
    if not isinstance(requirements, Mapping):
        raise ValueError(f"requirements must be a mapping (or its JSON), got {type(requirements).__name__}")
    return json.dumps(checked_requirements(requirements).to_dict(), sort_keys=True, separators=(",", ":"))


def build_entrypoint(dataset_uri: str, requirements: Any, output_uri: str) -> str:
    """The shell command the Ray job runs; every argument is shell-quoted."""
    for label, value in (("dataset_uri", dataset_uri), ("output_uri", output_uri)):
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{label} must be a non-empty string")
    argv = ["python", "-m", ENTRYPOINT_MODULE, "--dataset", dataset_uri,
            "--requirements", _requirements_json(requirements), "--output", output_uri]
    return shlex.join(argv)


def rayjob_name(dataset_uri: str, output_uri: str, nonce: str | None = None) -> str:
    """``axon-inspect-<hash of dataset+output>-<nonce>``: readable, unique per attempt, <= 47 chars."""
    digest = hashlib.sha256(f"{dataset_uri}\0{output_uri}".encode()).hexdigest()[:10]
    nonce = secrets.token_hex(3) if nonce is None else nonce
    name = f"axon-inspect-{digest}-{nonce}".lower()
    if len(name) > MAX_RAYJOB_NAME or not _DNS_LABEL.match(name):
        raise ValueError(f"invalid RayJob name {name!r}")
    return name


def build_rayjob_manifest(config: KubeRayRunnerConfig, *, name: str, dataset_uri: str, requirements: Any,
                          output_uri: str, labels: Mapping[str, str] | None = None,
                          image: str | None = None) -> dict[str, Any]:
    """A ``ray.io/v1`` RayJob that runs the inspection entrypoint on ``config.cluster_name``.
    ``image`` (submitter image) overrides ``config.image``; one of them is required."""
    if len(name) > MAX_RAYJOB_NAME or not _DNS_LABEL.match(name):
        raise ValueError(f"RayJob name must be a DNS label of at most {MAX_RAYJOB_NAME} chars, got {name!r}")
    image = image or config.image
    if not image:
        raise ValueError("no submitter image: set KubeRayRunnerConfig.image or pass the RayCluster head image")
    entrypoint = build_entrypoint(dataset_uri, requirements, output_uri)
    meta_labels = {
        "app.kubernetes.io/name": "axon-inspection",
        "app.kubernetes.io/component": "inspection",
        "app.kubernetes.io/part-of": "axon-dagster",
        "app.kubernetes.io/managed-by": "axon-dagster",
        "axon.io/dataset-hash": hashlib.sha256(dataset_uri.encode()).hexdigest()[:16],
        **dict(config.labels),
        **dict(labels or {}),
    }
    security = {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    return {
        "apiVersion": f"{RAY_GROUP}/{RAY_VERSION}",
        "kind": "RayJob",
        "metadata": {
            "name": name,
            "namespace": config.namespace,
            "labels": meta_labels,
            "annotations": {"axon.io/dataset-uri": dataset_uri, "axon.io/output-uri": output_uri},
        },
        "spec": {
            "entrypoint": entrypoint,
            "clusterSelector": {CLUSTER_LABEL: config.cluster_name},
            "submissionMode": "K8sJobMode",
            # Never tear down the shared cluster when this job ends.
            "shutdownAfterJobFinishes": False,
            # KubeRay gives up on its own if this runner dies before its timeout fires.
            "activeDeadlineSeconds": int(config.timeout_s) + 120,
            "submitterPodTemplate": {
                "metadata": {"labels": {**meta_labels, RAY_CLIENT_LABEL: "true"}},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": config.run_as_user,
                        "runAsGroup": config.run_as_group,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [{
                        "name": "ray-job-submitter",
                        "image": image,
                        "env": [
                            {"name": "RAY_AUTH_MODE", "value": "token"},
                            {"name": "RAY_AUTH_TOKEN", "valueFrom": {"secretKeyRef": {
                                "name": config.auth_secret_name, "key": config.auth_secret_key}}},
                            {"name": "HOME", "value": "/tmp"},
                        ],
                        "resources": {k: dict(v) for k, v in config.submitter_resources.items()},
                        "securityContext": security,
                        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                    }],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}],
                },
            },
        },
    }


# ------------------------------------------------------------------------------------ status

@dataclass(frozen=True)
class KubeRayJobResult:
    name: str
    namespace: str
    dataset_uri: str
    output_uri: str
    job_status: str
    deployment_status: str
    ray_job_id: str | None = None
    dashboard_url: str | None = None
    start_time: str | None = None
    end_time: str | None = None
    message: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.job_status == JOB_SUCCEEDED


def interpret_status(name: str, namespace: str, status: Mapping[str, Any] | None, *, dataset_uri: str,
                     output_uri: str) -> KubeRayJobResult | None:
    """None while the job is still going; a result when it SUCCEEDED; raises for every other end."""
    status = status or {}
    job = str(status.get("jobStatus") or "")
    deployment = str(status.get("jobDeploymentStatus") or "")
    reason = status.get("reason") or ""
    message = status.get("message") or ""
    detail = "; ".join(x for x in (f"reason {reason}" if reason else "", message) if x)
    kwargs = {"job_name": name, "job_status": job, "deployment_status": deployment}

    if job == JOB_SUCCEEDED:
        return KubeRayJobResult(
            name=name, namespace=namespace, dataset_uri=dataset_uri, output_uri=output_uri,
            job_status=job, deployment_status=deployment, ray_job_id=status.get("jobId"),
            dashboard_url=status.get("dashboardURL"), start_time=status.get("startTime"),
            end_time=status.get("endTime"), message=message or None,
        )
    if job == JOB_FAILED:
        raise KubeRayJobFailed(dataset_uri, "the inspection job failed" + (f" ({detail})" if detail else "")
                               + "; see the Ray dashboard / submitter logs", **kwargs)
    if job == JOB_STOPPED:
        raise KubeRayJobStopped(dataset_uri, "the inspection job was stopped" + (f" ({detail})" if detail else ""), **kwargs)
    if deployment in DEPLOYMENT_FAILED:
        raise KubeRayJobFailed(dataset_uri, f"KubeRay could not run the job: deployment {deployment}"
                               + (f" ({detail})" if detail else ""), **kwargs)
    if deployment in DEPLOYMENT_STOPPED:
        raise KubeRayJobStopped(dataset_uri, f"the job was {deployment.lower()}" + (f" ({detail})" if detail else ""), **kwargs)
    if deployment == DEPLOYMENT_COMPLETE:
        raise KubeRayJobFailed(dataset_uri, f"deployment completed with job status {job or 'unknown'!r}"
                               + (f" ({detail})" if detail else ""), **kwargs)
    return None


# ------------------------------------------------------------------------------------ runner

class CustomObjectsApi(Protocol):
    """The part of ``kubernetes.client.CustomObjectsApi`` the runner uses."""

    def create_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str,
                                        body: dict, **kwargs: Any) -> Any: ...

    def get_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str,
                                     name: str, **kwargs: Any) -> Any: ...

    def delete_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str,
                                        name: str, **kwargs: Any) -> Any: ...


def _http_status(exc: BaseException) -> int | None:
    """HTTP status of a kubernetes ApiException (duck-typed: no kubernetes import needed)."""
    status = getattr(exc, "status", None)
    return status if isinstance(status, int) else None


def _api_reason(exc: BaseException) -> str:
    status, reason = _http_status(exc), getattr(exc, "reason", None)
    body = getattr(exc, "body", None)
    try:
        body_msg = json.loads(body).get("message") if body else None
    except (TypeError, ValueError, AttributeError):
        body_msg = None
    parts = [f"HTTP {status}" if status else type(exc).__name__, reason or "", body_msg or ("" if status else str(exc))]
    return " ".join(p for p in parts if p)


def default_custom_objects_api() -> CustomObjectsApi:
    """In-cluster config when running in a pod, else the local kubeconfig."""
    try:
        import kubernetes
    except ImportError as exc:  # the cloud extra ships it; a robot never runs this
        raise InspectionInfrastructureError("", "the KubeRay runner needs the `kubernetes` package "
                                            "(pip install 'axon-dagster[cloud]')") from exc
    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        try:
            kubernetes.config.load_kube_config()
        except (kubernetes.config.ConfigException, OSError) as exc:
            raise InspectionInfrastructureError("", f"no Kubernetes configuration (not in a pod, no kubeconfig): {exc}") from exc
    return kubernetes.client.CustomObjectsApi()


class KubeRayRunner:
    """Submit, wait for and clean up inspection RayJobs."""

    def __init__(self, config: KubeRayRunnerConfig, api: CustomObjectsApi | None = None, *,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        self.config = config
        self._api = api
        self._clock = clock
        self._sleep = sleep

    @property
    def api(self) -> CustomObjectsApi:
        if self._api is None:
            self._api = default_custom_objects_api()
        return self._api

    def _cluster_image(self, dataset_uri: str) -> str:
        """Check the target RayCluster exists; return the submitter image (config or head image)."""
        c, api = self.config, self.api
        try:
            cluster = api.get_namespaced_custom_object(RAY_GROUP, RAY_VERSION, c.namespace, RAYCLUSTER_PLURAL,
                                                       c.cluster_name)
        except Exception as exc:
            if _http_status(exc) == 404:
                raise KubeRaySubmitError(
                    dataset_uri, f"RayCluster {c.cluster_name!r} not found in namespace {c.namespace!r} "
                    "(install the axon-cloud chart with ray.enabled=true and the kuberay-operator release)") from exc
            raise KubeRaySubmitError(dataset_uri, f"cannot read RayCluster {c.cluster_name!r}: {_api_reason(exc)}") from exc
        if c.image:
            return c.image
        try:
            return cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["image"]
        except (KeyError, IndexError, TypeError):
            raise KubeRaySubmitError(dataset_uri, f"RayCluster {c.cluster_name!r} has no head image; "
                                     "set AXON_KUBERAY_IMAGE") from None

    def submit(self, dataset_uri: str, requirements: Any, output_uri: str, *, name: str | None = None,
               labels: Mapping[str, str] | None = None) -> str:
        """Create the RayJob and return its name. Re-submitting an identical job under an explicit
        name adopts the existing one (replays are harmless); a different job under that name is refused."""
        c = self.config
        name = name or rayjob_name(dataset_uri, output_uri)
        # Build once without touching the API so bad input is refused before any request.
        build_rayjob_manifest(c, name=name, dataset_uri=dataset_uri, requirements=requirements,
                              output_uri=output_uri, labels=labels, image=c.image or "validation-only")
        image = self._cluster_image(dataset_uri)
        body = build_rayjob_manifest(c, name=name, dataset_uri=dataset_uri, requirements=requirements,
                                     output_uri=output_uri, labels=labels, image=image)
        try:
            self.api.create_namespaced_custom_object(RAY_GROUP, RAY_VERSION, c.namespace, RAYJOB_PLURAL, body)
        except Exception as exc:
            if _http_status(exc) != 409:
                raise KubeRaySubmitError(dataset_uri, f"cannot create RayJob {name!r}: {_api_reason(exc)}",
                                         job_name=name) from exc
            existing = self._get(name, dataset_uri)
            if (existing or {}).get("spec", {}).get("entrypoint") != body["spec"]["entrypoint"]:
                raise KubeRaySubmitError(dataset_uri, "a different RayJob already has this name",
                                         job_name=name) from exc
            logger.info("RayJob %s/%s already exists with the same entrypoint: adopting it", c.namespace, name)
        else:
            logger.info("submitted RayJob %s/%s on RayCluster %s for %s", c.namespace, name, c.cluster_name, dataset_uri)
        return name

    def _get(self, name: str, dataset_uri: str) -> dict | None:
        """The RayJob object, or None when it no longer exists."""
        c = self.config
        try:
            return self.api.get_namespaced_custom_object(RAY_GROUP, RAY_VERSION, c.namespace, RAYJOB_PLURAL, name)
        except Exception as exc:
            if _http_status(exc) == 404:
                return None
            raise

    def wait(self, name: str, *, dataset_uri: str, output_uri: str) -> KubeRayJobResult:
        """Poll until the job ends. Raises KubeRayJobTimeout after ``config.timeout_s``."""
        c = self.config
        deadline = self._clock() + c.timeout_s
        read_errors = 0
        last: dict = {}
        while True:
            try:
                obj = self._get(name, dataset_uri)
                read_errors = 0
            except Exception as exc:
                read_errors += 1
                if read_errors >= MAX_STATUS_READ_ERRORS:
                    raise KubeRayJobError(dataset_uri, f"cannot read the RayJob status "
                                          f"({read_errors} attempts): {_api_reason(exc)}", job_name=name) from exc
                logger.warning("reading RayJob %s failed (%s); retrying", name, _api_reason(exc))
                obj = {"status": last}
            if obj is None:
                raise KubeRayJobStopped(dataset_uri, "the RayJob was deleted before it finished", job_name=name,
                                        job_status=last.get("jobStatus"), deployment_status=last.get("jobDeploymentStatus"))
            last = obj.get("status") or {}
            result = interpret_status(name, c.namespace, last, dataset_uri=dataset_uri, output_uri=output_uri)
            if result is not None:
                return result
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise KubeRayJobTimeout(
                    dataset_uri, f"still {last.get('jobStatus') or last.get('jobDeploymentStatus') or 'pending'} "
                    f"after {c.timeout_s:g} s; stopped", job_name=name,
                    job_status=last.get("jobStatus"), deployment_status=last.get("jobDeploymentStatus"))
            self._sleep(min(c.poll_interval_s, remaining))

    def delete(self, name: str) -> None:
        """Delete the RayJob (KubeRay stops a running Ray job first). Missing is fine; failure is logged."""
        c = self.config
        try:
            self.api.delete_namespaced_custom_object(RAY_GROUP, RAY_VERSION, c.namespace, RAYJOB_PLURAL, name)
        except Exception as exc:
            if _http_status(exc) != 404:
                logger.warning("could not delete RayJob %s/%s: %s", c.namespace, name, _api_reason(exc))

    def run(self, dataset_uri: str, requirements: Any, output_uri: str, *, name: str | None = None,
            labels: Mapping[str, str] | None = None) -> KubeRayJobResult:
        """Submit, wait, clean up. Returns on SUCCEEDED; raises a KubeRayJobError otherwise."""
        name = self.submit(dataset_uri, requirements, output_uri, name=name, labels=labels)
        timed_out = False
        try:
            return self.wait(name, dataset_uri=dataset_uri, output_uri=output_uri)
        except KubeRayJobTimeout:
            timed_out = True  # always stop it: a timed-out job must not keep the cluster busy
            raise
        finally:
            if timed_out or self.config.delete_finished:
                self.delete(name)

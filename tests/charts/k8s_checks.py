"""Offline checks for rendered Kubernetes objects.

Built-in kinds are validated with kubernetes-validate's bundled OpenAPI schemas (strict: unknown
fields are errors). Custom resources (RayCluster, RayJob, ServiceMonitor, PrometheusRule) are not
in those schemas, so `check_custom_resource` checks the fields their controllers need.
Every check returns a list of human-readable problems; an empty list means the object passed.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from typing import Any

import kubernetes_validate
import kubernetes_validate.utils as kv_utils

# The oldest Kubernetes the charts declare (kubeVersion >=1.30) is the one we validate against.
K8S_VERSION = "1.30"

# kubernetes-validate re-reads the 1.3 MB definitions file for every object; cache the parsed
# JSON (read-only during validation) so a full run stays within seconds.
kv_utils.schema_contents = functools.lru_cache(maxsize=None)(kv_utils.schema_contents)

CUSTOM_KINDS = {
    ("ray.io/v1", "RayCluster"),
    ("ray.io/v1", "RayJob"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod", "RayCluster", "RayJob"}

# Env var names whose value is a secret: they must come from a Secret, never a literal or a
# ConfigMap.
SECRET_ENV_NAMES = {
    "AXON_ADMIN_TOKEN",
    "AXON_DATABASE_URL",
    "AXON_ROBOT_TOKEN",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "RAY_AUTH_TOKEN",
    "DAGSTER_PG_PASSWORD",
    "AXON_ALERT_WEBHOOK_URL",  # webhook URLs (Slack, bridges) embed their token
}
SECRET_KEY_RE = re.compile(r"(TOKEN|PASSWORD|PASSWD|SECRET|PRIVATE_KEY|ACCESS_KEY|CREDENTIAL|DATABASE_URL)", re.I)
SECRET_VALUE_RES = [
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),                      # AWS access key id
    re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@"),    # URL with user:password@
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"\b(ghp|gho|glpat|xox[bap])[-_][A-Za-z0-9]{10,}"),
]


def validate_builtin(obj: dict, version: str = K8S_VERSION) -> list[str]:
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = "/".join(str(p) for p in exc.absolute_path)
        return [f"{kn(obj)}: schema {version}: at '{path}': {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError:
        return [f"{kn(obj)}: no Kubernetes {version} schema for {obj.get('apiVersion')} {obj.get('kind')}"]
    return []


def kn(obj: dict) -> str:
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


# The newest schema kubernetes-validate ships: catches APIs removed after K8S_VERSION.
LATEST_K8S_VERSION = kv_utils.major_minor(kubernetes_validate.latest_version())


def validate_object(obj: dict, version: str = K8S_VERSION) -> list[str]:
    """Schema-validate a built-in kind; required-field-check a known custom resource."""
    if (obj.get("apiVersion"), obj.get("kind")) in CUSTOM_KINDS:
        return check_custom_resource(obj)
    return validate_builtin(obj, version)


# ---------------------------------------------------------------- custom resources

def _require(obj: Any, path: str, problems: list[str], kind: str, types: type | tuple = object) -> Any:
    cur = obj
    for part in path.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        else:
            problems.append(f"{kind}: missing required field {path}")
            return None
    if not isinstance(cur, types):
        problems.append(f"{kind}: {path} must be {types}, got {type(cur).__name__}")
        return None
    return cur


def _check_pod_template(tpl: dict, where: str, problems: list[str]) -> None:
    """A KubeRay pod template is a core PodTemplateSpec: validate it with the Pod schema."""
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": tpl.get("metadata") or {"name": "x"},
           "spec": tpl.get("spec")}
    pod["metadata"] = {**pod["metadata"], "name": pod["metadata"].get("name", "template")}
    problems.extend(f"{where}: {p}" for p in validate_builtin(pod))


def check_custom_resource(obj: dict) -> list[str]:
    kind = kn(obj)
    p: list[str] = []
    _require(obj, "metadata.name", p, kind, str)
    k = obj.get("kind")
    if k == "RayCluster":
        spec = _require(obj, "spec", p, kind, dict) or {}
        if not re.fullmatch(r"2\.\d+\.\d+", str(spec.get("rayVersion", ""))):
            p.append(f"{kind}: spec.rayVersion must be a Ray 2.x version")
        head = _require(obj, "spec.headGroupSpec", p, kind, dict) or {}
        _require(head, "rayStartParams", p, kind + " headGroupSpec", dict)
        tpl = _require(head, "template", p, kind + " headGroupSpec", dict)
        if tpl:
            _check_pod_template(tpl, kind + " head", p)
        for i, wg in enumerate(spec.get("workerGroupSpecs") or []):
            w = f"{kind} workerGroupSpecs[{i}]"
            _require(wg, "groupName", p, w, str)
            _require(wg, "rayStartParams", p, w, dict)
            mn, mx = wg.get("minReplicas", 0), wg.get("maxReplicas")
            if not isinstance(mx, int) or not isinstance(mn, int) or not 0 <= mn <= mx:
                p.append(f"{w}: need integers 0 <= minReplicas <= maxReplicas")
            elif not mn <= wg.get("replicas", mn) <= mx:
                p.append(f"{w}: replicas outside [minReplicas, maxReplicas]")
            wtpl = _require(wg, "template", p, w, dict)
            if wtpl:
                _check_pod_template(wtpl, w, p)
        for rsp in [head.get("rayStartParams", {})] + [w.get("rayStartParams", {}) for w in spec.get("workerGroupSpecs") or []]:
            for key, val in (rsp or {}).items():
                if not isinstance(val, str):
                    p.append(f"{kind}: rayStartParams.{key} must be a string (KubeRay v1 map[string]string)")
    elif k == "RayJob":
        spec = _require(obj, "spec", p, kind, dict) or {}
        _require(spec, "entrypoint", p, kind, str)
        has_selector = bool(spec.get("clusterSelector"))
        has_cluster = bool(spec.get("rayClusterSpec"))
        if has_selector == has_cluster:
            p.append(f"{kind}: exactly one of spec.clusterSelector / spec.rayClusterSpec is required")
        if has_selector and spec.get("shutdownAfterJobFinishes"):
            p.append(f"{kind}: shutdownAfterJobFinishes must be false with clusterSelector")
        if spec.get("submissionMode", "K8sJobMode") not in ("K8sJobMode", "HTTPMode", "SidecarMode", "InteractiveMode"):
            p.append(f"{kind}: unknown submissionMode {spec.get('submissionMode')!r}")
        if spec.get("submitterPodTemplate"):
            _check_pod_template(spec["submitterPodTemplate"], kind + " submitter", p)
    elif k == "ServiceMonitor":
        _require(obj, "spec.selector", p, kind, dict)
        eps = _require(obj, "spec.endpoints", p, kind, list) or []
        if not eps:
            p.append(f"{kind}: spec.endpoints is empty")
        for ep in eps:
            if not (ep.get("port") or ep.get("targetPort")):
                p.append(f"{kind}: endpoint needs port or targetPort")
    elif k == "PrometheusRule":
        groups = _require(obj, "spec.groups", p, kind, list) or []
        if not groups:
            p.append(f"{kind}: spec.groups is empty")
        for g in groups:
            if not g.get("name") or not isinstance(g.get("rules"), list) or not g["rules"]:
                p.append(f"{kind}: every group needs a name and rules")
                continue
            for r in g["rules"]:
                if not (r.get("alert") or r.get("record")) or not r.get("expr"):
                    p.append(f"{kind}: rule in {g['name']} needs alert/record and expr")
                if r.get("alert") and not (r.get("labels", {}).get("severity")):
                    p.append(f"{kind}: alert {r['alert']} has no severity label")
    return p


# ---------------------------------------------------------------- workloads

def pod_specs(obj: dict) -> Iterator[tuple[str, dict]]:
    """Every pod spec inside a workload (including KubeRay templates)."""
    k, spec = obj.get("kind"), obj.get("spec") or {}
    if k == "Pod":
        yield kn(obj), spec
    elif k in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        yield kn(obj), spec["template"]["spec"]
    elif k == "CronJob":
        yield kn(obj), spec["jobTemplate"]["spec"]["template"]["spec"]
    elif k == "RayCluster":
        yield kn(obj) + " head", spec["headGroupSpec"]["template"]["spec"]
        for wg in spec.get("workerGroupSpecs") or []:
            yield f"{kn(obj)} {wg.get('groupName')}", wg["template"]["spec"]
    elif k == "RayJob" and spec.get("submitterPodTemplate"):
        yield kn(obj) + " submitter", spec["submitterPodTemplate"]["spec"]


def _containers(pod: dict) -> Iterator[dict]:
    yield from pod.get("initContainers") or []
    yield from pod.get("containers") or []


def check_workload_security(obj: dict) -> list[str]:
    """Non-root, read-only root filesystem, no privilege escalation, limits on every container."""
    problems = []
    for where, pod in pod_specs(obj):
        psc = pod.get("securityContext") or {}
        for c in _containers(pod):
            csc = c.get("securityContext") or {}
            name = f"{where} container {c.get('name')}"
            run_as_non_root = csc.get("runAsNonRoot", psc.get("runAsNonRoot"))
            run_as_user = csc.get("runAsUser", psc.get("runAsUser"))
            if run_as_non_root is not True:
                problems.append(f"{name}: runAsNonRoot is not true")
            if run_as_user == 0:
                problems.append(f"{name}: runAsUser is 0 (root)")
            if csc.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{name}: readOnlyRootFilesystem is not true")
            if csc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{name}: allowPrivilegeEscalation is not false")
            if csc.get("privileged"):
                problems.append(f"{name}: privileged")
            limits = (c.get("resources") or {}).get("limits") or {}
            if not limits.get("cpu") or not limits.get("memory"):
                problems.append(f"{name}: cpu and memory limits must be set")
        if obj.get("kind") == "RayCluster" and obj["spec"].get("enableInTreeAutoscaling"):
            ao = obj["spec"].get("autoscalerOptions") or {}
            asc = ao.get("securityContext") or {}
            if asc.get("readOnlyRootFilesystem") is not True or asc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{kn(obj)} autoscaler: securityContext not locked down")
            if not ((ao.get("resources") or {}).get("limits")):
                problems.append(f"{kn(obj)} autoscaler: no resource limits")
    return sorted(set(problems))


def check_secret_handling(obj: dict) -> list[str]:
    """Secret-valued env only from Secrets; no secret-looking data in ConfigMaps."""
    problems = []
    if obj.get("kind") == "ConfigMap":
        for key, val in (obj.get("data") or {}).items():
            sval = str(val)
            if key in SECRET_ENV_NAMES or (SECRET_KEY_RE.search(key) and not key.endswith("_SECRET_NAME")):
                problems.append(f"{kn(obj)}: key {key!r} looks like a secret; use a Secret")
            for rx in SECRET_VALUE_RES:
                if rx.search(sval):
                    problems.append(f"{kn(obj)}: value of {key!r} contains a credential ({rx.pattern})")
    for where, pod in pod_specs(obj):
        for c in _containers(pod):
            for env in c.get("env") or []:
                if env.get("name") in SECRET_ENV_NAMES:
                    ref = (env.get("valueFrom") or {}).get("secretKeyRef")
                    if "value" in env or not ref:
                        problems.append(f"{where} container {c.get('name')}: {env['name']} not from a secretKeyRef")
    return problems

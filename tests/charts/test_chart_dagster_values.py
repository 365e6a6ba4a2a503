"""charts/values/dagster.yaml (values for the upstream dagster chart) checked offline.

The upstream chart is not vendored (it is a separate release), so `instance_yaml()` renders the
dagster.yaml its configmap-instance template would produce from our values (same keys, same
conditions), and the result is validated by Dagster itself:
  - the whole file against Dagster's instance-config schema (dagster_instance_config);
  - every configurable class section against that class's own config schema;
  - the run-launcher section instantiates a real K8sRunLauncher, and the run Job dagster-k8s
    builds from it (the same calls K8sRunLauncher.launch_run makes) is validated against the
    Kubernetes schema and our workload rules.
Names the values point at (code-server host, ConfigMap, Secret, ServiceAccount) are checked
against what the axon-cloud chart actually renders.
"""

from __future__ import annotations

import copy
import importlib
from pathlib import Path

import pytest
import yaml
from chart_helpers import CHARTS_DIR, NAMESPACE
from k8s_checks import check_secret_handling, check_workload_security, validate_builtin

DAGSTER_VALUES = CHARTS_DIR / "values" / "dagster.yaml"
KUBERAY_VALUES = CHARTS_DIR / "values" / "kuberay-operator.yaml"
DAGSTER_RELEASE = "dagster"


@pytest.fixture(scope="module")
def values() -> dict:
    return yaml.safe_load(DAGSTER_VALUES.read_text())


def _postgres(values: dict) -> dict:
    pg = values["postgresql"]
    cfg = {
        "postgres_db": {
            "username": pg["postgresqlUsername"],
            "password": {"env": "DAGSTER_PG_PASSWORD"},
            "hostname": pg["postgresqlHost"],
            "db_name": pg["postgresqlDatabase"],
            "port": pg["service"]["port"],
            "params": pg.get("postgresqlParams") or {},
        }
    }
    if pg.get("postgresqlScheme"):
        cfg["postgres_db"]["scheme"] = pg["postgresqlScheme"]
    return cfg


def _run_launcher(values: dict) -> dict:
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    k = values["runLauncher"]["config"]["k8sRunLauncher"]
    cfg = {
        "load_incluster_config": k.get("loadInclusterConfig", True),
        "job_namespace": k.get("jobNamespace") or NAMESPACE,
        "image_pull_policy": k.get("imagePullPolicy", "Always"),
        "service_account_name": values["global"].get("serviceAccountName") or values["serviceAccount"]["name"],
        "dagster_home": values["global"]["dagsterHome"],
        "instance_config_map": f"{DAGSTER_RELEASE}-instance",
        "postgres_password_secret": values["global"]["postgresqlSecretName"],
    }
    if "image" in k:
        cfg["job_image"] = f"{k['image']['repository']}:{k['image']['tag']}"
    if values.get("imagePullSecrets"):
        cfg["image_pull_secrets"] = values["imagePullSecrets"]
    if k.get("envConfigMaps"):
        cfg["env_config_maps"] = [c["name"] for c in k["envConfigMaps"] if "name" in c]
    if k.get("envSecrets"):
        cfg["env_secrets"] = [s["name"] for s in k["envSecrets"] if "name" in s]
    mapping = {"envVars": "env_vars", "volumeMounts": "volume_mounts", "volumes": "volumes", "labels": "labels",
               "resources": "resources", "securityContext": "security_context", "schedulerName": "scheduler_name"}
    for src, dst in mapping.items():
        if k.get(src):
            cfg[dst] = k[src]
    if k.get("failPodOnRunFailure"):
        cfg["fail_pod_on_run_failure"] = True
    rk = k.get("runK8sConfig") or {}
    if rk:
        sub = {"containerConfig": "container_config", "podSpecConfig": "pod_spec_config",
               "podTemplateSpecMetadata": "pod_template_spec_metadata", "jobSpecConfig": "job_spec_config",
               "jobMetadata": "job_metadata"}
        cfg["run_k8s_config"] = {dst: rk[src] for src, dst in sub.items() if rk.get(src)}
    return {"module": "dagster_k8s", "class": "K8sRunLauncher", "config": cfg}


def instance_yaml(values: dict) -> dict:
    """The dagster.yaml the upstream chart renders into <release>-instance from these values."""
    d = values["dagsterDaemon"]
    pg = _postgres(values)
    inst = {
        "scheduler": {"module": "dagster._core.scheduler", "class": "DagsterDaemonScheduler"},
        "schedule_storage": {"module": "dagster_postgres.schedule_storage", "class": "PostgresScheduleStorage", "config": pg},
        "run_launcher": _run_launcher(values),
        "run_storage": {"module": "dagster_postgres.run_storage", "class": "PostgresRunStorage", "config": pg},
        "event_log_storage": {"module": "dagster_postgres.event_log", "class": "PostgresEventLogStorage", "config": pg},
        "telemetry": {"enabled": values["telemetry"]["enabled"]},
    }
    assert values["scheduler"]["type"] == "DagsterDaemonScheduler"
    assert values["computeLogManager"]["type"] == "NoOpComputeLogManager"
    inst["compute_logs"] = {"module": "dagster._core.storage.noop_compute_log_manager", "class": "NoOpComputeLogManager"}
    if d["enabled"] and d["runCoordinator"]["enabled"]:
        assert d["runCoordinator"]["type"] == "QueuedRunCoordinator"
        q = d["runCoordinator"]["config"]["queuedRunCoordinator"]
        keys = {"maxConcurrentRuns": "max_concurrent_runs", "tagConcurrencyLimits": "tag_concurrency_limits",
                "dequeueIntervalSeconds": "dequeue_interval_seconds", "dequeueUseThreads": "dequeue_use_threads",
                "dequeueNumWorkers": "dequeue_num_workers"}
        inst["run_coordinator"] = {"module": "dagster._core.run_coordinator", "class": "QueuedRunCoordinator",
                                   "config": {dst: q[src] for src, dst in keys.items() if q.get(src)}}
    if d["enabled"] and d["runMonitoring"]["enabled"]:
        m = d["runMonitoring"]
        inst["run_monitoring"] = {"enabled": True, "start_timeout_seconds": m["startTimeoutSeconds"],
                                  "poll_interval_seconds": m["pollIntervalSeconds"]}
        if m.get("maxResumeRunAttempts"):
            inst["run_monitoring"]["max_resume_run_attempts"] = m["maxResumeRunAttempts"]
    if d["enabled"] and d["runRetries"]["enabled"]:
        inst["run_retries"] = {"enabled": True}
        if d["runRetries"].get("maxRetries"):
            inst["run_retries"]["max_retries"] = d["runRetries"]["maxRetries"]
    for key in ("sensors", "schedules"):
        if d["enabled"] and d[key]["useThreads"]:
            inst[key] = {"use_threads": True, "num_workers": d[key]["numWorkers"]}
    r = values.get("retention") or {}
    if r.get("enabled"):
        inst["retention"] = {k: {"purge_after_days": r[k]["purgeAfterDays"]} for k in ("sensor", "schedule") if r.get(k)}
    return inst


@pytest.fixture
def pg_env(monkeypatch):
    # {env: DAGSTER_PG_PASSWORD} sources are resolved during validation.
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "validation-only")


def _validate_instance(tmp_path: Path, inst: dict):
    from dagster._core.instance.config import dagster_instance_config

    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(inst))
    config, _ = dagster_instance_config(str(tmp_path))
    return config


def test_rendered_instance_config_is_valid_for_dagster(tmp_path, values, pg_env):
    config = _validate_instance(tmp_path, instance_yaml(values))
    assert config["run_launcher"]["class"] == "K8sRunLauncher"
    assert config["sensors"]["use_threads"] is True
    assert config["run_coordinator"]["config"]["max_concurrent_runs"] == 25


def test_each_configurable_class_accepts_its_section(values, pg_env):
    from dagster._config import validate_config

    inst = instance_yaml(values)
    for section in ("scheduler", "schedule_storage", "run_storage", "event_log_storage", "run_launcher",
                    "run_coordinator", "compute_logs"):
        spec = inst[section]
        cls = getattr(importlib.import_module(spec["module"]), spec["class"])
        result = validate_config(cls.config_type(), spec.get("config", {}))
        assert result.success, f"{section}: {[e.message for e in result.errors]}"


def test_instance_validation_bites(tmp_path, values, pg_env):
    from dagster._config import validate_config
    from dagster._core.errors import DagsterInvalidConfigError
    from dagster_k8s import K8sRunLauncher

    broken = instance_yaml(values)
    broken["sensors"]["use_threads"] = "sometimes"
    with pytest.raises(DagsterInvalidConfigError):
        _validate_instance(tmp_path, broken)
    launcher = copy.deepcopy(instance_yaml(values)["run_launcher"]["config"])
    launcher["env_secrets"] = "axon-runtime"  # a string where a list is required
    assert not validate_config(K8sRunLauncher.config_type(), launcher).success


def _launcher(tmp_path: Path, values: dict):
    from dagster._config import process_config
    from dagster_k8s import K8sRunLauncher

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "offline",
        "clusters": [{"name": "offline", "cluster": {"server": "https://127.0.0.1:1"}}],
        "contexts": [{"name": "offline", "context": {"cluster": "offline", "user": "offline"}}],
        "users": [{"name": "offline", "user": {"token": "offline"}}],
    }))
    cfg = dict(instance_yaml(values)["run_launcher"]["config"])
    cfg.update(load_incluster_config=False, kubeconfig_file=str(kubeconfig))  # no cluster here
    processed = process_config(K8sRunLauncher.config_type(), cfg)
    assert processed.success, [e.message for e in processed.errors]
    return K8sRunLauncher(**processed.value)


def build_run_job(tmp_path: Path, values: dict, image: str) -> dict:
    """The Job K8sRunLauncher.launch_run would create, built with the same dagster-k8s calls."""
    import kubernetes
    from dagster._core.storage.dagster_run import DagsterRun
    from dagster_k8s.container_context import K8sContainerContext
    from dagster_k8s.job import construct_dagster_k8s_job, get_job_name_from_run_id

    launcher = _launcher(tmp_path, values)
    run = DagsterRun(job_name="data_flow", run_id="0123456789abcdef0123456789abcdef")
    ctx = K8sContainerContext.create_for_run(run, launcher, include_run_tags=False)
    job_name = get_job_name_from_run_id(run.run_id)
    job = construct_dagster_k8s_job(
        job_config=ctx.get_k8s_job_config(job_image=image, run_launcher=launcher),
        args=["dagster", "api", "execute_run", "{}"],
        job_name=job_name,
        pod_name=job_name,
        component="run_worker",
        user_defined_k8s_config=ctx.run_k8s_config,
        labels={"dagster/job": "data_flow", "dagster/run-id": run.run_id},
        env_vars=[{"name": "DAGSTER_RUN_JOB_NAME", "value": "data_flow"}],
    )
    return kubernetes.client.ApiClient().sanitize_for_serialization(job)


@pytest.fixture(scope="module")
def cloud_objects(render):
    return render("axon-cloud", release="axon-cloud")


def test_run_job_built_by_dagster_k8s_is_valid_and_locked_down(tmp_path, values, cloud_objects):
    image = next(o for o in cloud_objects if o["metadata"]["name"] == "axon-cloud-code" and o["kind"] == "Deployment")
    image = image["spec"]["template"]["spec"]["containers"][0]["image"]
    job = build_run_job(tmp_path, values, image)
    assert validate_builtin(job) == []
    assert check_workload_security(job) == []
    assert check_secret_handling(job) == []
    pod = job["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["image"] == image
    assert pod["serviceAccountName"] == "axon-cloud-runs"
    assert {"configMapRef": {"name": "axon-cloud-env"}} in c["envFrom"]
    assert {"secretRef": {"name": "axon-runtime"}} in c["envFrom"]
    assert job["spec"]["template"]["metadata"]["labels"]["axon.io/ray-client"] == "true"
    assert {m["mountPath"] for m in c["volumeMounts"]} >= {"/tmp", "/opt/dagster/dagster_home", "/data/data-flow"}


def test_run_job_check_bites(tmp_path, values, cloud_objects):
    broken = copy.deepcopy(values)
    broken["runLauncher"]["config"]["k8sRunLauncher"]["securityContext"]["readOnlyRootFilesystem"] = False
    del broken["runLauncher"]["config"]["k8sRunLauncher"]["resources"]
    job = build_run_job(tmp_path, broken, "axon-dagster:0.1.0")
    problems = "\n".join(check_workload_security(job))
    assert "readOnlyRootFilesystem" in problems and "limits" in problems


def test_values_point_at_what_axon_cloud_renders(values, cloud_objects):
    names = {(o["kind"], o["metadata"]["name"]) for o in cloud_objects}
    (server,) = values["dagsterWebserver"]["workspace"]["servers"]
    code_svc = next(o for o in cloud_objects if o["kind"] == "Service" and o["metadata"]["name"] == server["host"])
    assert code_svc["spec"]["ports"][0]["port"] == server["port"]
    code = next(o for o in cloud_objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "axon-cloud-code")
    args = code["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--location-name") + 1] == server["name"]
    assert values["dagster-user-deployments"] == {"enabled": True, "enableSubchart": False}
    k = values["runLauncher"]["config"]["k8sRunLauncher"]
    for cm in k["envConfigMaps"]:
        assert ("ConfigMap", cm["name"]) in names
    sa = k["runK8sConfig"]["podSpecConfig"]["serviceAccountName"]
    assert ("ServiceAccount", sa) in names
    cloud_values = yaml.safe_load((CHARTS_DIR / "axon-cloud" / "values.yaml").read_text())
    assert [s["name"] for s in k["envSecrets"]] == [cloud_values["secrets"]["runtime"]["name"]]
    env_cm = next(o for o in cloud_objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "axon-cloud-env")
    mounts = {m["mountPath"] for m in k["volumeMounts"]}
    assert env_cm["data"]["AXON_DATA_FLOW_DIR"] in mounts  # the run's scratch space is a volume (read-only root)
    assert k["runK8sConfig"]["podSpecConfig"]["securityContext"]["runAsUser"] == cloud_values["podSecurityContext"]["runAsUser"]
    assert values["postgresql"]["enabled"] is False and not values["postgresql"]["postgresqlPassword"]
    assert values["dagsterWebserver"]["service"]["port"] > 1024, "non-root webserver cannot bind a low port"


def test_workspace_config_is_valid_for_dagster(values):
    from dagster._config import validate_config
    from dagster._core.workspace.config_schema import WORKSPACE_CONFIG_SCHEMA

    (server,) = values["dagsterWebserver"]["workspace"]["servers"]
    workspace = {"load_from": [{"grpc_server": {"host": server["host"], "port": server["port"],
                                                "location_name": server["name"]}}]}
    assert validate_config(WORKSPACE_CONFIG_SCHEMA, workspace).success


def test_kuberay_operator_values_are_sane():
    v = yaml.safe_load(KUBERAY_VALUES.read_text())
    assert v["image"]["tag"].startswith("v1.")
    assert NAMESPACE in v["watchNamespace"]
    assert v["securityContext"]["readOnlyRootFilesystem"] is True
    assert v["securityContext"]["allowPrivilegeEscalation"] is False
    assert v["resources"]["limits"]["cpu"] and v["resources"]["limits"]["memory"]

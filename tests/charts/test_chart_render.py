"""helm lint + helm template for every chart x values file, and checks on every rendered object.

Each check is also run once on a deliberately broken object, so a check that silently passes
everything would fail here.
"""

from __future__ import annotations

import copy
import json

import pytest
import yaml
from chart_helpers import CASE_IDS, CASES, CHARTS, CHARTS_DIR, HelmError, ci_values, helm_run
from k8s_checks import (
    K8S_VERSION,
    LATEST_K8S_VERSION,
    WORKLOAD_KINDS,
    check_custom_resource,
    check_secret_handling,
    check_workload_security,
    kn,
    validate_object,
)

RELEASE_FOR = {"axon-cloud": "axon-cloud", "axon-edge": "robot-1"}


def objs(render, chart, values_file):
    return render(chart, values_file, release=RELEASE_FOR[chart])


@pytest.mark.parametrize("chart", CHARTS)
def test_every_chart_has_the_ci_values_we_promise(chart):
    names = {p.stem for p in ci_values(chart)}
    assert {"minimal-values", "production-like-values", "multi-robot-values"} <= names
    for required in ("Chart.yaml", "values.yaml", "values.schema.json", "templates/_helpers.tpl",
                     "templates/NOTES.txt"):
        assert (CHARTS_DIR / chart / required).is_file(), f"{chart}: {required} missing"
    chart_yaml = yaml.safe_load((CHARTS_DIR / chart / "Chart.yaml").read_text())
    assert "dependencies" not in chart_yaml, "charts stay self-contained: upstream charts are separate releases"


@pytest.mark.parametrize(("chart", "values_file"), CASES, ids=CASE_IDS)
def test_helm_lint_strict(helm, chart, values_file):
    proc = helm_run(helm, "lint", "--strict", str(CHARTS_DIR / chart), "-f", str(values_file))
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(("chart", "values_file"), CASES, ids=CASE_IDS)
def test_every_rendered_object_is_valid(render, chart, values_file):
    rendered = objs(render, chart, values_file)
    assert rendered, "nothing rendered"
    problems = [p for o in rendered for p in validate_object(o)]
    problems += [p for o in rendered for p in validate_object(o, LATEST_K8S_VERSION)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(("chart", "values_file"), CASES, ids=CASE_IDS)
def test_workloads_are_locked_down(render, chart, values_file):
    rendered = objs(render, chart, values_file)
    workloads = [o for o in rendered if o["kind"] in WORKLOAD_KINDS]
    assert workloads
    problems = [p for o in workloads for p in check_workload_security(o)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(("chart", "values_file"), CASES, ids=CASE_IDS)
def test_no_secret_value_outside_secrets(render, chart, values_file):
    rendered = objs(render, chart, values_file)
    assert not [o for o in rendered if o["kind"] == "Secret"], "charts reference Secrets, never create them"
    problems = [p for o in rendered for p in check_secret_handling(o)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(("chart", "values_file"), CASES, ids=CASE_IDS)
def test_recommended_labels_everywhere(render, chart, values_file):
    for o in objs(render, chart, values_file):
        labels = o["metadata"].get("labels") or {}
        for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version",
                    "app.kubernetes.io/managed-by", "helm.sh/chart"):
            assert key in labels, f"{kn(o)} lacks label {key}"


@pytest.mark.parametrize(("chart", "values_file"), CASES, ids=CASE_IDS)
def test_helm_test_hook_present(render, chart, values_file):
    hooks = [o for o in objs(render, chart, values_file)
             if (o["metadata"].get("annotations") or {}).get("helm.sh/hook") == "test"]
    assert len(hooks) == 1 and hooks[0]["kind"] == "Pod"


# ------------------------------------------------------------------ axon-cloud specifics

def _by_kind(rendered, kind):
    return [o for o in rendered if o["kind"] == kind]


def _cloud(render, name):
    return render("axon-cloud", CHARTS_DIR / "axon-cloud" / "ci" / f"{name}.yaml", release="axon-cloud")


def _cloud_with(render, name, *sets):
    return render("axon-cloud", CHARTS_DIR / "axon-cloud" / "ci" / f"{name}.yaml", release="axon-cloud", sets=sets)


def test_cloud_code_server_contract(render):
    dep = next(o for o in _cloud(render, "production-like-values") if o["kind"] == "Deployment"
               and o["metadata"]["name"] == "axon-cloud-code")
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert c["command"] + c["args"][:6] == ["dagster", "api", "grpc", "-m", "axon_dagster.defs", "--host",
                                           "0.0.0.0", "--port", "3030"]
    assert c["readinessProbe"]["exec"]["command"] == ["dagster", "api", "grpc-health-check", "-p", "3030"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["DAGSTER_CURRENT_IMAGE"] == "registry.example.com/axon/axon-dagster:0.1.0"
    refs = c["envFrom"]
    assert {"configMapRef": {"name": "axon-cloud-env"}} in refs
    assert {"secretRef": {"name": "axon-runtime-prod"}} in refs


def _code_server(rendered):
    dep = next(o for o in rendered if o["kind"] == "Deployment" and o["metadata"]["name"] == "axon-cloud-code")
    svc = next(o for o in rendered if o["kind"] == "Service" and o["metadata"]["name"] == "axon-cloud-code")
    return dep["spec"]["template"]["spec"]["containers"][0], svc


def test_cloud_code_server_serves_metrics_on_its_own_port(render):
    rendered = _cloud(render, "production-like-values")
    c, svc = _code_server(rendered)
    env = {e["name"]: e for e in c["env"]}
    assert env["AXON_METRICS_PORT"] == {"name": "AXON_METRICS_PORT", "value": "9464"}
    assert {"name": "metrics", "containerPort": 9464, "protocol": "TCP"} in c["ports"]
    assert {"name": "metrics", "port": 9464, "targetPort": "metrics", "protocol": "TCP"} in svc["spec"]["ports"]
    # Only the long-lived code server binds it, never the run pods that share the env ConfigMap.
    cm = next(o for o in rendered if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "axon-cloud-env")
    assert "AXON_METRICS_PORT" not in cm["data"]
    # ServiceMonitor endpoint: selects the code-server Service and scrapes its `metrics` port.
    mon = next(o for o in rendered if o["kind"] == "ServiceMonitor" and o["metadata"]["name"] == "axon-cloud-code")
    assert mon["spec"]["endpoints"][0]["port"] == "metrics" and mon["spec"]["endpoints"][0]["path"] == "/metrics"
    assert mon["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    sel = mon["spec"]["selector"]["matchLabels"]
    assert sel and all(svc["metadata"]["labels"].get(k) == v for k, v in sel.items())
    assert not any(all(o["metadata"]["labels"].get(k) == v for k, v in sel.items())
                   for o in rendered if o["kind"] == "Service" and o is not svc)
    assert check_custom_resource(mon) == []
    # The code-server NetworkPolicy lets the monitoring namespace in on the metrics port only.
    np_ = next(o for o in rendered if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "axon-cloud-code-server")
    scrape = [r for r in np_["spec"]["ingress"] if {"port": 9464, "protocol": "TCP"} in r["ports"]]
    assert len(scrape) == 1 and scrape[0]["ports"] == [{"port": 9464, "protocol": "TCP"}]
    assert scrape[0]["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]


def test_cloud_code_server_metrics_port_is_configurable_and_switchable(render):
    rendered = _cloud_with(render, "production-like-values", "codeServer.metrics.port=9100",
                           "networkPolicy.monitoringPodLabels.app\\.kubernetes\\.io/name=prometheus")
    c, svc = _code_server(rendered)
    assert {e["name"]: e.get("value") for e in c["env"]}["AXON_METRICS_PORT"] == "9100"
    assert {"name": "metrics", "containerPort": 9100, "protocol": "TCP"} in c["ports"]
    assert {"name": "metrics", "port": 9100, "targetPort": "metrics", "protocol": "TCP"} in svc["spec"]["ports"]
    nps = {o["metadata"]["name"]: o for o in _by_kind(rendered, "NetworkPolicy")}
    scrape = [r for r in nps["axon-cloud-code-server"]["spec"]["ingress"] if {"port": 9100, "protocol": "TCP"} in r["ports"]]
    prom_peer = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
                 "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}
    assert scrape[0]["from"] == [prom_peer]
    assert any(r.get("from") == [prom_peer] for r in nps["axon-cloud-ray"]["spec"]["ingress"])

    off = _cloud_with(render, "production-like-values", "codeServer.metrics.enabled=false")
    c, svc = _code_server(off)
    assert "AXON_METRICS_PORT" not in {e["name"] for e in c["env"]}
    assert [p["name"] for p in c["ports"]] == ["grpc"] and [p["name"] for p in svc["spec"]["ports"]] == ["grpc"]
    assert "axon-cloud-code" not in {o["metadata"]["name"] for o in _by_kind(off, "ServiceMonitor")}
    np_ = next(o for o in off if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "axon-cloud-code-server")
    assert [r["ports"] for r in np_["spec"]["ingress"]] == [[{"port": 3030, "protocol": "TCP"}]]
    # No Prometheus namespace configured: no scrape rule either.
    no_ns = _cloud_with(render, "production-like-values", "networkPolicy.monitoringNamespace=")
    np_ = next(o for o in no_ns if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "axon-cloud-code-server")
    assert len(np_["spec"]["ingress"]) == 1
    # Monitoring off: the port is still served, but no ServiceMonitor.
    minimal = _cloud(render, "minimal-values")
    assert {e["name"]: e.get("value") for e in _code_server(minimal)[0]["env"]}["AXON_METRICS_PORT"] == "9464"
    assert not _by_kind(minimal, "ServiceMonitor")
    with pytest.raises(HelmError, match="codeServer.metrics.port"):
        _cloud_with(render, "minimal-values", "codeServer.metrics.port=3030")


def test_cloud_code_server_alert_and_review_env(render):
    c, _ = _code_server(_cloud(render, "minimal-values"))
    env = {e["name"]: e for e in c["env"]}
    assert env["AXON_REVIEW_REJECTED_POLICY"]["value"] == "archive"
    # Unset alert values leave the code's defaults alone.
    assert not {n for n in env if n.startswith("AXON_ALERT_")}
    rendered = _cloud_with(render, "minimal-values", "codeServer.alerts.failureRatio=0.35",
                           "codeServer.alerts.windowSeconds=3600", "codeServer.alerts.minRuns=10",
                           "codeServer.alerts.webhookUrlSecret.name=axon-alerting",
                           "codeServer.review.rejectedPolicy=delete")
    c, _ = _code_server(rendered)
    env = {e["name"]: e for e in c["env"]}
    assert env["AXON_ALERT_FAILURE_RATIO"]["value"] == "0.35"
    assert env["AXON_ALERT_WINDOW_SECONDS"]["value"] == "3600"
    assert env["AXON_ALERT_MIN_RUNS"]["value"] == "10"
    assert env["AXON_ALERT_WEBHOOK_URL"] == {"name": "AXON_ALERT_WEBHOOK_URL", "valueFrom": {
        "secretKeyRef": {"name": "axon-alerting", "key": "AXON_ALERT_WEBHOOK_URL"}}}
    assert env["AXON_REVIEW_REJECTED_POLICY"]["value"] == "delete"
    assert not [p for o in rendered for p in check_secret_handling(o)]
    # The rendered env is what the code reads.
    from axon_dagster.observability.sensors import RunFailureAlertResource
    from axon_dagster.defs.review import ReviewPolicy
    plain = {n: e["value"] for n, e in env.items() if "value" in e}
    import os
    from unittest import mock
    with mock.patch.dict(os.environ, {**plain, "AXON_ALERT_WEBHOOK_URL": "https://hooks.example.com/x"}):
        res = RunFailureAlertResource.from_env()
    assert (res.failure_ratio_threshold, res.window_seconds, res.min_runs) == (0.35, 3600, 10)
    assert ReviewPolicy(rejected=plain["AXON_REVIEW_REJECTED_POLICY"]).rejected == "delete"
    # Values files carry floats as numbers; the env is still a plain decimal string.
    c, _ = _code_server(render("axon-cloud", CHARTS_DIR / "axon-cloud" / "ci" / "multi-robot-values.yaml",
                               release="axon-cloud", sets=("codeServer.alerts.windowSeconds=86400",)))
    assert {e["name"]: e.get("value") for e in c["env"]}["AXON_ALERT_WINDOW_SECONDS"] == "86400"


def test_cloud_env_configmap_carries_the_runtime_contract(render):
    cm = next(o for o in _cloud(render, "multi-robot-values") if o["kind"] == "ConfigMap"
              and o["metadata"]["name"] == "axon-cloud-env")
    d = cm["data"]
    assert d["AXON_CONTROL_PLANE_URL"] == "http://axon-cloud-api.axon.svc:8000"
    assert d["AXON_OBJECT_STORE_URL"] == "s3://axon-datasets/fleet"
    assert d["AWS_ENDPOINT_URL"] == "http://minio.minio.svc:9000"
    assert d["AXON_INSPECTION_RUNNER"] == "kuberay"
    assert d["AXON_RAY_ADDRESS"] == "ray://axon-cloud-ray-head-svc.axon.svc:10001"
    assert d["RAY_AUTH_MODE"] == "token"
    assert d["AXON_KUBERAY_CLUSTER"] == "axon-cloud-ray"
    assert d["AXON_DATA_FLOW_DIR"] == "/data/data-flow" and d["AXON_STAGING_REJECTED"] == "delete"
    # the cloud keeps no cache of robots' recordings: they reach it only through the store's staging area
    assert not [k for k in d if k.startswith("AXON_EDGE_CACHE")]


def test_data_flow_and_upload_values_reach_the_code_that_reads_them(render, monkeypatch, tmp_path):
    # A values file, as operators write them (helm's --set would turn 2.5 into a string).
    values = yaml.safe_load((CHARTS_DIR / "axon-cloud" / "ci" / "multi-robot-values.yaml").read_text())
    values["dataFlow"] = {"workDir": "/data/data-flow", "stagingRejected": "keep", "followUploads": False, "followStallSeconds": 12.5}
    values["uploads"] = {"bandwidth": {"06:00-22:00": 5000000}, "minBandwidthMbps": 2.5, "maxAttempts": 7,
                         "grantTtlSeconds": 1800, "maxGrantsPerRobot": 3}
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    objects = render("axon-cloud", values_file, release="axon-cloud")
    d = next(o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "axon-cloud-env")["data"]
    assert (d["AXON_STAGING_REJECTED"], d["AXON_MAX_UPLOAD_ATTEMPTS"], d["AXON_UPLOAD_GRANT_TTL_SECONDS"]) == ("keep", "7", "1800")
    # The rendered strings, read by the code as the code server and run pods read them.
    from axon_dagster.defs.data_flow import data_flow_policy_from_env
    from axon_dagster.defs.uploads import upload_grant_policy_from_env
    from axon_dagster.settings.code_location import UploadSettings
    from axon_dagster.storage.bandwidth import BandwidthSchedule

    for name in ("AXON_ENV", "AXON_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {**d, "AXON_DATA_FLOW_DIR": str(tmp_path / "data-flow")}.items():
        monkeypatch.setenv(name, value)
    policy = data_flow_policy_from_env()
    assert (policy.workdir, policy.staging_rejected, policy.max_attempts) == (str(tmp_path / "data-flow"), "keep", 7)
    assert (policy.follow_uploads, policy.follow_stall_seconds) == (False, 12.5)
    grants = upload_grant_policy_from_env()
    assert (grants.grant_ttl_seconds, grants.max_grants_per_robot, grants.min_bandwidth_mbps) == (1800, 3, 2.5)
    uploads = UploadSettings.load()
    assert (uploads.min_bandwidth_mbps, uploads.max_upload_attempts) == (2.5, 7)
    schedule = BandwidthSchedule.parse(d["AXON_UPLOAD_BANDWIDTH"])
    assert [(w.label, w.rate) for w in schedule.windows] == [("06:00-22:00", 5_000_000)] and schedule.default is None
    # Defaults: one grant per robot for 15 minutes, rejected staging deleted, uncapped.
    d = next(o for o in _cloud(render, "minimal-values") if o["kind"] == "ConfigMap"
             and o["metadata"]["name"] == "axon-cloud-env")["data"]
    assert "AXON_UPLOAD_BANDWIDTH" not in d
    assert (d["AXON_DATA_FLOW_FOLLOW_UPLOADS"], d["AXON_DATA_FLOW_FOLLOW_STALL_SECONDS"]) == ("true", "30")
    assert (d["AXON_UPLOAD_GRANT_TTL_SECONDS"], d["AXON_MAX_GRANTS_PER_ROBOT"], d["AXON_STAGING_REJECTED"], d["AXON_MIN_BANDWIDTH_MBPS"]) == (
        "900", "1", "delete", "10")


def test_an_azure_object_store_gets_the_blob_endpoint_not_the_s3_one(render, monkeypatch):
    objects = _cloud_with(render, "multi-robot-values", "objectStore.url=az://fleetdata/datasets/fleet",
                          "objectStore.endpointUrl=http://azurite.dev.svc:10000/fleetdata")
    d = next(o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "axon-cloud-env")["data"]
    assert d["AXON_OBJECT_STORE_URL"] == "az://fleetdata/datasets/fleet"
    assert d["AZURE_STORAGE_BLOB_ENDPOINT"] == "http://azurite.dev.svc:10000/fleetdata"
    assert "AWS_ENDPOINT_URL" not in d
    # The code location reads the same contract and builds an Azure store from it.
    from axon_dagster.storage.object_stores import object_store_from_url

    monkeypatch.setenv("AZURE_STORAGE_KEY", "a2V5")
    monkeypatch.setenv("AZURE_STORAGE_BLOB_ENDPOINT", d["AZURE_STORAGE_BLOB_ENDPOINT"])
    store = object_store_from_url(d["AXON_OBJECT_STORE_URL"])
    assert store.uri_for("x/ds") == "az://fleetdata/datasets/fleet/x/ds"
    assert store.endpoint.startswith("http://azurite.dev.svc:10000/fleetdata")


@pytest.mark.parametrize("strategy", ["initContainer", "hook"])
def test_cloud_migration_runs_before_the_api(render, strategy):
    rendered = render("axon-cloud", release="axon-cloud", sets=(f"api.migrations.strategy={strategy}",))
    api = next(o for o in rendered if o["kind"] == "Deployment" and o["metadata"]["name"] == "axon-cloud-api")
    pod = api["spec"]["template"]["spec"]
    jobs = _by_kind(rendered, "Job")
    if strategy == "initContainer":
        assert [c["command"] for c in pod["initContainers"]] == [["axon-dagster", "db", "upgrade"]]
        assert not jobs
    else:
        assert "initContainers" not in pod
        (job,) = jobs
        assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["axon-dagster", "db", "upgrade"]
    c = pod["containers"][0]
    assert c["command"] + c["args"] == ["axon-dagster", "api", "--host", "0.0.0.0", "--port", "8000"]
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"  # ready only while the database answers
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"  # alive even when it does not


def test_cloud_api_scales_out_with_replicas_hpa_and_disruption_budget(render):
    rendered = render("axon-cloud", release="axon-cloud")
    api = next(o for o in rendered if o["kind"] == "Deployment" and o["metadata"]["name"] == "axon-cloud-api")
    (hpa,) = _by_kind(rendered, "HorizontalPodAutoscaler")
    (pdb,) = _by_kind(rendered, "PodDisruptionBudget")
    assert "replicas" not in api["spec"]  # the HPA owns the count
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "axon-cloud-api"}
    assert hpa["spec"]["minReplicas"] == 2 and hpa["spec"]["maxReplicas"] >= 2
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert api["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"]  # HPA utilization needs a request
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == api["spec"]["selector"]["matchLabels"]
    env = {e["name"]: e.get("value") for e in api["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["AXON_API_WORKERS"] == "2"
    # Several replicas must not migrate at once: the default is the one pre-install/upgrade Job.
    assert "initContainers" not in api["spec"]["template"]["spec"] and len(_by_kind(rendered, "Job")) == 1

    fixed = render("axon-cloud", release="axon-cloud", sets=("api.autoscaling.enabled=false", "api.replicas=3",
                                                            "api.podDisruptionBudget.enabled=false", "api.workers=4"))
    api = next(o for o in fixed if o["kind"] == "Deployment" and o["metadata"]["name"] == "axon-cloud-api")
    assert api["spec"]["replicas"] == 3
    assert not _by_kind(fixed, "HorizontalPodAutoscaler") and not _by_kind(fixed, "PodDisruptionBudget")
    env = {e["name"]: e.get("value") for e in api["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["AXON_API_WORKERS"] == "4"


def test_cloud_rbac_is_least_privilege(render):
    rendered = _cloud(render, "production-like-values")
    (role,) = _by_kind(rendered, "Role")
    rules = {(g, r): sorted(rule["verbs"]) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]}
    assert rules == {
        ("batch", "jobs"): sorted(["create", "get", "list", "watch", "delete"]),
        ("", "pods"): ["get", "list", "watch"],
        ("", "pods/log"): ["get", "list", "watch"],
        ("ray.io", "rayjobs"): sorted(["create", "get", "list", "watch", "delete"]),
        ("ray.io", "rayclusters"): ["get", "list"],
    }
    assert not _by_kind(rendered, "ClusterRole") and not _by_kind(rendered, "ClusterRoleBinding")
    (binding,) = _by_kind(rendered, "RoleBinding")
    assert {s["name"] for s in binding["subjects"]} == {"axon-cloud-runs", "dagster"}
    # The code server and API get no API token at all.
    for dep in _by_kind(rendered, "Deployment"):
        assert dep["spec"]["template"]["spec"]["automountServiceAccountToken"] is False


def test_cloud_raycluster_uses_token_auth_from_the_secret(render):
    (rc,) = _by_kind(_cloud(render, "production-like-values"), "RayCluster")
    assert rc["metadata"]["name"] == "axon-cloud-ray"
    assert rc["spec"]["enableInTreeAutoscaling"] is True
    (wg,) = rc["spec"]["workerGroupSpecs"]
    assert (wg["minReplicas"], wg["maxReplicas"]) == (1, 10)
    for _, pod in [("head", rc["spec"]["headGroupSpec"]["template"]["spec"]), ("worker", wg["template"]["spec"])]:
        env = {e["name"]: e for e in pod["containers"][0]["env"]}
        assert env["RAY_AUTH_MODE"]["value"] == "token"
        assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "axon-runtime-prod", "key": "RAY_AUTH_TOKEN"}


def test_cloud_network_policies(render):
    rendered = _cloud(render, "production-like-values")
    nps = {o["metadata"]["name"]: o for o in _by_kind(rendered, "NetworkPolicy")}
    assert set(nps) == {"axon-cloud-code-server", "axon-cloud-api", "axon-cloud-ray"}
    code = nps["axon-cloud-code-server"]["spec"]
    assert code["ingress"][0]["ports"] == [{"port": 3030, "protocol": "TCP"}]
    peers = code["ingress"][0]["from"]
    assert peers[0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "dagster"}
    ray_ingress = nps["axon-cloud-ray"]["spec"]["ingress"]
    assert any(p.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name") == "kuberay-system"
               for rule in ray_ingress for p in rule.get("from", []))
    assert not _by_kind(_cloud(render, "minimal-values"), "NetworkPolicy")


def test_cloud_monitoring_is_switchable(render):
    kinds = lambda name: {o["kind"] for o in _cloud(render, name)}  # noqa: E731
    assert not {"ServiceMonitor", "PrometheusRule"} & kinds("minimal-values")
    prod = _cloud(render, "production-like-values")
    assert {"ServiceMonitor", "PrometheusRule"} <= {o["kind"] for o in prod}
    dash = next(o for o in prod if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "axon-cloud-dashboards")
    assert dash["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dash["metadata"]["namespace"] == "monitoring"
    for name, body in dash["data"].items():
        board = json.loads(body)
        assert board["panels"] and board["uid"]
        assert "__inputs" not in board and "${DS_" not in body, f"{name}: import placeholders"
        exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
        assert exprs and all("axon_" in e for e in exprs)
    (rule,) = _by_kind(prod, "PrometheusRule")
    alerts = [r for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r]
    assert len(alerts) >= 3
    assert all("axon_" in r["expr"] or "up{" in r["expr"] for r in alerts)


# ------------------------------------------------------------------ axon-edge specifics

def _edge(render, name, release="robot-1"):
    return render("axon-edge", CHARTS_DIR / "axon-edge" / "ci" / f"{name}.yaml", release=release)


def test_edge_agent_contract(render):
    rendered = _edge(render, "production-like-values", release="amr-0042")
    (dep,) = _by_kind(rendered, "Deployment")
    pod = dep["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True and pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert pod["nodeSelector"] == {"axon.io/robot": "amr-0042"}
    assert dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"]["type"] == "Recreate"
    (agent,) = pod["containers"]
    assert agent["args"] == ["axon-edge", "run"] and "command" not in agent  # the image's CMD, overridable
    env = {e["name"]: e for e in agent["env"]}
    assert env["AXON_ROBOT_ID"]["value"] == "amr-0042"
    assert env["AXON_CONTROL_PLANE_URL"]["value"] == "https://axon.example.com"
    assert env["AXON_ROBOT_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "axon-robot-amr-0042", "key": "AXON_ROBOT_TOKEN"}
    assert env["AXON_RECORDER_TRANSPORT"]["value"] == "ros2"
    assert env["ROS_DOMAIN_ID"]["value"] == "42"
    assert env["AXON_EDGE_DATA_DIR"]["value"] == "/data/edge"
    mounts = {m["mountPath"] for m in agent["volumeMounts"]}
    assert {"/data/edge", "/tmp", "/data/recordings"} <= mounts
    (pvc,) = _by_kind(rendered, "PersistentVolumeClaim")
    assert pvc["spec"]["storageClassName"] == "local-path"
    assert agent["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": 8090}


def test_edge_simulator_sidecar_is_dev_only(render):
    (prod,) = _by_kind(_edge(render, "production-like-values"), "Deployment")
    assert [c["name"] for c in prod["spec"]["template"]["spec"]["containers"]] == ["agent"]
    (dev,) = _by_kind(_edge(render, "multi-robot-values", release="robot-2"), "Deployment")
    pod = dev["spec"]["template"]["spec"]
    sim = next(c for c in pod["containers"] if c["name"] == "simulator")
    assert sim["command"] + sim["args"] == ["axon-sim", "--port", "8080", "--data-dir", "/data/recordings",
                                            "--robot-id", "robot-2"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["ROS_MASTER_URI"] == "http://127.0.0.1:11311"


def _agent_env(rendered):
    (dep,) = _by_kind(rendered, "Deployment")
    agent = next(c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == "agent")
    return {e["name"]: e.get("value") for e in agent["env"]}


def test_edge_recorder_and_teleop_transports(render):
    # http (default): the recorder URL, no ROS namespace.
    env = _agent_env(_edge(render, "minimal-values"))
    assert (env["AXON_RECORDER_TRANSPORT"], env["AXON_RECORDER_URL"], env["AXON_TELEOP"]) == (
        "http", "http://127.0.0.1:8080", "http")
    assert env["AXON_SUPERVISION_INTERVAL"] == "1"
    assert env["AXON_RECORDER_OUTPUT_DIR"] == "/data/recordings"  # where the agent looks for <task_id>.mcap
    assert "AXON_RECORDER_NAMESPACE" not in env
    # ros2: the recorder's ROS namespace, no URL.
    env = _agent_env(_edge(render, "production-like-values", release="amr-0042"))
    assert (env["AXON_RECORDER_TRANSPORT"], env["AXON_RECORDER_NAMESPACE"]) == ("ros2", "axon")
    assert "AXON_RECORDER_URL" not in env
    # ros1 recorder + ros1 teleop (ci/ros1-values.yaml), with the master the agent's node needs.
    env = _agent_env(_edge(render, "ros1-values", release="amr-ros1-0007"))
    assert (env["AXON_RECORDER_TRANSPORT"], env["AXON_RECORDER_NAMESPACE"], env["AXON_TELEOP"]) == ("ros1", "rec", "ros1")
    assert env["AXON_SUPERVISION_INTERVAL"] == "2" and env["ROS_MASTER_URI"] == "http://127.0.0.1:11311"
    assert "AXON_RECORDER_URL" not in env
    # ros2 recorder + ros2 teleop (ci/ros2-values.yaml): domain, discovery on the robot, no master, no URL.
    env = _agent_env(_edge(render, "ros2-values", release="amr-ros2-0017"))
    assert (env["AXON_RECORDER_TRANSPORT"], env["AXON_RECORDER_NAMESPACE"], env["AXON_TELEOP"]) == ("ros2", "axon", "ros2")
    assert (env["ROS_DOMAIN_ID"], env["ROS_AUTOMATIC_DISCOVERY_RANGE"], env["FASTDDS_BUILTIN_TRANSPORTS"]) == ("17", "LOCALHOST", "UDPv4")
    assert "ROS_MASTER_URI" not in env and "AXON_RECORDER_URL" not in env
    assert "ROS_AUTOMATIC_DISCOVERY_RANGE" not in _agent_env(_edge(render, "production-like-values", release="amr-0042"))
    # HTTP recorder (simulator) with ROS 1 teleop and a fractional supervision interval.
    env = _agent_env(_edge(render, "multi-robot-values", release="robot-2"))
    assert (env["AXON_RECORDER_TRANSPORT"], env["AXON_TELEOP"], env["AXON_SUPERVISION_INTERVAL"]) == ("http", "ros1", "0.5")
    # --set passes floats as strings: still accepted and rendered as given.
    env = _agent_env(render("axon-edge", CHARTS_DIR / "axon-edge" / "ci" / "minimal-values.yaml", release="robot-1",
                            sets=("recorder.supervisionIntervalSeconds=0.25",)))
    assert env["AXON_SUPERVISION_INTERVAL"] == "0.25"


def test_edge_rendered_env_is_accepted_by_the_agent_cli(render):
    """The agent parses exactly the env the chart renders (every ci values file)."""
    import os
    from unittest import mock

    from axon_edge import cli
    from axon_edge.access import is_loopback

    for values_file in ci_values("axon-edge"):
        env = {k: v for k, v in _agent_env(render("axon-edge", values_file, release="robot-1")).items() if v is not None}
        env["AXON_ROBOT_TOKEN"] = "t"  # from its Secret in the pod
        with mock.patch.dict(os.environ, env, clear=True):
            args = cli._parser().parse_args(["run"])
        assert args.recorder_transport == env["AXON_RECORDER_TRANSPORT"], values_file.name
        assert args.teleop == env["AXON_TELEOP"]
        assert float(args.supervision_interval) > 0
        if args.recorder_transport == "http":
            assert args.recorder_url
        else:
            from axon_dagster.recorder.srv import validate_namespace
            assert validate_namespace(args.recorder_namespace)
        if "ros1" in (args.recorder_transport, args.teleop):
            assert env.get("ROS_MASTER_URI"), values_file.name
        # Beyond loopback the agent refuses to start without a collector PIN: the chart must hand it one.
        assert args.host == env["AXON_EDGE_HOST"]
        assert is_loopback(args.host) or "AXON_COLLECTOR_PIN" in _agent_env(render("axon-edge", values_file, release="robot-1"))


def _agent(rendered):
    (dep,) = _by_kind(rendered, "Deployment")
    return next(c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == "agent")


def test_edge_exposed_agent_gets_its_collector_pin_from_a_secret(render):
    agent = _agent(_edge(render, "minimal-values"))
    env = {e["name"]: e for e in agent["env"]}
    assert env["AXON_EDGE_HOST"]["value"] == "0.0.0.0"
    # the robot token's Secret by default, its own Secret when named
    assert env["AXON_COLLECTOR_PIN"]["valueFrom"]["secretKeyRef"] == {"name": "axon-robot-robot-1", "key": "AXON_COLLECTOR_PIN"}
    assert agent["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": 8090}  # /healthz needs no PIN
    agent = _agent(render("axon-edge", CHARTS_DIR / "axon-edge" / "ci" / "minimal-values.yaml", release="robot-1",
                          sets=("collectorPin.secretName=robot-1-collector", "collectorPin.key=pin")))
    pin = next(e for e in agent["env"] if e["name"] == "AXON_COLLECTOR_PIN")
    assert pin["valueFrom"]["secretKeyRef"] == {"name": "robot-1-collector", "key": "pin"}


def test_edge_loopback_agent_needs_no_pin_and_probes_from_inside(render):
    values = CHARTS_DIR / "axon-edge" / "ci" / "minimal-values.yaml"
    agent = _agent(render("axon-edge", values, release="robot-1", sets=("listenHost=127.0.0.1",)))
    env = {e["name"]: e.get("value") for e in agent["env"]}
    assert env["AXON_EDGE_HOST"] == "127.0.0.1" and "AXON_COLLECTOR_PIN" not in env
    # the kubelet cannot reach a loopback-only agent: the probe runs in the container
    for probe in (agent["readinessProbe"], agent["livenessProbe"]):
        assert "httpGet" not in probe
        assert "http://127.0.0.1:8090/healthz" in probe["exec"]["command"][-1]
    with pytest.raises(HelmError, match="serviceMonitor needs the agent reachable"):
        render("axon-edge", values, release="robot-1", sets=("listenHost=127.0.0.1", "metrics.serviceMonitor.enabled=true"))


def test_cloud_refuses_an_hpa_whose_minimum_is_above_its_maximum(render):
    with pytest.raises(HelmError, match=r"minReplicas \(5\) is above api.autoscaling.maxReplicas \(3\)"):
        render("axon-cloud", release="axon-cloud", sets=("api.autoscaling.minReplicas=5", "api.autoscaling.maxReplicas=3"))


@pytest.mark.parametrize(("sets", "expected"), [
    (["recorder.transport=http", "recorder.url="], "recorder.url is required"),
    (["recorder.transport=ros1", "ros.masterUri="], "ros.masterUri"),
    (["teleop.transport=ros1", "ros.masterUri="], "ros.masterUri"),
])
def test_edge_refuses_incomplete_transport_settings(render, sets, expected):
    with pytest.raises(HelmError, match=expected):
        render("axon-edge", CHARTS_DIR / "axon-edge" / "ci" / "minimal-values.yaml", release="robot-1", sets=tuple(sets))


def test_edge_one_release_per_robot_never_collides(render):
    values = CHARTS_DIR / "axon-edge" / "ci" / "minimal-values.yaml"
    seen = {}
    for robot in ("robot-1", "robot-2", "robot-3"):
        rendered = render("axon-edge", values, release=robot, sets=(f"robotId={robot}",))
        (dep,) = _by_kind(rendered, "Deployment")
        assert dep["spec"]["template"]["spec"]["nodeSelector"] == {"axon.io/robot": robot}
        for o in rendered:
            key = (o["kind"], o["metadata"]["name"])
            assert key not in seen, f"{key} rendered by both {seen.get(key)} and {robot}"
            seen[key] = robot


# ------------------------------------------------------------------ values.schema.json

@pytest.mark.parametrize(("chart", "sets", "expected"), [
    ("axon-cloud", ["api.replicas=many"], ["/api/replicas", "want integer"]),
    ("axon-cloud", ["api.workers=0"], ["/api/workers"]),
    ("axon-cloud", ["api.autoscaling.maxReplicas=lots"], ["/api/autoscaling/maxReplicas", "want integer"]),
    ("axon-cloud", ["api.podDisruptionBudget.maxUnavailable=1"], ["maxUnavailable"]),
    ("axon-cloud", ["api.port=http"], ["/api/port", "want integer"]),
    ("axon-cloud", ["inspection.runner=spark"], ["/inspection/runner"]),
    ("axon-cloud", ["objectStore.url=bucket-without-scheme"], ["/objectStore/url"]),
    ("axon-cloud", ["securityContext.readOnlyRootFilesystem=false"], ["/securityContext/readOnlyRootFilesystem"]),
    ("axon-cloud", ["podSecurityContext.runAsNonRoot=false"], ["/podSecurityContext/runAsNonRoot"]),
    ("axon-cloud", ["codeServer.resources.limits=null"], ["/codeServer/resources"]),
    ("axon-cloud", ["apiReplicas=2"], ["apiReplicas"]),  # typo of a key: refused, not ignored
    ("axon-cloud", ["codeServer.metrics.port=metrics"], ["/codeServer/metrics/port", "want integer"]),
    ("axon-cloud", ["codeServer.metrics.port=70000"], ["/codeServer/metrics/port", "maximum"]),
    ("axon-cloud", ["codeServer.metrics.enabled=maybe"], ["/codeServer/metrics/enabled", "want boolean"]),
    ("axon-cloud", ["codeServer.review.rejectedPolicy=shred"], ["/codeServer/review/rejectedPolicy"]),
    ("axon-cloud", ["codeServer.alerts.failureRatio=1.5"], ["/codeServer/alerts/failureRatio"]),
    ("axon-cloud", ["codeServer.alerts.failureRatio=0"], ["/codeServer/alerts/failureRatio"]),
    ("axon-cloud", ["codeServer.alerts.windowSeconds=0"], ["/codeServer/alerts/windowSeconds"]),
    ("axon-cloud", ["codeServer.alerts.minRuns=some"], ["/codeServer/alerts/minRuns"]),
    # The webhook URL is never a chart value: only a Secret reference.
    ("axon-cloud", ["codeServer.alerts.webhookUrl=https://hooks.example.com/T0/B0/x"], ["/codeServer/alerts", "webhookUrl"]),
    ("axon-cloud", ["networkPolicy.monitoringPodLabels.app=1"], ["/networkPolicy/monitoringPodLabels/app", "want string"]),
    ("axon-edge", ["robotId=robot-1", "controlPlaneUrl=http://x", "ros.domainId=abc"], ["/ros/domainId", "want integer"]),
    ("axon-edge", ["robotId=robot-1", "controlPlaneUrl=http://x", "ros.domainId=300"], ["/ros/domainId", "maximum"]),
    ("axon-edge", ["robotId=robot-1", "controlPlaneUrl=http://x", "hostNetwork=yes-please"], ["/hostNetwork", "want boolean"]),
    ("axon-edge", ["controlPlaneUrl=http://x"], ["/robotId"]),  # required value missing
    ("axon-edge", ["robotId=Robot_1", "controlPlaneUrl=http://x"], ["/robotId"]),
    ("axon-edge", ["robotId=robot-1", "controlPlaneUrl=ftp://x"], ["/controlPlaneUrl"]),
    ("axon-edge", ["robotId=robot-1", "controlPlaneUrl=http://x", "recorder.transport=ros3"], ["/recorder/transport"]),
    ("axon-edge", ["robotId=robot-1", "controlPlaneUrl=http://x", "teleop.transport=ros3"], ["/teleop/transport"]),
    ("axon-edge", ["robotId=robot-1", "controlPlaneUrl=http://x", "ros.automaticDiscoveryRange=LAN"], ["/ros/automaticDiscoveryRange"]),
    ("axon-edge", ["robotId=robot-1", "controlPlaneUrl=http://x", "recorder.namespace=1axon"], ["/recorder/namespace"]),
    ("axon-edge", ["robotId=robot-1", "controlPlaneUrl=http://x", "recorder.supervisionIntervalSeconds=0"],
     ["/recorder/supervisionIntervalSeconds"]),
    ("axon-edge", ["robotId=robot-1", "controlPlaneUrl=http://x", "recorder.supervisionIntervalSeconds=soon"],
     ["/recorder/supervisionIntervalSeconds"]),
    ("axon-edge", ["robotId=robot-1", "controlPlaneUrl=http://x", "teleop.topic=/x"], ["/teleop", "topic"]),
])
def test_schema_refuses_wrong_values_with_a_clear_message(render, chart, sets, expected):
    with pytest.raises(HelmError) as err:
        render(chart, release="schema-check", sets=tuple(sets))
    message = str(err.value)
    assert "values don't meet the specifications of the schema" in message
    for fragment in expected:
        assert fragment in message, message


# ------------------------------------------------------------------ the checks bite

def _good_deployment(render):
    return copy.deepcopy(next(o for o in _cloud(render, "minimal-values") if o["kind"] == "Deployment"))


def test_validator_rejects_a_broken_object(render):
    dep = _good_deployment(render)
    assert validate_object(dep) == []
    dep["spec"]["replicas"] = "two"
    assert any("replicas" in p for p in validate_object(dep))
    dep = _good_deployment(render)
    dep["spec"]["template"]["spec"]["containers"][0]["imagePullPolicie"] = "Always"  # typo: strict mode
    assert validate_object(dep)
    assert K8S_VERSION == "1.30"


def test_custom_resource_checks_bite(render):
    (rc,) = _by_kind(_cloud(render, "multi-robot-values"), "RayCluster")
    assert check_custom_resource(rc) == []
    broken = copy.deepcopy(rc)
    del broken["spec"]["headGroupSpec"]["template"]
    broken["spec"]["workerGroupSpecs"][0]["minReplicas"] = 20
    broken["spec"]["headGroupSpec"]["rayStartParams"]["num-cpus"] = 0
    problems = check_custom_resource(broken)
    assert any("headGroupSpec.template" in p or "template" in p for p in problems)
    assert any("minReplicas" in p for p in problems)
    assert any("rayStartParams.num-cpus" in p for p in problems)
    bad_tpl = copy.deepcopy(rc)
    bad_tpl["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["resources"] = "lots"
    assert check_custom_resource(bad_tpl)


def test_security_check_bites(render):
    dep = _good_deployment(render)
    assert check_workload_security(dep) == []
    pod = dep["spec"]["template"]["spec"]
    pod["securityContext"]["runAsNonRoot"] = False
    pod["containers"][0]["securityContext"].pop("runAsNonRoot", None)
    pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] = False
    pod["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    del pod["containers"][0]["resources"]["limits"]
    problems = "\n".join(check_workload_security(dep))
    for fragment in ("runAsNonRoot", "readOnlyRootFilesystem", "allowPrivilegeEscalation", "limits"):
        assert fragment in problems


def test_secret_leak_check_bites(render):
    cm = copy.deepcopy(next(o for o in _cloud(render, "minimal-values") if o["kind"] == "ConfigMap"))
    assert check_secret_handling(cm) == []
    leaky = copy.deepcopy(cm)
    leaky["data"]["AXON_ADMIN_TOKEN"] = "s3cr3t"
    assert check_secret_handling(leaky)
    leaky = copy.deepcopy(cm)
    leaky["data"]["DB"] = "postgresql+psycopg://axon:hunter2@db:5432/axon"
    assert check_secret_handling(leaky)
    dep = _good_deployment(render)
    api = next(o for o in _cloud(render, "minimal-values") if o["metadata"]["name"] == "axon-cloud-api"
               and o["kind"] == "Deployment")
    api = copy.deepcopy(api)
    api["spec"]["template"]["spec"]["containers"][0]["env"].append({"name": "AWS_SECRET_ACCESS_KEY", "value": "x"})
    assert check_secret_handling(api)
    code = copy.deepcopy(next(o for o in _cloud(render, "minimal-values") if o["kind"] == "Deployment"
                              and o["metadata"]["name"] == "axon-cloud-code"))
    code["spec"]["template"]["spec"]["containers"][0]["env"].append(
        {"name": "AXON_ALERT_WEBHOOK_URL", "value": "https://hooks.example.com/T0/B0/x"})
    assert check_secret_handling(code)
    assert check_secret_handling(dep) == []


def test_kuberay_runner_config_from_the_rendered_chart_targets_the_rendered_cluster(render):
    """The env ConfigMap feeds axon_dagster.inspection.kuberay; its RayJob must hit this chart's
    RayCluster, use its Secret and pass the NetworkPolicy."""
    from axon_dagster.inspection.kuberay import KubeRayRunnerConfig, build_rayjob_manifest

    rendered = _cloud(render, "production-like-values")
    env = next(o for o in rendered if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "axon-cloud-env")["data"]
    cfg = KubeRayRunnerConfig.from_env(env)
    (rc,) = _by_kind(rendered, "RayCluster")
    head_image = rc["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["image"]
    assert cfg.image is None  # the runner submits with the cluster's head image
    job = build_rayjob_manifest(cfg, name="axon-inspect-check", dataset_uri="s3://b/d", requirements={},
                                output_uri="s3://b/r", image=head_image)
    assert job["spec"]["clusterSelector"] == {"ray.io/cluster": rc["metadata"]["name"]}
    assert job["metadata"]["namespace"] == "axon"
    token_ref = job["spec"]["submitterPodTemplate"]["spec"]["containers"][0]["env"][1]["valueFrom"]["secretKeyRef"]
    head_ref = next(e for e in rc["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["env"]
                    if e["name"] == "RAY_AUTH_TOKEN")["valueFrom"]["secretKeyRef"]
    assert token_ref == head_ref
    ray_np = next(o for o in rendered if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "axon-cloud-ray")
    allowed = [p.get("podSelector", {}).get("matchLabels", {}) for r in ray_np["spec"]["ingress"] for p in r.get("from", [])]
    labels = job["spec"]["submitterPodTemplate"]["metadata"]["labels"]
    assert any(sel and all(labels.get(k) == v for k, v in sel.items()) for sel in allowed)
    assert validate_object(job) == [] and check_workload_security(job) == []

"""KubeRay inspection runner: RayJob manifest building and status handling.

There is no Kubernetes API on the build machines: `FakeCustomObjectsApi` stands in for
kubernetes.client.CustomObjectsApi (same method names and arguments) with scripted statuses.
"""

from __future__ import annotations

import importlib.util
import json
import shlex
import sys
from pathlib import Path

import pytest

from axon_dagster.domain import Requirements
from axon_dagster.inspection.errors import InspectionInfrastructureError
from axon_dagster.inspection.kuberay import (
    ENTRYPOINT_MODULE,
    KubeRayJobError,
    KubeRayJobFailed,
    KubeRayJobStopped,
    KubeRayJobTimeout,
    KubeRayRunner,
    KubeRayRunnerConfig,
    KubeRaySubmitError,
    build_entrypoint,
    build_rayjob_manifest,
    interpret_status,
    rayjob_name,
)

DATASET = "s3://axon-edge-cache/robot-1/task-42/recording.lance"
OUTPUT = "s3://axon-datasets/reports/task-42.json"
# Topic names with quotes and $ prove the requirements survive the shell.
REQUIREMENTS = {"min_duration_seconds": 5, "required_topics": ["/camera/image_raw", "/joint_states", "/it's \"quoted\" $HOME"]}
# What the entrypoint carries: every key pinned, so the cluster's defaults cannot drift from ours.
PINNED = Requirements.from_dict(REQUIREMENTS).to_dict()


def config(**overrides) -> KubeRayRunnerConfig:
    base = dict(namespace="axon", cluster_name="axon-cloud-ray", image="axon-ray:0.1.0",
                auth_secret_name="axon-runtime", timeout_s=60, poll_interval_s=5)
    return KubeRayRunnerConfig(**{**base, **overrides})


class FakeApiException(Exception):
    """Shaped like kubernetes.client.ApiException: .status, .reason, .body."""

    def __init__(self, status: int, reason: str = "", message: str = ""):
        super().__init__(f"({status}) {reason}")
        self.status, self.reason = status, reason
        self.body = json.dumps({"message": message}) if message else None


class FakeCustomObjectsApi:
    """A fake kubernetes.client.CustomObjectsApi: stores objects, replays scripted RayJob statuses."""

    def __init__(self, statuses=(), *, clusters=("axon-cloud-ray",), create_error=None, get_errors=()):
        self.objects: dict[tuple[str, str, str], dict] = {}
        for c in clusters:
            self.objects[("rayclusters", "axon", c)] = {
                "kind": "RayCluster", "metadata": {"name": c},
                "spec": {"headGroupSpec": {"template": {"spec": {"containers": [{"image": "axon-ray:tilt-0123"}]}}}}}
        self.statuses = list(statuses)
        self.create_error = create_error
        self.get_errors = list(get_errors)  # raised (in order) by RayJob reads before statuses
        self.calls: list[tuple] = []

    def create_namespaced_custom_object(self, group, version, namespace, plural, body, **kw):
        self.calls.append(("create", group, version, namespace, plural, body["metadata"]["name"]))
        if self.create_error:
            raise self.create_error
        key = (plural, namespace, body["metadata"]["name"])
        if key in self.objects:
            raise FakeApiException(409, "Conflict")
        self.objects[key] = json.loads(json.dumps(body))
        return self.objects[key]

    def get_namespaced_custom_object(self, group, version, namespace, plural, name, **kw):
        self.calls.append(("get", group, version, namespace, plural, name))
        if plural == "rayjobs" and self.get_errors:
            raise self.get_errors.pop(0)
        key = (plural, namespace, name)
        if key not in self.objects:
            raise FakeApiException(404, "Not Found")
        obj = self.objects[key]
        if plural == "rayjobs" and self.statuses:
            nxt = self.statuses.pop(0)
            if nxt is None:  # scripted deletion by someone else
                del self.objects[key]
                raise FakeApiException(404, "Not Found")
            obj["status"] = nxt
        return obj

    def delete_namespaced_custom_object(self, group, version, namespace, plural, name, **kw):
        self.calls.append(("delete", group, version, namespace, plural, name))
        if self.objects.pop((plural, namespace, name), None) is None:
            raise FakeApiException(404, "Not Found")

    def verbs(self, plural="rayjobs"):
        return [c[0] for c in self.calls if c[4] == plural]


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def runner(api, clock=None, **cfg) -> KubeRayRunner:
    clock = clock or FakeClock()
    return KubeRayRunner(config(**cfg), api=api, clock=clock, sleep=clock.sleep)


def manifest(**kw):
    return build_rayjob_manifest(config(), name=kw.pop("name", "axon-inspect-abc-123"), dataset_uri=DATASET,
                                 requirements=kw.pop("requirements", REQUIREMENTS), output_uri=OUTPUT, **kw)


# ------------------------------------------------------------------------------ manifest

def test_manifest_targets_the_existing_cluster_with_the_inspection_entrypoint():
    m = manifest(labels={"dagster/run-id": "r1"})
    assert (m["apiVersion"], m["kind"]) == ("ray.io/v1", "RayJob")
    assert m["metadata"]["namespace"] == "axon"
    spec = m["spec"]
    assert spec["clusterSelector"] == {"ray.io/cluster": "axon-cloud-ray"}
    assert "rayClusterSpec" not in spec and spec["shutdownAfterJobFinishes"] is False
    assert spec["submissionMode"] == "K8sJobMode"
    assert spec["activeDeadlineSeconds"] >= 60
    argv = shlex.split(spec["entrypoint"])
    assert argv[:3] == ["python", "-m", ENTRYPOINT_MODULE]
    args = dict(zip(argv[3::2], argv[4::2], strict=True))
    assert args == {"--dataset": DATASET, "--requirements": json.dumps(PINNED, sort_keys=True, separators=(",", ":")),
                    "--output": OUTPUT}
    assert json.loads(args["--requirements"]) == PINNED  # quotes and $ survive the shell
    assert Requirements.from_dict(json.loads(args["--requirements"])).required_topics[-1] == "/it's \"quoted\" $HOME"
    assert m["metadata"]["labels"]["dagster/run-id"] == "r1"
    assert m["metadata"]["annotations"] == {"axon.io/dataset-uri": DATASET, "axon.io/output-uri": OUTPUT}


def test_token_auth_comes_from_the_secret_and_no_secret_value_is_inlined():
    m = manifest()
    pod = m["spec"]["submitterPodTemplate"]["spec"]
    (c,) = pod["containers"]
    env = {e["name"]: e for e in c["env"]}
    assert env["RAY_AUTH_MODE"]["value"] == "token"
    assert env["RAY_AUTH_TOKEN"] == {"name": "RAY_AUTH_TOKEN",
                                     "valueFrom": {"secretKeyRef": {"name": "axon-runtime", "key": "RAY_AUTH_TOKEN"}}}
    assert "value" not in env["RAY_AUTH_TOKEN"]
    assert m["spec"]["submitterPodTemplate"]["metadata"]["labels"]["axon.io/ray-client"] == "true"
    assert "runtimeEnvYAML" not in m["spec"]


def test_submitter_pod_is_locked_down():
    pod = manifest()["spec"]["submitterPodTemplate"]["spec"]
    (c,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["resources"]["limits"]["cpu"] and c["resources"]["limits"]["memory"]
    assert pod["automountServiceAccountToken"] is False


def _chart_checks():
    pytest.importorskip("kubernetes_validate")
    path = Path(__file__).parent / "charts" / "k8s_checks.py"
    spec = importlib.util.spec_from_file_location("axon_chart_k8s_checks", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, mod)
    spec.loader.exec_module(mod)
    return mod


def test_manifest_passes_the_same_checks_as_the_charts():
    checks = _chart_checks()
    m = manifest()
    assert checks.check_custom_resource(m) == []  # includes the submitter pod vs the k8s 1.30 Pod schema
    assert checks.check_workload_security(m) == []
    assert checks.check_secret_handling(m) == []
    m["spec"]["submitterPodTemplate"]["spec"]["containers"][0]["resources"] = "small"
    assert checks.check_custom_resource(m)


@pytest.mark.parametrize("requirements", [REQUIREMENTS, json.dumps(REQUIREMENTS)])
def test_requirements_as_mapping_or_json(requirements):
    assert json.loads(shlex.split(build_entrypoint(DATASET, requirements, OUTPUT))[6]) == PINNED


def test_requirements_object_with_to_dict():
    class Req:
        def to_dict(self):
            return {"min_duration_seconds": 1}

    assert '"min_duration_seconds":1' in build_entrypoint(DATASET, Req(), OUTPUT)
    req = Requirements.from_dict({"max_gap_seconds": 0.5})
    assert json.loads(shlex.split(build_entrypoint(DATASET, req, OUTPUT))[6]) == req.to_dict()


@pytest.mark.parametrize(("dataset", "requirements", "output", "message"), [
    (DATASET, "{not json", OUTPUT, "not valid JSON"),
    (DATASET, ["a"], OUTPUT, "must be a mapping"),
    (DATASET, {"min_duration_s": 5}, OUTPUT, "unknown requirement key"),
    (DATASET, {"auto_approve": 0.5, "review_floor": 0.8}, OUTPUT, "review_floor"),
    ("", REQUIREMENTS, OUTPUT, "dataset_uri"),
    (DATASET, REQUIREMENTS, "  ", "output_uri"),
])
def test_bad_inputs_are_refused_before_anything_is_submitted(dataset, requirements, output, message):
    api = FakeCustomObjectsApi()
    with pytest.raises(ValueError, match=message):
        runner(api).run(dataset, requirements, output)
    assert api.calls == []


def test_names_are_dns_labels_unique_per_attempt_and_stable_per_dataset():
    a, b = rayjob_name(DATASET, OUTPUT), rayjob_name(DATASET, OUTPUT)
    assert a != b and a.rsplit("-", 1)[0] == b.rsplit("-", 1)[0]
    assert len(a) <= 47 and a.startswith("axon-inspect-")
    assert rayjob_name(DATASET, OUTPUT, nonce="x1") == rayjob_name(DATASET, OUTPUT, nonce="x1")
    with pytest.raises(ValueError):
        manifest(name="Not_A_Label")
    with pytest.raises(ValueError):
        manifest(name="a" * 48)


# ------------------------------------------------------------------------------ config

CHART_ENV = {  # what charts/axon-cloud puts in its env ConfigMap
    "AXON_KUBERAY_NAMESPACE": "axon",
    "AXON_KUBERAY_CLUSTER": "axon-cloud-ray",
    "AXON_KUBERAY_AUTH_SECRET_NAME": "axon-runtime",
    "AXON_KUBERAY_TIMEOUT_SECONDS": "7200",
}


def test_config_from_the_chart_env():
    c = KubeRayRunnerConfig.from_env(CHART_ENV)
    assert (c.namespace, c.cluster_name, c.image, c.auth_secret_name, c.timeout_s) == (
        "axon", "axon-cloud-ray", None, "axon-runtime", 7200.0)
    assert KubeRayRunnerConfig.from_env(CHART_ENV | {"AXON_KUBERAY_IMAGE": "axon-ray:1"}).image == "axon-ray:1"


@pytest.mark.parametrize(("drop", "override", "message"), [
    ("AXON_KUBERAY_CLUSTER", {}, "AXON_KUBERAY_CLUSTER is not set"),
    ("AXON_KUBERAY_AUTH_SECRET_NAME", {}, "AXON_KUBERAY_AUTH_SECRET_NAME is not set"),
    (None, {"AXON_KUBERAY_TIMEOUT_SECONDS": "an hour"}, "AXON_KUBERAY_TIMEOUT_SECONDS must be a number"),
    (None, {"AXON_KUBERAY_TIMEOUT_SECONDS": "-1"}, "must be positive"),
    (None, {"AXON_KUBERAY_CLUSTER": "Axon_Ray"}, "cluster_name must be a Kubernetes name"),
])
def test_config_errors_are_clear(drop, override, message):
    env = {k: v for k, v in CHART_ENV.items() if k != drop} | override
    with pytest.raises(ValueError, match=message):
        KubeRayRunnerConfig.from_env(env)


def test_submitter_never_runs_as_root():
    with pytest.raises(ValueError, match="root"):
        config(run_as_user=0)


# ------------------------------------------------------------------------------ status mapping

def _status(job="", deployment="", **extra):
    return {"jobStatus": job, "jobDeploymentStatus": deployment, **extra}


@pytest.mark.parametrize("status", [None, {}, _status("", "Initializing"), _status("PENDING", "Running"),
                                    _status("RUNNING", "Running"), _status("", "Waiting"), _status("", "Retrying")])
def test_running_states_keep_polling(status):
    assert interpret_status("j", "axon", status, dataset_uri=DATASET, output_uri=OUTPUT) is None


def test_succeeded_is_a_result():
    r = interpret_status("j", "axon", _status("SUCCEEDED", "Complete", jobId="j-abc", startTime="t0", endTime="t1"),
                         dataset_uri=DATASET, output_uri=OUTPUT)
    assert r.succeeded and r.output_uri == OUTPUT and r.ray_job_id == "j-abc" and r.end_time == "t1"


@pytest.mark.parametrize(("status", "error", "fragment"), [
    (_status("FAILED", "Complete", message="Job entrypoint command failed with exit code 1"), KubeRayJobFailed, "exit code 1"),
    (_status("STOPPED", "Complete"), KubeRayJobStopped, "stopped"),
    (_status("RUNNING", "Failed", reason="DeadlineExceeded", message="activeDeadlineSeconds exceeded"), KubeRayJobFailed,
     "DeadlineExceeded"),
    (_status("", "ValidationFailed", message="clusterSelector and rayClusterSpec both set"), KubeRayJobFailed, "ValidationFailed"),
    (_status("", "Failed", reason="SubmissionFailed"), KubeRayJobFailed, "SubmissionFailed"),
    (_status("", "Suspended"), KubeRayJobStopped, "suspended"),
    (_status("", "Complete"), KubeRayJobFailed, "job status"),
])
def test_every_other_end_is_an_infrastructure_error(status, error, fragment):
    with pytest.raises(error) as err:
        interpret_status("axon-inspect-x", "axon", status, dataset_uri=DATASET, output_uri=OUTPUT)
    assert isinstance(err.value, InspectionInfrastructureError)  # never a verdict on the data
    assert err.value.dataset_path == DATASET and err.value.job_name == "axon-inspect-x"
    assert fragment in str(err.value)


# ------------------------------------------------------------------------------ runner

def test_run_submits_polls_and_cleans_up_on_success():
    api = FakeCustomObjectsApi([_status("", "Initializing"), _status("PENDING", "Running"),
                                _status("RUNNING", "Running"), _status("SUCCEEDED", "Complete")])
    clock = FakeClock()
    result = runner(api, clock).run(DATASET, REQUIREMENTS, OUTPUT, labels={"dagster/run-id": "r1"})
    assert result.succeeded and result.output_uri == OUTPUT
    create = next(c for c in api.calls if c[0] == "create")
    assert create[1:5] == ("ray.io", "v1", "axon", "rayjobs")
    assert ("get", "ray.io", "v1", "axon", "rayclusters", "axon-cloud-ray") in api.calls
    assert api.verbs() == ["create", "get", "get", "get", "get", "delete"]
    assert clock.sleeps == [5, 5, 5]
    assert not [k for k in api.objects if k[0] == "rayjobs"]


def test_failed_job_raises_and_is_cleaned_up():
    api = FakeCustomObjectsApi([_status("RUNNING", "Running"), _status("FAILED", "Complete", message="boom")])
    with pytest.raises(KubeRayJobFailed, match="boom"):
        runner(api).run(DATASET, REQUIREMENTS, OUTPUT)
    assert api.verbs()[-1] == "delete"


def test_finished_jobs_can_be_kept_for_debugging():
    api = FakeCustomObjectsApi([_status("FAILED", "Complete")])
    with pytest.raises(KubeRayJobFailed):
        runner(api, delete_finished=False).run(DATASET, REQUIREMENTS, OUTPUT)
    assert "delete" not in api.verbs()


def test_timeout_stops_the_job_once():
    api = FakeCustomObjectsApi([_status("RUNNING", "Running")] * 100)
    clock = FakeClock()
    with pytest.raises(KubeRayJobTimeout, match="after 12 s") as err:
        runner(api, clock, timeout_s=12, delete_finished=False).run(DATASET, REQUIREMENTS, OUTPUT)
    assert err.value.job_status == "RUNNING"
    assert clock.now == pytest.approx(12) and clock.sleeps == [5, 5, 2]
    assert api.verbs().count("delete") == 1


def test_missing_cluster_is_refused_before_creating_anything():
    api = FakeCustomObjectsApi(clusters=())
    with pytest.raises(KubeRaySubmitError, match="RayCluster 'axon-cloud-ray' not found"):
        runner(api).run(DATASET, REQUIREMENTS, OUTPUT)
    assert "create" not in api.verbs()


def test_api_refusal_is_an_infrastructure_error_with_the_reason():
    api = FakeCustomObjectsApi(create_error=FakeApiException(403, "Forbidden", 'rayjobs.ray.io is forbidden: User "x"'))
    with pytest.raises(KubeRaySubmitError, match="HTTP 403 Forbidden rayjobs.ray.io is forbidden") as err:
        runner(api).run(DATASET, REQUIREMENTS, OUTPUT)
    assert isinstance(err.value, InspectionInfrastructureError)


def test_replayed_submission_under_the_same_name_adopts_the_job():
    api = FakeCustomObjectsApi([_status("SUCCEEDED", "Complete")])
    r = runner(api, delete_finished=False)
    assert r.submit(DATASET, REQUIREMENTS, OUTPUT, name="axon-inspect-run-1") == "axon-inspect-run-1"
    assert r.run(DATASET, REQUIREMENTS, OUTPUT, name="axon-inspect-run-1").succeeded
    assert api.verbs().count("create") == 2 and len([k for k in api.objects if k[0] == "rayjobs"]) == 1


def test_a_different_job_under_a_taken_name_is_refused():
    api = FakeCustomObjectsApi()
    r = runner(api)
    r.submit(DATASET, REQUIREMENTS, OUTPUT, name="axon-inspect-run-1")
    with pytest.raises(KubeRaySubmitError, match="different RayJob"):
        r.submit("s3://other/dataset", REQUIREMENTS, OUTPUT, name="axon-inspect-run-1")


def test_transient_status_read_errors_are_retried():
    api = FakeCustomObjectsApi([_status("SUCCEEDED", "Complete")],
                               get_errors=[FakeApiException(500, "Internal Server Error"), ConnectionError("reset")])
    assert runner(api).run(DATASET, REQUIREMENTS, OUTPUT).succeeded


def test_persistent_status_read_errors_give_up():
    api = FakeCustomObjectsApi(get_errors=[FakeApiException(503, "Service Unavailable")] * 10)
    with pytest.raises(KubeRayJobError, match="cannot read the RayJob status"):
        runner(api, timeout_s=1000).run(DATASET, REQUIREMENTS, OUTPUT)


def test_job_deleted_by_someone_else_is_reported_as_stopped():
    api = FakeCustomObjectsApi([_status("RUNNING", "Running"), None])
    with pytest.raises(KubeRayJobStopped, match="deleted before it finished"):
        runner(api).run(DATASET, REQUIREMENTS, OUTPUT)


def test_module_imports_without_kubernetes():
    import subprocess

    code = ("import sys; sys.modules['kubernetes'] = None; "
            "import axon_dagster.inspection.kuberay as k; "
            "r = k.KubeRayRunner(k.KubeRayRunnerConfig(namespace='a', cluster_name='c', image='i', auth_secret_name='s')); "
            "import axon_dagster.inspection.errors as e\n"
            "try:\n    r.api\nexcept e.InspectionInfrastructureError as exc:\n    print('ok', exc)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.startswith("ok") and "kubernetes" in out.stdout, out.stderr


def test_submitter_uses_the_clusters_head_image_unless_configured():
    api = FakeCustomObjectsApi([_status("SUCCEEDED", "Complete")])
    runner(api, image=None, delete_finished=False).run(DATASET, REQUIREMENTS, OUTPUT)
    (job,) = [o for k, o in api.objects.items() if k[0] == "rayjobs"]
    assert job["spec"]["submitterPodTemplate"]["spec"]["containers"][0]["image"] == "axon-ray:tilt-0123"
    api = FakeCustomObjectsApi([_status("SUCCEEDED", "Complete")])
    runner(api, image="registry/axon-ray:9", delete_finished=False).run(DATASET, REQUIREMENTS, OUTPUT)
    (job,) = [o for k, o in api.objects.items() if k[0] == "rayjobs"]
    assert job["spec"]["submitterPodTemplate"]["spec"]["containers"][0]["image"] == "registry/axon-ray:9"


def test_cluster_without_a_head_image_needs_an_explicit_one():
    api = FakeCustomObjectsApi()
    api.objects[("rayclusters", "axon", "axon-cloud-ray")]["spec"] = {}
    with pytest.raises(KubeRaySubmitError, match="AXON_KUBERAY_IMAGE"):
        runner(api, image=None).run(DATASET, REQUIREMENTS, OUTPUT)
    with pytest.raises(ValueError, match="no submitter image"):
        build_rayjob_manifest(config(image=None), name="n", dataset_uri=DATASET, requirements={}, output_uri=OUTPUT)


def test_no_kubeconfig_is_an_infrastructure_error(tmp_path, monkeypatch):
    pytest.importorskip("kubernetes")
    from axon_dagster.inspection.kuberay import default_custom_objects_api

    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(InspectionInfrastructureError, match="no Kubernetes configuration"):
        default_custom_objects_api()


# ------------------------------------------------------------------------------ inspect_recording(runner="kuberay")

class ExecutingCustomObjectsApi(FakeCustomObjectsApi):
    """Runs the RayJob's entrypoint when the RayJob is created, as KubeRay's submitter would —
    here in this process on Daft's native runner (there is no cluster) — then reports the
    outcome the entry point's exit status means."""

    def create_namespaced_custom_object(self, group, version, namespace, plural, body, **kw):
        from axon_dagster.inspection.job import main as job_main

        created = super().create_namespaced_custom_object(group, version, namespace, plural, body, **kw)
        argv = shlex.split(body["spec"]["entrypoint"])
        assert argv[:3] == ["python", "-m", ENTRYPOINT_MODULE]
        code = job_main(argv[3:] + ["--runner", "native"])
        self.statuses = [_status("RUNNING", "Running"), _status("SUCCEEDED" if code == 0 else "FAILED", "Complete",
                                                                 message=f"exit code {code}")]
        return created


def _recording(tmp_path, name, **faults):
    from axon_dagster.demo.sim.synthetic import Faults, write_recording

    path = tmp_path / f"{name}.lance"
    write_recording(path, task_id=name, robot_id="robot-1", start_ns=1_700_000_000_000_000_000, duration_s=2.0,
                    faults=Faults(**faults))
    return path


def test_inspect_recording_on_kuberay_reads_back_the_report_the_job_wrote(tmp_path):
    from axon_dagster.domain import QcOutcome
    from axon_dagster.inspection import inspect_recording
    from axon_dagster.storage.recording import report_path

    path = _recording(tmp_path, "kr", frozen_topics=("/camera/image_raw",))
    api = ExecutingCustomObjectsApi()
    report = inspect_recording(path, {"max_gap_seconds": 0.5}, runner="kuberay", kuberay_runner=runner(api))
    assert report.outcome is QcOutcome.NEEDS_REVIEW and not report.check("frozen_streams").passed
    assert report.runner == "kuberay"
    assert report_path(path).exists()  # default output: beside the dataset
    assert api.verbs() == ["create", "get", "get", "delete"]
    native = inspect_recording(path, {"max_gap_seconds": 0.5})
    assert report.checks == native.checks and report.per_topic == native.per_topic


def test_inspect_recording_on_kuberay_when_the_job_fails_is_infrastructure(tmp_path):
    from axon_dagster.inspection import inspect_recording

    api = ExecutingCustomObjectsApi()
    with pytest.raises(KubeRayJobFailed, match="exit code 3") as err:
        inspect_recording(tmp_path / "missing.lance", {}, runner="kuberay", kuberay_runner=runner(api),
                          output_uri=str(tmp_path / "out.json"))
    assert isinstance(err.value, InspectionInfrastructureError)
    assert not (tmp_path / "out.json").exists()

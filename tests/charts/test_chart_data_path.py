"""The charts' side of the bytes' path (issue 13), proven offline: the edge chart gives the robot its
edge cache (on the recordings mount by default: a move, never a copy), its uploader's and gate's
settings and an egress policy to the control plane over HTTPS only; what the chart renders is what
the edge agent's own settings accept."""

from __future__ import annotations

import pytest
from chart_helpers import CHARTS_DIR, HelmError

EDGE_CI = CHARTS_DIR / "axon-edge" / "ci"


def _edge(render, name, release="robot-1", sets=()):
    return render("axon-edge", EDGE_CI / f"{name}.yaml", release=release, sets=tuple(sets))


def _agent(rendered):
    (dep,) = [o for o in rendered if o["kind"] == "Deployment"]
    pod = dep["spec"]["template"]["spec"]
    return pod, next(c for c in pod["containers"] if c["name"] == "agent")


def _env(agent):
    return {e["name"]: e.get("value") for e in agent["env"]}


def _mount_of(path: str, agent) -> str:
    """The mount a path inside the container lives on (the longest mountPath that holds it)."""
    mounts = [m["mountPath"].rstrip("/") for m in agent["volumeMounts"]]
    return max((m for m in mounts if path == m or path.startswith(m + "/")), key=len)


def test_the_edge_cache_sits_on_the_recordings_mount_by_default(render):
    for name in ("minimal-values", "production-like-values", "multi-robot-values"):
        pod, agent = _agent(_edge(render, name))
        env = _env(agent)
        cache, recordings = env["AXON_EDGE_CACHE_DIR"], env["AXON_RECORDER_OUTPUT_DIR"]
        assert cache.startswith(recordings + "/"), name
        # one mount for both: a recording moves in by hardlink + rename (a second mount of the
        # same disk would make every move a copy: rename(2) refuses to cross mounts)
        assert _mount_of(cache, agent) == _mount_of(recordings, agent) == recordings, name
        assert "edge-cache" not in {v["name"] for v in pod["volumes"]}, name


@pytest.mark.parametrize(("name", "kind"), [("ros1-values", "pvc"), ("ros2-values", "hostPath")])
def test_an_edge_cache_volume_of_its_own(render, name, kind):
    rendered = _edge(render, name, release="amr-7")
    pod, agent = _agent(rendered)
    env = _env(agent)
    assert env["AXON_EDGE_CACHE_DIR"] == "/data/edge-cache" == _mount_of("/data/edge-cache", agent)
    volume = next(v for v in pod["volumes"] if v["name"] == "edge-cache")
    if kind == "pvc":
        assert volume["persistentVolumeClaim"]["claimName"] == "amr-7-axon-edge-edge-cache"
        pvc = next(o for o in rendered if o["kind"] == "PersistentVolumeClaim" and o["metadata"]["name"] == "amr-7-axon-edge-edge-cache")
        # unpublished recordings live there: the claim outlives the release
        assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        assert pvc["spec"]["resources"]["requests"]["storage"] == "100Gi"
    else:
        assert volume["hostPath"] == {"path": "/mnt/ssd/axon-edge-cache", "type": "DirectoryOrCreate"}
    assert env["AXON_EDGE_CACHE_POLICY"] == ("lru" if kind == "pvc" else "manual")


def test_upload_and_gate_settings_reach_the_agent_as_it_reads_them(render):
    _pod, agent = _agent(_edge(render, "production-like-values", release="amr-0042"))
    env = _env(agent)
    assert (env["AXON_EDGE_CACHE_MAX_GB"], env["AXON_EDGE_CACHE_POLICY"], env["AXON_EDGE_GATE_REJECTED"]) == ("150", "fifo", "delete")
    assert (env["AXON_EDGE_UPLOAD_MAX_MBPS"], env["AXON_EDGE_UPLOAD_CONCURRENCY"]) == ("40", "8")
    assert env["AXON_EDGE_UPLOAD_WINDOWS"] == "22:00-06:00,12:00-13:30"
    # parsed by the agent's own settings module, as the pod's agent parses them
    from axon_edge.settings import DataPathSettings

    settings = DataPathSettings.from_env({k: v for k, v in env.items() if v is not None})
    assert (settings.cache_max_gb, settings.cache_policy, settings.gate_rejected) == (150.0, "fifo", "delete")
    assert settings.upload_max_mbps == 40.0 and settings.upload_concurrency == 8
    assert [w.wire() for w in settings.upload_windows] == [{"start": "22:00", "end": "06:00"}, {"start": "12:00", "end": "13:30"}]
    # defaults: no quota, no cap, any time; rejected recordings kept
    env = _env(_agent(_edge(render, "minimal-values"))[1])
    assert "AXON_EDGE_CACHE_MAX_GB" not in env and "AXON_EDGE_UPLOAD_MAX_MBPS" not in env and "AXON_EDGE_UPLOAD_WINDOWS" not in env
    defaults = DataPathSettings.from_env({k: v for k, v in env.items() if v is not None})
    assert (defaults.cache_max_gb, defaults.upload_max_mbps, defaults.upload_windows, defaults.gate_rejected) == (None, None, (), "keep")


def test_the_cache_retention_reaches_the_agent_as_it_reads_it(render):
    """The robot applies retention itself (the cloud keeps no cache of robots' recordings)."""
    from axon_edge.settings import DataPathSettings

    env = _env(_agent(_edge(render, "production-like-values"))[1])
    assert env["AXON_EDGE_CACHE_RETENTION_DAYS"] == "14"
    assert DataPathSettings.from_env({k: v for k, v in env.items() if v is not None}).cache_retention_days == 14.0
    env = _env(_agent(_edge(render, "minimal-values", sets=["edgeCache.retentionDays=3"]))[1])  # helm --set: an int (a float would be a string)
    assert DataPathSettings.from_env({k: v for k, v in env.items() if v is not None}).cache_retention_days == 3.0
    assert "AXON_EDGE_CACHE_RETENTION_DAYS" not in _env(_agent(_edge(render, "minimal-values"))[1])  # none by default
    for bad in ("0", "-1"):
        with pytest.raises(HelmError, match="retentionDays"):
            _edge(render, "minimal-values", sets=[f"edgeCache.retentionDays={bad}"])


def test_robots_reach_the_control_plane_only_over_https(render):
    with pytest.raises(HelmError, match="controlPlaneUrl must be https://"):
        render("axon-edge", release="robot-1", sets=("robotId=robot-1", "controlPlaneUrl=http://axon.example.com"))
    # a dev cluster says so explicitly (the ci and Tilt values do)
    rendered = render("axon-edge", release="robot-1",
                      sets=("robotId=robot-1", "controlPlaneUrl=http://axon.example.com", "allowPlainHttp=true"))
    assert _env(_agent(rendered)[1])["AXON_CONTROL_PLANE_URL"] == "http://axon.example.com"


def test_edge_egress_is_dns_and_the_control_plane_only(render):
    policy = next(o for o in _edge(render, "multi-robot-values", release="robot-2") if o["kind"] == "NetworkPolicy")
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    dns, https = policy["spec"]["egress"]
    assert {(p["port"], p["protocol"]) for p in dns["ports"]} == {(53, "UDP"), (53, "TCP")} and "to" not in dns
    # 443 (pre-signed part URLs, an https control plane) and the dev control plane's own port
    assert {p["port"] for p in https["ports"]} == {443, 8000, 9000}  # + the dev MinIO's port
    assert [peer["ipBlock"]["cidr"] for peer in https["to"]] == ["10.96.0.0/12", "203.0.113.10/32"]
    # an https control plane on its default port: 443 only, to any address when no CIDRs are given
    policy = next(o for o in render("axon-edge", release="robot-1", sets=(
        "robotId=robot-1", "controlPlaneUrl=https://axon.example.com", "hostNetwork=false")) if o["kind"] == "NetworkPolicy")
    _dns, https = policy["spec"]["egress"]
    assert [p["port"] for p in https["ports"]] == [443] and "to" not in https


@pytest.mark.parametrize(("sets", "expected"), [
    (["edgeCache.volume=nfs"], ["/edgeCache/volume"]),
    (["edgeCache.subPath=../etc"], ["/edgeCache/subPath"]),
    (["edgeCache.policy=random"], ["/edgeCache/policy"]),
    (["edgeCache.maxGb=-1"], ["/edgeCache/maxGb"]),
    (["upload.maxMbps=0"], ["/upload/maxMbps"]),
    (["upload.concurrency=0"], ["/upload/concurrency"]),
    (["upload.windows[0].start=25:00", "upload.windows[0].end=06:00"], ["/upload/windows/0/start"]),
    (["gate.rejected=maybe"], ["/gate/rejected"]),
    (["networkPolicy.egress.cidrs[0]=everywhere"], ["/networkPolicy/egress/cidrs/0"]),
    (["allowPlainHttp=sure"], ["/allowPlainHttp", "want boolean"]),
])
def test_edge_schema_refuses_wrong_data_path_values(render, sets, expected):
    with pytest.raises(HelmError) as err:
        render("axon-edge", release="schema-check", sets=("robotId=robot-1", "controlPlaneUrl=https://x", *sets))
    message = str(err.value)
    assert "values don't meet the specifications of the schema" in message
    for fragment in expected:
        assert fragment in message, message


# ------------------------------------------------------------------ the cloud chart

CLOUD_CI = CHARTS_DIR / "axon-cloud" / "ci"


def _cloud(render, name, *sets):
    return render("axon-cloud", CLOUD_CI / f"{name}.yaml", release="axon-cloud", sets=tuple(sets))


def _container(rendered, deployment, name):
    dep = next(o for o in rendered if o["kind"] == "Deployment" and o["metadata"]["name"] == deployment)
    return dep["spec"]["template"]["spec"], next(c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == name)


def test_the_api_gets_what_robots_uploads_need_and_the_settings_accept_it(render, monkeypatch):
    rendered = _cloud(render, "production-like-values")
    _pod, api = _container(rendered, "axon-cloud-api", "api")
    env = {e["name"]: e for e in api["env"]}
    assert env["AXON_OBJECT_STORE_URL"]["value"] == "s3://axon-datasets-prod/datasets"  # where robots' parts are staged
    assert env["AXON_PUBLIC_API_URL"]["value"] == "https://axon.example.com"  # the ingress, over TLS
    # the signing key only ever from its Secret (optional with S3: the provider signs those URLs)
    assert env["AXON_UPLOAD_SIGNING_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "axon-upload-signing-prod", "key": "key", "optional": True}
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "axon-runtime-prod"
    # the code server and run pods never see the signing key
    _pod, code = _container(rendered, "axon-cloud-code", "code-server")
    assert "AXON_UPLOAD_SIGNING_KEY" not in {e["name"] for e in code.get("env", [])}
    cm = next(o for o in rendered if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "axon-cloud-env")["data"]
    assert "AXON_UPLOAD_SIGNING_KEY" not in cm
    # what the API process reads from exactly this environment
    from axon_dagster.settings.uploads import load_upload_api_settings

    plain = {name: e["value"] for name, e in env.items() if "value" in e}
    settings = load_upload_api_settings({**plain, "AXON_UPLOAD_SIGNING_KEY": "k" * 32})
    assert (settings.object_store_url, settings.public_api_url, settings.part_size) == (
        "s3://axon-datasets-prod/datasets", "https://axon.example.com", 16 * 1024 * 1024)
    assert settings.max_file_bytes == 5497558138880 and settings.grant_sweep_seconds == 5.0


def test_by_default_the_api_takes_its_stores_own_part_size(render):
    """No AXON_UPLOAD_PART_BYTES unless set: the embedded file:// store's parts are 64 MiB (its cost
    is per request), S3's and Azure's 8 MiB."""
    from axon_dagster.settings.uploads import load_upload_api_settings

    _pod, api = _container(_cloud(render, "minimal-values"), "axon-cloud-api", "api")
    plain = {e["name"]: e["value"] for e in api["env"] if "value" in e}
    assert "AXON_UPLOAD_PART_BYTES" not in plain
    assert load_upload_api_settings({**plain, "AXON_UPLOAD_SIGNING_KEY": "k" * 32}).part_size is None


def test_a_file_store_needs_the_shared_signing_key(render):
    with pytest.raises(HelmError, match="uploads.signingKey.secretName is required with a file:// object store"):
        _cloud(render, "minimal-values", "objectStore.url=file:///data/lake", "uploads.signingKey.secretName=")
    _pod, api = _container(_cloud(render, "minimal-values", "objectStore.url=file:///data/lake"), "axon-cloud-api", "api")
    key = next(e for e in api["env"] if e["name"] == "AXON_UPLOAD_SIGNING_KEY")
    assert key["valueFrom"]["secretKeyRef"] == {"name": "axon-upload-signing", "key": "AXON_UPLOAD_SIGNING_KEY"}  # not optional


def test_robots_reach_the_api_ingress_only_over_tls(render):
    with pytest.raises(HelmError, match="api.ingress.tlsSecretName is required"):
        _cloud(render, "minimal-values", "api.ingress.enabled=true")
    rendered = _cloud(render, "minimal-values", "api.ingress.enabled=true", "api.ingress.allowPlainHttp=true")
    _pod, api = _container(rendered, "axon-cloud-api", "api")
    assert {e["name"]: e.get("value") for e in api["env"]}["AXON_PUBLIC_API_URL"] == "http://axon.example.com"
    # no ingress and no publicUrl: the API answers each plan with the URL the robot came in on
    _pod, api = _container(_cloud(render, "minimal-values"), "axon-cloud-api", "api")
    assert "AXON_PUBLIC_API_URL" not in {e["name"] for e in api["env"]}


@pytest.mark.parametrize("name", ["minimal-values", "multi-robot-values", "production-like-values"])
def test_the_cloud_chart_assumes_no_robot_path(render, name):
    """No workload mounts or names a robot's recordings or cache: they arrive through the store only."""
    for obj in _cloud(render, name):
        if obj["kind"] not in ("Deployment", "StatefulSet", "Job"):
            continue
        pod = obj["spec"]["template"]["spec"]
        for container in pod.get("containers", []) + pod.get("initContainers", []):
            names = {e["name"] for e in container.get("env", [])}
            assert not [n for n in names if n.startswith(("AXON_EDGE_CACHE", "AXON_RECORDER_OUTPUT"))], (obj["metadata"]["name"], names)
            for mount in container.get("volumeMounts", []):
                assert "edge" not in mount["mountPath"] and "recording" not in mount["mountPath"], (obj["metadata"]["name"], mount)
    cm = next(o for o in _cloud(render, name) if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "axon-cloud-env")["data"]
    assert not [k for k in cm if k.startswith("AXON_EDGE_CACHE")]


@pytest.mark.parametrize(("sets", "expected"), [
    (["dataFlow.stagingRejected=shred"], ["/dataFlow/stagingRejected"]),
    (["dataFlow.workDir=relative"], ["/dataFlow/workDir"]),
    (["uploads.grantTtlSeconds=5"], ["/uploads/grantTtlSeconds"]),
    (["uploads.maxGrantsPerRobot=0"], ["/uploads/maxGrantsPerRobot"]),
    (["uploads.partBytes=1024"], ["/uploads/partBytes"]),
    (["uploads.signingKey.value=hunter2"], ["/uploads/signingKey", "value"]),  # a key is never a chart value
    (["api.publicUrl=axon.example.com"], ["/api/publicUrl"]),
    (["edgeCache.dir=/data/edge-cache"], ["edgeCache"]),  # the cloud has no edge cache any more
])
def test_cloud_schema_refuses_wrong_data_path_values(render, sets, expected):
    with pytest.raises(HelmError) as err:
        render("axon-cloud", release="schema-check", sets=tuple(sets))
    message = str(err.value)
    assert "values don't meet the specifications of the schema" in message
    for fragment in expected:
        assert fragment in message, message

"""Environment configs (configs/<env>.yaml) and recording templates (configs/recording/*.yaml)."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from axon_dagster.settings import files as axcfg
from axon_dagster.settings import templates
from axon_dagster.settings.files import ConfigError, load_config, parse_config
from axon_dagster.settings.templates import recording_template

DEV = yaml.safe_load((axcfg.CONFIG_DIR / "dev.yaml").read_text())


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("AXON_") or name == "AWS_ENDPOINT_URL":
            monkeypatch.delenv(name)


def _with(path: str, value: Any, base: dict | None = None) -> dict:
    """A copy of ``base`` (dev.yaml) with the dotted ``path`` set to ``value``."""
    data = copy.deepcopy(DEV if base is None else base)
    *parents, last = path.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return data


def _write(tmp_path: Path, data: dict, name: str = "custom.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


# -- shipped configs and selection ---------------------------------------------------------------


def test_dev_config_loads_with_the_documented_defaults() -> None:
    cfg = load_config("dev")
    assert (cfg.env, Path(cfg.source).name) == ("dev", "dev.yaml")
    assert cfg.control_plane.url == "http://127.0.0.1:8000"
    assert cfg.control_plane.resolve_database_url({}) == "sqlite:///.axon/control-plane.db"
    assert cfg.storage.object_store.url == "file://.axon/cloud"
    assert cfg.inspection.runner == "native"
    assert (cfg.timeouts.control_plane_seconds, cfg.retries.upload_attempts) == (10.0, 5)


def test_prod_config_loads_and_takes_its_secrets_from_env_or_file() -> None:
    cfg = load_config("prod")
    assert cfg.inspection.runner == "kuberay"
    assert cfg.storage.object_store.url.startswith("s3://")
    assert cfg.retries.upload_attempts == 8 and cfg.timeouts.control_plane_seconds == 30.0
    assert cfg.control_plane.admin_token_required
    assert cfg.control_plane.database_url is None  # only by reference
    env = {"AXON_DATABASE_URL": "postgresql+psycopg://u:pw@db/axon", "AXON_ADMIN_TOKEN": "tok"}
    assert cfg.control_plane.resolve_database_url(env) == env["AXON_DATABASE_URL"]
    assert cfg.control_plane.admin_token.resolve(env) == "tok"


def test_axon_env_selects_the_file_and_defaults_to_dev() -> None:
    assert load_config(environ={}).env == "dev"
    assert load_config(environ={"AXON_ENV": "prod"}).inspection.runner == "kuberay"


def test_axon_config_file_overrides_the_path(tmp_path: Path) -> None:
    path = _write(tmp_path, {"inspection": {"runner": "ray", "ray_address": "ray://head:10001"}})
    cfg = load_config(environ={"AXON_CONFIG_FILE": str(path)})
    assert cfg.source == str(path)
    assert cfg.inspection.ray_address == "ray://head:10001"
    assert cfg.storage.object_store.url == "file://.axon/cloud"  # keys not in the file keep the defaults


def test_unknown_env_is_refused_listing_the_available_ones() -> None:
    with pytest.raises(ConfigError, match=r"AXON_ENV='staging'.*available: dev, prod"):
        load_config(environ={"AXON_ENV": "staging"})


def test_missing_config_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(environ={"AXON_CONFIG_FILE": str(tmp_path / "nope.yaml")})


# -- bad keys name themselves --------------------------------------------------------------------

BAD = [
    ("inspection.runnr", "native", "unknown key"),
    ("storage.object_stor", {}, "unknown key"),
    ("tracing", {}, "unknown key"),
    ("inspection.runner", "sparkle", "must be one of native, ray, ray-job, kuberay"),
    ("retries.upload_attempts", "three", "whole number"),
    ("retries.upload_attempts", True, "whole number"),
    ("timeouts.control_plane_seconds", "10s", "must be a number"),
    ("recorder", {"transport": "http"}, "unknown key"),  # the cloud never drives a recorder: nothing read it
    ("timeouts.control_plane_seconds", -5, "must be positive"),
    ("retries.upload_attempts", 0, "whole number >= 1"),
    # keys nothing read (editing them silently did nothing) are refused now
    ("inspection.thresholds", {"auto_approve": 0.9}, "unknown key"),
    ("timeouts.upload_seconds", 600.0, "unknown key"),
    ("timeouts.inspection_seconds", 900.0, "unknown key"),
    ("retries.control_plane_attempts", 3, "unknown key"),
    ("retries.backoff_seconds", 1.0, "unknown key"),
    ("control_plane.url", "ftp://cp", "http:// or https://"),
    ("storage.object_store.url", "ftp://bucket", "file:// or s3:// or gs:// or az://"),
    ("control_plane.admin_token_env", "not a var name", "environment variable name"),
    ("control_plane.admin_token_required", "yes", "true or false"),
    ("storage.object_store", "big", "must be a mapping"),
]


@pytest.mark.parametrize(("key", "value", "message"), BAD, ids=[f"{k}={v!r}" for k, v, _ in BAD])
def test_a_bad_key_is_refused_with_its_dotted_name(key: str, value: Any, message: str, tmp_path: Path) -> None:
    path = _write(tmp_path, _with(key, value))
    with pytest.raises(ConfigError) as info:
        load_config(environ={"AXON_CONFIG_FILE": str(path)})
    assert info.value.key == key
    assert f"{key}: " in str(info.value) and message in str(info.value)
    assert str(path) in str(info.value)


def test_database_url_and_its_secret_reference_are_exclusive() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(_with("control_plane.database_url_env", "AXON_DATABASE_URL"))
    assert info.value.key == "control_plane.database_url"


# -- secrets only from the environment or files --------------------------------------------------

LITERAL_SECRETS = [
    ("control_plane.admin_token", "s3cr3t-value"),
    ("storage.object_store.aws_secret_access_key", "s3cr3t-value"),
    ("control_plane.password", "s3cr3t-value"),
    ("control_plane.database_url", "postgresql+psycopg://axon:s3cr3t-value@db/axon"),
    ("storage.object_store.url", "s3://AKIA:s3cr3t-value@bucket/prefix"),
]


@pytest.mark.parametrize(("key", "value"), LITERAL_SECRETS, ids=[k for k, _ in LITERAL_SECRETS])
def test_a_literal_secret_in_the_yaml_is_refused_without_echoing_it(key: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(_with(key, value))
    assert info.value.key == key
    assert "secrets are never read from the YAML" in str(info.value)
    assert "s3cr3t-value" not in str(info.value)


def test_secret_references_resolve_from_env_first_then_file(tmp_path: Path) -> None:
    token_file = tmp_path / "admin-token"
    token_file.write_text("from-file\n")
    cfg = parse_config(_with("control_plane.admin_token_file", str(token_file)))
    assert cfg.control_plane.admin_token.resolve({}) == "from-file"
    assert cfg.control_plane.admin_token.resolve({"AXON_ADMIN_TOKEN": "from-env"}) == "from-env"
    cfg = parse_config(_with("control_plane.admin_token_file", str(tmp_path / "missing")))
    with pytest.raises(ConfigError) as info:
        cfg.control_plane.admin_token.resolve({})
    assert info.value.key == "control_plane.admin_token_file"


# -- recording templates -------------------------------------------------------------------------


@pytest.mark.parametrize("name", templates.RECORDING_TEMPLATES)
def test_each_recording_template_loads(name: str) -> None:
    template = recording_template(name)
    assert template.name == name and template.topics
    assert all(t.name.startswith("/") and t.message_type for t in template.topics)


def test_template_topics_match_the_reference_design() -> None:
    assert "/camera/image_raw" in recording_template("default").topic_names
    assert all(t.startswith("/camera/") for t in recording_template("camera_only").topic_names)
    assert recording_template("lidar_only").topic_names == ("/lidar/points",)


def test_shipped_templates_are_exactly_the_ones_orders_may_select() -> None:
    from axon_dagster.control_plane.batch_review import RECORDING_TEMPLATES as ORDER_TEMPLATES

    assert set(templates.RECORDING_TEMPLATES) == set(ORDER_TEMPLATES)
    assert {p.stem for p in templates.TEMPLATE_DIR.glob("*.yaml")} == set(templates.RECORDING_TEMPLATES)


@pytest.mark.parametrize("name", ["thermal_only", "../dev", ""])
def test_an_unknown_template_is_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="unknown recording template") as info:
        recording_template(name)
    assert info.value.key == "recording_template"


@pytest.mark.parametrize(
    ("mutate", "key"),
    [
        (lambda d: d["topics"][0].update(name="camera/no_slash"), "topics[0].name"),
        (lambda d: d["topics"][0].update(rate_hz=30), "topics[0].rate_hz"),
        (lambda d: d["topics"][0].pop("message_type"), "topics[0].message_type"),
        (lambda d: d["topics"].append(dict(d["topics"][0])), "topics"),
        (lambda d: d.update(name="camera_only"), "name"),
        (lambda d: d["recording"].update(max_disk_usage_gb=-1), "recording.max_disk_usage_gb"),
    ],
)
def test_a_bad_template_is_refused_with_its_key(mutate, key: str, tmp_path: Path) -> None:
    data = yaml.safe_load((templates.TEMPLATE_DIR / "default.yaml").read_text())
    mutate(data)
    (tmp_path / "default.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        recording_template("default", directory=tmp_path)
    assert info.value.key == key and key in str(info.value)


# -- the processes that read it -------------------------------------------------------------------


def test_resources_from_env_use_built_in_defaults_without_axon_env() -> None:
    from axon_dagster.defs.resources import resources_from_env

    res = resources_from_env()
    assert res["inspection"].runner == "native"
    assert res["object_store"].url == "file://" + os.path.abspath(".axon/cloud")


def test_resources_from_env_pick_up_the_selected_config(monkeypatch: pytest.MonkeyPatch) -> None:
    from axon_dagster.defs.resources import resources_from_env

    monkeypatch.setenv("AXON_ENV", "prod")
    res = resources_from_env()
    assert res["inspection"].runner == "kuberay"
    assert res["inspection"].ray_address == "ray://axon-ray-head.axon.svc.cluster.local:10001"
    assert res["object_store"].url == "s3://axon-datasets/recordings"
    assert res["control_plane"].url == "http://axon-control-plane.axon.svc.cluster.local:8000"
    assert res["control_plane"].token_file == "/run/secrets/axon/admin-token"
    assert res["control_plane"].timeout_seconds == 30.0


def test_env_vars_override_the_selected_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from axon_dagster.defs.resources import resources_from_env

    monkeypatch.setenv("AXON_ENV", "prod")
    monkeypatch.setenv("AXON_INSPECTION_RUNNER", "native")
    monkeypatch.setenv("AXON_OBJECT_STORE_URL", "s3://other/prefix")
    monkeypatch.setenv("AXON_CONTROL_PLANE_URL", "http://cp:9000")
    res = resources_from_env()
    assert res["inspection"].runner == "native"
    assert res["object_store"].url == "s3://other/prefix"
    assert res["control_plane"].url == "http://cp:9000"


def test_resources_refuse_a_bad_selected_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from axon_dagster.defs.resources import resources_from_env

    monkeypatch.setenv("AXON_CONFIG_FILE", str(_write(tmp_path, _with("inspection.runner", "sparkle"))))
    with pytest.raises(ConfigError, match=r"inspection\.runner"):
        resources_from_env()


def test_control_plane_resource_reads_the_token_file(tmp_path: Path) -> None:
    from axon_dagster.defs.resources import ControlPlaneResource

    token_file = tmp_path / "token"
    token_file.write_text("file-token\n")
    client = ControlPlaneResource(token_env_var="AXON_TEST_UNSET_TOKEN", token_file=str(token_file)).client()
    assert client._http.headers["Authorization"] == "Bearer file-token"


def test_api_settings_take_defaults_from_the_selected_config(tmp_path: Path) -> None:
    from axon_dagster.settings import DEFAULT_DATABASE_URL, load_settings

    assert load_settings({}).database_url == DEFAULT_DATABASE_URL  # unchanged without AXON_ENV
    token_file = tmp_path / "admin-token"
    token_file.write_text("tok-from-file")
    data = _with("control_plane.database_url", "sqlite:///" + str(tmp_path / "cp.db"))
    data = _with("control_plane.admin_token_file", str(token_file), data)
    path = _write(tmp_path, data)
    settings = load_settings({"AXON_CONFIG_FILE": str(path)})
    assert settings.database_url == "sqlite:///" + str(tmp_path / "cp.db")
    assert settings.admin_token == "tok-from-file"
    override = load_settings({"AXON_CONFIG_FILE": str(path), "AXON_DATABASE_URL": "sqlite:///other.db", "AXON_ADMIN_TOKEN": "e"})
    assert (override.database_url, override.admin_token) == ("sqlite:///other.db", "e")


def test_prod_api_refuses_to_start_without_its_secrets() -> None:
    from axon_dagster.settings import load_settings

    with pytest.raises(ConfigError) as info:
        load_settings({"AXON_ENV": "prod", "AXON_ADMIN_TOKEN": "t"})
    assert info.value.key == "control_plane.database_url_env"
    with pytest.raises(ConfigError) as info:
        load_settings({"AXON_ENV": "prod", "AXON_DATABASE_URL": "sqlite:///x.db"})
    assert info.value.key == "control_plane.admin_token_file"  # env unset, so it tried the file
    ok = load_settings({"AXON_ENV": "prod", "AXON_DATABASE_URL": "sqlite:///x.db", "AXON_ADMIN_TOKEN": "t"})
    assert ok.admin_token == "t"


# -- CLI and import weight -----------------------------------------------------------------------


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AXON_")}
    return subprocess.run([sys.executable, "-m", "axon_dagster.settings", *args], capture_output=True, text=True,
                          env={**clean, **(env or {})}, cwd=axcfg.CONFIG_DIR.parent, timeout=60)


def test_cli_check_accepts_the_shipped_configs() -> None:
    dev = _cli("check")
    assert dev.returncode == 0, dev.stderr
    assert "config OK: env=dev" in dev.stdout
    prod = _cli("check", "--env", "prod", env={"AXON_ADMIN_TOKEN": "s3cr3t-tok", "AXON_DATABASE_URL": "sqlite:///x.db"})
    assert prod.returncode == 0, prod.stderr
    assert "admin token: set" in prod.stdout and "s3cr3t-tok" not in prod.stdout


def test_cli_check_exits_2_naming_the_bad_key(tmp_path: Path) -> None:
    bad = _cli("check", "--file", str(_write(tmp_path, _with("retries.upload_attempts", 0))))
    assert bad.returncode == 2
    assert "retries.upload_attempts" in bad.stderr and bad.stdout == ""
    missing_secret = _cli("check", "--env", "prod", env={"AXON_DATABASE_URL": "sqlite:///x.db"})
    assert missing_secret.returncode == 2 and "control_plane.admin_token" in missing_secret.stderr


def test_the_settings_package_is_import_light() -> None:
    """Every settings module (the code location's and the API's too) loads stdlib + PyYAML only:
    robots import the ROS and storage sections, and loading settings must never start a framework."""
    code = ("import sys, pkgutil, importlib, axon_dagster.settings as s; "
            "[importlib.import_module(f'axon_dagster.settings.{m.name}') for m in pkgutil.iter_modules(s.__path__) "
            "if m.name != '__main__']; "
            "heavy = [m for m in ('pydantic', 'dagster', 'sqlalchemy', 'daft', 'ray', 'fastapi', 'httpx', 'boto3') "
            "if m in sys.modules]; "
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=axcfg.CONFIG_DIR.parent, timeout=60)
    assert out.stdout.strip() == "[]"


# -- the cloud keeps no edge cache (issue 13: each robot's edge agent keeps its own) -------------

RETIRED_EDGE_CACHE = [
    ("storage.edge_cache", {"root": "/data/edge-cache"}),
    ("storage.edge_cache", {}),
    ("storage.edge_cache", "big"),
    ("storage.edge_cache", None),
]


@pytest.mark.parametrize(("key", "value"), RETIRED_EDGE_CACHE, ids=[repr(v) for _, v in RETIRED_EDGE_CACHE])
def test_the_retired_edge_cache_section_is_refused_by_name_saying_where_it_went(key: str, value: Any, tmp_path: Path) -> None:
    path = _write(tmp_path, _with(key, value))
    with pytest.raises(ConfigError) as info:
        load_config(environ={"AXON_CONFIG_FILE": str(path)})
    assert info.value.key == "storage.edge_cache"
    assert "unknown key (removed)" in str(info.value) and "AXON_EDGE_CACHE_*" in str(info.value) and "axon-edge" in str(info.value)
    assert str(path) in str(info.value)


def test_a_misspelt_key_lists_only_the_keys_that_are_read(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(_with("storage.object_stor", {}))
    assert str(info.value).endswith("known keys here: object_store")


def test_the_code_location_has_no_edge_cache_resource_job_or_schedule(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cloud reads no robot's disk: no edge-cache resource, no retention job or schedule, and the
    AXON_EDGE_CACHE_* variables (the edge agent's) change nothing in it."""
    from axon_dagster.defs import build_definitions
    from axon_dagster.defs.resources import resources_from_env

    for name in ("AXON_ENV", "AXON_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    before = resources_from_env()
    assert "edge_cache" not in before
    for name, value in (("AXON_EDGE_CACHE_DIR", "/x"), ("AXON_EDGE_CACHE_MAX_GB", "bad"), ("AXON_EDGE_CACHE_RETENTION_DAYS", "7"),
                        ("AXON_EDGE_CACHE_RELEASE_SOURCE", "sometimes"), ("AXON_EDGE_CACHE_ID", "site-a")):
        monkeypatch.setenv(name, value)
    assert resources_from_env() == before
    defs = build_definitions()
    assert "edge_cache" not in defs.resources
    jobs = {j.name for j in defs.resolve_all_job_defs()}
    assert jobs and not [j for j in jobs if "retention" in j or "edge_cache" in j]
    assert not [s.name for s in defs.schedules or () if "retention" in s.name or "edge_cache" in s.name]

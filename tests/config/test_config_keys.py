"""Every key of the shipped configs is read: changing it changes what a process does.

For each leaf key of ``configs/dev.yaml`` and ``configs/prod.yaml`` the test writes the file with
that one key changed, loads the settings of the processes that read configs (the control-plane API
and the Dagster code location) from the original and from the changed file in the same environment,
and requires the observed outcome (a setting, a resolved secret, or the start-up error) to differ.
A new key without an entry here fails :func:`test_every_shipped_key_has_an_observation`, so a key
that nothing reads cannot be added (or kept) silently.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from axon_dagster.settings import ConfigError, load_api_settings, load_code_location_settings
from axon_dagster.settings.files import CONFIG_DIR

SHIPPED = ("dev", "prod")


def leaf_keys(data: Any, prefix: str = "") -> list[str]:
    if not isinstance(data, dict):
        return [prefix]
    return [key for name, value in data.items() for key in leaf_keys(value, f"{prefix}.{name}" if prefix else name)]


def _set(data: dict, dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        data = data[part]
    data[last] = value


class Loaded:
    """What the processes make of one environment (loaded on first use)."""

    def __init__(self, env: dict[str, str]):
        self.env = env

    @property
    def api(self):
        return load_api_settings(self.env)

    @property
    def code(self):
        return load_code_location_settings(self.env)

    def token(self) -> str | None:  # the code location's admin token, resolved as its client does
        return self.code.control_plane.token.resolve(self.env)


Observe = Callable[[Loaded], Any]


def observations(tmp_path: Path) -> dict[str, tuple[Any, Observe, dict[str, str], dict[str, Any]]]:
    """key -> (changed value, what to observe, environment, other keys set in both files)."""
    token_file = tmp_path / "admin-token"
    token_file.write_text("token-from-file\n")
    empty_file = tmp_path / "no-token"
    empty_file.write_text("")
    db = {"AXON_DATABASE_URL": "sqlite:///from-env.db"}
    return {
        "control_plane.url": ("http://cp.example:8000", lambda p: p.code.control_plane.url, {}, {}),
        "control_plane.database_url": ("sqlite:///changed.db", lambda p: p.api.database_url, {"AXON_ADMIN_TOKEN": "t"}, {}),
        "control_plane.database_url_env": ("AXON_TEST_DB_URL", lambda p: p.api.database_url,
                                           {"AXON_TEST_DB_URL": "sqlite:///named.db", "AXON_ADMIN_TOKEN": "t"}, {}),
        "control_plane.admin_token_env": ("AXON_TEST_TOKEN", lambda p: (p.api.admin_token, p.token()),
                                          {**db, "AXON_TEST_TOKEN": "token-from-env"}, {}),
        "control_plane.admin_token_file": (str(token_file), lambda p: (p.api.admin_token, p.token()), db, {}),
        "control_plane.admin_token_required": (None, lambda p: p.api.admin_token, db,
                                               {"control_plane.admin_token_file": str(empty_file)}),
        "storage.object_store.url": ("s3://other-bucket/prefix", lambda p: p.code.object_store.url, {}, {}),
        "storage.object_store.endpoint_url": ("http://minio.site:9000", lambda p: p.code.object_store.endpoint_url, {}, {}),
        "inspection.runner": ("ray-job", lambda p: p.code.inspection.runner, {}, {}),
        "inspection.ray_address": ("http://ray-head.site:8265", lambda p: p.code.inspection.ray_address, {}, {}),
        "timeouts.control_plane_seconds": (2.5, lambda p: p.code.control_plane.timeout_seconds, {}, {}),
        "retries.upload_attempts": (2, lambda p: p.code.upload.max_upload_attempts, {}, {}),
    }


def _flipped(value: Any) -> Any:
    return (not value) if isinstance(value, bool) else value


def _outcome(env: dict[str, str], observe: Observe) -> Any:
    try:
        return observe(Loaded(env))
    except ConfigError as exc:  # refusing to start is an outcome too
        return f"refused: {exc}"


def _shipped(name: str) -> dict:
    return yaml.safe_load((CONFIG_DIR / f"{name}.yaml").read_text())


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_key_has_an_observation(name: str, tmp_path: Path) -> None:
    missing = sorted(set(leaf_keys(_shipped(name))) - set(observations(tmp_path)))
    assert not missing, f"configs/{name}.yaml keys with no test that they change anything: {missing}"


@pytest.mark.parametrize("name, key", [(n, k) for n in SHIPPED for k in leaf_keys(_shipped(n))])
def test_changing_a_shipped_key_changes_what_a_process_does(name: str, key: str, tmp_path: Path) -> None:
    value, observe, env, also = observations(tmp_path)[key]
    base = copy.deepcopy(_shipped(name))
    for other, other_value in also.items():
        _set(base, other, other_value)
    changed = copy.deepcopy(base)
    current = base
    for part in key.split("."):
        current = current[part]
    if isinstance(current, bool):
        value = not current
    if key == "control_plane.database_url_env" or (key == "control_plane.database_url" and "database_url_env" in base["control_plane"]):
        changed["control_plane"].pop("database_url", None)  # the two are exclusive
    _set(changed, key, value)
    outcomes = []
    for i, data in enumerate((base, changed)):
        path = tmp_path / f"{name}-{i}.yaml"
        path.write_text(yaml.safe_dump(data))
        outcomes.append(_outcome({"AXON_CONFIG_FILE": str(path), **env}, observe))
    assert outcomes[0] != outcomes[1], f"configs/{name}.yaml {key}: {current!r} -> {value!r} changed nothing ({outcomes[0]!r})"
    refused = [str(o).startswith("refused: ") for o in outcomes]
    assert not all(refused), f"configs/{name}.yaml {key}: both files refused, nothing observed: {outcomes}"


def test_the_upload_attempts_key_reaches_the_data_flow_sensor_and_the_variable_overrides_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """prod.yaml's retries.upload_attempts (8) is the data_flow attempts staged_dataset_sensor gives a
    dataset before giving it up, unless AXON_MAX_UPLOAD_ATTEMPTS says otherwise."""
    from axon_dagster.defs.data_flow import data_flow_policy_from_env

    monkeypatch.delenv("AXON_MAX_UPLOAD_ATTEMPTS", raising=False)
    monkeypatch.delenv("AXON_CONFIG_FILE", raising=False)
    monkeypatch.setenv("AXON_ENV", "prod")
    assert data_flow_policy_from_env().max_attempts == 8
    monkeypatch.setenv("AXON_MAX_UPLOAD_ATTEMPTS", "3")
    assert data_flow_policy_from_env().max_attempts == 3
    monkeypatch.delenv("AXON_ENV")
    monkeypatch.delenv("AXON_MAX_UPLOAD_ATTEMPTS")
    assert data_flow_policy_from_env().max_attempts == 5

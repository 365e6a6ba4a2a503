"""The settings package: typed environment reads that name the variable, and the code location's
sections taking their value from the variable, else the selected config key, else the default."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from axon_dagster.settings import ConfigError, Env, SettingError, child_environ, export, load_code_location_settings
from axon_dagster.settings.code_location import ObjectStoreSettings, UploadSettings
from axon_dagster.settings.files import CONFIG_DIR


@pytest.mark.parametrize(
    "read, value, message",
    [
        (lambda e: e.integer("AXON_X", 5, minimum=1), "many", "AXON_X must be an integer, got 'many'"),
        (lambda e: e.integer("AXON_X", 5, minimum=1), "0", "AXON_X must be greater than or equal to 1, got '0'"),
        (lambda e: e.number("AXON_X", 1.0, positive=True), "-2", "AXON_X must be positive, got '-2'"),
        (lambda e: e.number("AXON_X", 1.0), "nan", "AXON_X must be a number, got 'nan'"),
        (lambda e: e.number("AXON_X", 1.0, maximum=1), "1.5", "AXON_X must be less than or equal to 1, got '1.5'"),
        (lambda e: e.flag("AXON_X", False), "ture", "AXON_X must be true or false (1/0, yes/no, on/off), got 'ture'"),
        (lambda e: e.choice("AXON_X", "a", ("a", "b")), "c", "AXON_X must be one of a, b, got 'c'"),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable_and_the_value(read, value: str, message: str) -> None:
    with pytest.raises(SettingError) as info:
        read(Env({"AXON_X": value}))
    assert str(info.value) == message and info.value.name == "AXON_X"
    assert isinstance(info.value, ConfigError)  # one except clause for config keys and variables


def test_unset_and_blank_are_the_default_and_values_are_typed() -> None:
    env = Env({"AXON_BLANK": "  ", "AXON_N": " 7 ", "AXON_F": "On", "AXON_L": "a, ,b,", "AXON_T": " x "})
    assert env.integer("AXON_BLANK", 5) == 5 and env.integer("AXON_UNSET", None) is None
    assert env.integer("AXON_N", 5) == 7 and env.number("AXON_N", 0.0) == 7.0
    assert env.flag("AXON_F", False) is True and env.flag("AXON_BLANK", True) is True
    assert env.items("AXON_L") == ("a", "b") and env.text("AXON_T") == "x" and env.raw("AXON_T") == " x "
    with pytest.raises(SettingError, match="AXON_UNSET is not set: the runner needs it"):
        env.required("AXON_UNSET", "the runner needs it")


def test_child_environ_and_export_change_only_what_they_are_asked_to(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AXON_SETTINGS_TEST_A", "a")
    child = child_environ({"AXON_SETTINGS_TEST_B": "b"}, drop=["AXON_SETTINGS_TEST_A"])
    assert child["AXON_SETTINGS_TEST_B"] == "b" and "AXON_SETTINGS_TEST_A" not in child
    assert os.environ["AXON_SETTINGS_TEST_A"] == "a" and "AXON_SETTINGS_TEST_B" not in os.environ
    previous = export({"AXON_SETTINGS_TEST_A": None, "AXON_SETTINGS_TEST_C": "c"})
    assert "AXON_SETTINGS_TEST_A" not in os.environ and os.environ["AXON_SETTINGS_TEST_C"] == "c"
    export(previous)
    assert os.environ["AXON_SETTINGS_TEST_A"] == "a" and "AXON_SETTINGS_TEST_C" not in os.environ


def _config_file(tmp_path: Path, **changes: object) -> str:
    data = yaml.safe_load((CONFIG_DIR / "dev.yaml").read_text())
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = data
        for part in parents:
            node = node[part]
        node[last] = value
    path = tmp_path / "custom.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_a_section_takes_the_variable_then_the_selected_config_then_the_default(tmp_path: Path) -> None:
    assert UploadSettings.load({}).max_upload_attempts == 5  # built-in default
    selected = {"AXON_CONFIG_FILE": _config_file(tmp_path, retries__upload_attempts=8)}
    assert UploadSettings.load(selected).max_upload_attempts == 8
    assert UploadSettings.load({**selected, "AXON_MAX_UPLOAD_ATTEMPTS": "3"}).max_upload_attempts == 3
    store = ObjectStoreSettings.load({"AXON_CONFIG_FILE": _config_file(tmp_path, storage__object_store__url="file://rel/cloud")})
    assert store.url == "file://" + os.path.abspath("rel/cloud")


def test_loading_the_code_location_settings_validates_every_section(tmp_path: Path) -> None:
    settings = load_code_location_settings({})
    assert settings.upload.max_upload_attempts == 5 and settings.object_store.url.startswith("file:///")
    with pytest.raises(SettingError, match="AXON_REVIEW_REJECTED_POLICY must be one of archive, delete, got 'shred'"):
        load_code_location_settings({"AXON_REVIEW_REJECTED_POLICY": "shred"})
    with pytest.raises(ConfigError, match="inspection.runner"):
        load_code_location_settings({"AXON_CONFIG_FILE": _config_file(tmp_path, inspection__runner="spark")})


def test_ros_settings_split_the_search_path_and_leave_unset_as_none() -> None:
    from axon_dagster.settings.ros import RosSettings

    ros = RosSettings.load({"AXON_ROS1_PYTHONPATH": f"/opt/a{os.pathsep}{os.pathsep}/opt/b", "ROS_DOMAIN_ID": "7"})
    assert ros.ros1_pythonpath == ("/opt/a", "/opt/b") and ros.domain_id == "7" and ros.recorder_url is None
    assert RosSettings.load({}) == RosSettings()


def test_child_environ_prepends_search_paths_and_fills_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AXON_SETTINGS_TEST_PATH", "/usr/bin")
    monkeypatch.delenv("AXON_SETTINGS_TEST_EMPTY", raising=False)
    monkeypatch.setenv("AXON_SETTINGS_TEST_LEVEL", "8")
    env = child_environ(prepend={"AXON_SETTINGS_TEST_PATH": "/venv/bin", "AXON_SETTINGS_TEST_EMPTY": "/venv"},
                        defaults={"AXON_SETTINGS_TEST_LEVEL": "2", "AXON_SETTINGS_TEST_NEW": "2"})
    assert env["AXON_SETTINGS_TEST_PATH"] == f"/venv/bin{os.pathsep}/usr/bin" and env["AXON_SETTINGS_TEST_EMPTY"] == "/venv"
    assert (env["AXON_SETTINGS_TEST_LEVEL"], env["AXON_SETTINGS_TEST_NEW"]) == ("8", "2")


def test_cli_settings_default_to_the_embedded_database_and_never_print_the_token() -> None:
    from axon_dagster.settings.api import DEFAULT_DATABASE_URL
    from axon_dagster.settings.tools import CliSettings

    assert CliSettings.load({}).database_url == DEFAULT_DATABASE_URL
    cli = CliSettings.load({"AXON_ADMIN_TOKEN": "s3cr3t", "AXON_LOG_LEVEL": "DEBUG"})
    assert (cli.admin_token, cli.log_level) == ("s3cr3t", "DEBUG") and "s3cr3t" not in repr(cli)


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("AXON_MAX_BODY_BYTES", "1MB", "AXON_MAX_BODY_BYTES must be an integer number of bytes, got '1MB'"),
        ("AXON_MAX_BODY_BYTES", "0", "AXON_MAX_BODY_BYTES must be greater than or equal to 1, got '0'"),
        ("AXON_SESSION_HOURS", "forever", "AXON_SESSION_HOURS must be a number of hours, got 'forever'"),
        ("AXON_SESSION_HOURS", "1000", "AXON_SESSION_HOURS must be less than or equal to 720, got '1000'"),
        ("AXON_SSO_DEFAULT_ROLE", "root", "AXON_SSO_DEFAULT_ROLE must be viewer, reviewer, admin or none, got 'root'"),
        ("AXON_TRUSTED_PROXIES", "10.0.0.0/8, proxy.local", "AXON_TRUSTED_PROXIES: 'proxy.local' is not an IP address or network"),
        ("AXON_COOKIE_SECURE", "maybe", "AXON_COOKIE_SECURE must be true or false (1/0, yes/no, on/off), got 'maybe'"),
        ("AXON_API_WORKERS", "many", "AXON_API_WORKERS must be a whole number of processes, got 'many'"),
    ],
)
def test_the_api_refuses_a_bad_variable_naming_it(name: str, value: str, message: str) -> None:
    from axon_dagster.settings.api import ServerSettings, load_api_settings

    with pytest.raises(SettingError) as info:
        (ServerSettings.load if name == "AXON_API_WORKERS" else load_api_settings)({name: value})
    assert str(info.value) == message and info.value.name == name


def test_the_api_settings_read_their_variables() -> None:
    from axon_dagster.settings.api import load_api_settings

    api = load_api_settings({"AXON_TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1", "AXON_SSO_DEFAULT_ROLE": "Viewer",
                             "AXON_COOKIE_SECURE": "0", "AXON_SESSION_HOURS": "2", "AXON_ADMIN_TOKEN": "s3cr3t-9f"})
    assert (api.trusted_proxies, api.sso_default_role, api.cookie_secure, api.session_hours) == (
        ("10.0.0.0/8", "127.0.0.1"), "viewer", False, 2.0)
    assert api.admin_token == "s3cr3t-9f" and "s3cr3t-9f" not in repr(api)
    default = load_api_settings({})
    assert (default.sso_default_role, default.cookie_secure, default.max_body_bytes) == (None, True, 1024 * 1024)

"""RecordingConfig: the per-task YAML file the edge agent writes and every recorder backend reads."""

from __future__ import annotations

import os
import stat

import pytest
import yaml

from axon_dagster.recorder import RecordingConfig, RecordingConfigError


def full_config(**overrides) -> RecordingConfig:
    fields = dict(
        task_id="task-7",
        device_id="robot-1",
        data_collector_id="collector-3",
        order_id="order-1",
        operator_name="Ana Lima",
        scene="warehouse",
        subscene="aisle_1",
        skills=["pick_place", "navigation"],
        factory="factory-sz",
        topics=["/camera/image_raw", "/imu"],
        start_callback_url="http://127.0.0.1:8090/callbacks/start",
        finish_callback_url="https://edge.local/callbacks/finish",
        user_token="secret-token",
        duration_seconds=12.5,
        batch_id="batch-2",
    )
    fields.update(overrides)
    return RecordingConfig(**fields)


def test_write_then_read_gives_the_same_config(tmp_path):
    config = full_config()
    path = config.write(tmp_path / "nested" / "task-7.yaml")

    assert RecordingConfig.read(path) == config
    on_disk = yaml.safe_load(path.read_text())
    assert on_disk["skills"] == ["pick_place", "navigation"]
    assert on_disk["subscene"] == "aisle_1"
    # the file holds the callback token: only its owner may read it
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["task-7.yaml"], "no temporary file left behind"


def test_rewriting_replaces_the_whole_file(tmp_path):
    path = tmp_path / "c.yaml"
    full_config(topics=["/imu", "/joint_states", "/camera/image_raw"]).write(path)
    full_config(topics=["/imu"], user_token="").write(path)
    again = RecordingConfig.read(path)
    assert again.topics == ("/imu",)
    assert again.user_token == ""


def test_task_config_is_axon_fields_plus_ours_without_empty_ones():
    sent = RecordingConfig(task_id="t1", device_id="r1", batch_id="b1", duration_seconds=3).task_config()
    assert sent == {"task_id": "t1", "device_id": "r1", "skills": [], "topics": [], "duration_seconds": 3, "batch_id": "b1"}


def test_minimal_file_gets_defaults(tmp_path):
    path = tmp_path / "min.yaml"
    path.write_text("task_id: t1\ndevice_id: r1\nsubscene:\ntopics:\n")
    config = RecordingConfig.read(path)
    assert (config.subscene, config.topics, config.duration_seconds) == ("", (), None)


@pytest.mark.parametrize(
    "content, field, words",
    [
        ("task_id: ../../etc\ndevice_id: r1\n", "task_id", "path separator"),
        ("task_id: 't 1'\ndevice_id: r1\n", "task_id", "only letters"),
        ("device_id: r1\n", "task_id", "missing required field task_id"),
        ("task_id: t1\n", "device_id", "missing required field device_id"),
        ("task_id: t1\ndevice_id: r1\ntopic: [/imu]\n", "topic", "unknown field(s) topic"),
        ("task_id: t1\ndevice_id: r1\ntopics: /imu\n", "topics", "list of strings"),
        ("task_id: t1\ndevice_id: r1\ntopics: [imu]\n", "topics", "starts with '/'"),
        ("task_id: t1\ndevice_id: r1\ntopics: [/imu, /imu]\n", "topics", "more than once"),
        ("task_id: t1\ndevice_id: r1\nskills: [pick, ../up]\n", "skills", "invalid skills"),
        ("task_id: t1\ndevice_id: r1\nduration_seconds: -5\n", "duration_seconds", "positive number"),
        ("task_id: t1\ndevice_id: r1\nduration_seconds: soon\n", "duration_seconds", "positive number"),
        ("task_id: t1\ndevice_id: r1\nduration_seconds: true\n", "duration_seconds", "positive number"),
        ("task_id: t1\ndevice_id: r1\nfinish_callback_url: ftp://x\n", "finish_callback_url", "http:// or https://"),
        ("task_id: t1\ndevice_id: r1\nscene: 42\n", "scene", "must be a string"),
        ("task_id: 7\ndevice_id: r1\n", "task_id", "must be a string"),
    ],
)
def test_a_bad_field_is_refused_naming_the_field_and_file(tmp_path, content, field, words):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(RecordingConfigError) as caught:
        RecordingConfig.read(path)
    assert caught.value.field == field
    assert words in str(caught.value)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    "content, words",
    [
        ("", "file is empty"),
        ("task_id: [unclosed\n", "not valid YAML"),
        ("- task_id\n- device_id\n", "expected a mapping"),
        ("just a string\n", "expected a mapping"),
    ],
)
def test_an_unusable_file_is_refused(tmp_path, content, words):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(RecordingConfigError, match=words) as caught:
        RecordingConfig.read(path)
    assert caught.value.field is None


def test_a_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(RecordingConfigError, match="file not found") as caught:
        RecordingConfig.read(tmp_path / "nope.yaml")
    assert caught.value.path == str(tmp_path / "nope.yaml")


def test_constructing_a_bad_config_fails_and_writes_nothing(tmp_path):
    with pytest.raises(RecordingConfigError, match="task_id"):
        full_config(task_id="")
    with pytest.raises(RecordingConfigError, match="control characters"):
        full_config(operator_name="bad\nname")
    assert list(tmp_path.iterdir()) == []

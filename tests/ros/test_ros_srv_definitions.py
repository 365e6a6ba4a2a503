"""The four .srv files are the contract: exactly the reference design's fields, one source of
truth for genpy (ROS 1), rosidl (ROS 2, the interface package) and the reply checks."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from axon_dagster.recorder.genpy_build import STAMP, GenpyBuildError, build, import_generated
from axon_dagster.recorder.genpy_build import main as genpy_build_main
from axon_dagster.recorder.protocol import RecorderProtocolError, RecorderRefused
from axon_dagster.recorder.srv import (
    PACKAGE,
    SRV_DIR,
    SrvField,
    SrvSpecError,
    load_specs,
    parse_srv,
    read_response,
    service_name,
    status_response,
    stop_response,
    validate_namespace,
)

INTERFACES = SRV_DIR.parent / "ros_interfaces"

EXPECTED = {
    "StartRecording": ([("string", "config_path")], [("bool", "success"), ("string", "message")]),
    "StopRecording": ([], [("bool", "success"), ("string", "message"), ("int32", "flushed_batches")]),
    "GetStatus": (
        [],
        [
            ("bool", "is_recording"),
            ("string", "dataset_path"),
            ("string[]", "active_topics"),
            ("int32[]", "batch_sizes"),
            ("int32", "pending_batches"),
            ("float64", "disk_usage_gb"),
            ("string", "last_error"),
        ],
    ),
    "UpdateConfig": ([("string", "config_path")], [("bool", "success"), ("string", "message")]),
}


# .srv type -> the type rosidl reports for it
ROSIDL_TYPES = {
    "bool": "boolean",
    "string": "string",
    "int32": "int32",
    "float64": "double",
    "string[]": "sequence<string>",
    "int32[]": "sequence<int32>",
}


def _as_pairs(fields: tuple[SrvField, ...]) -> list[tuple[str, str]]:
    return [(f.type + ("[]" if f.is_array else ""), f.name) for f in fields]


def test_the_srv_files_define_exactly_the_reference_services():
    specs = load_specs()
    assert sorted(specs) == sorted(EXPECTED)
    for name, (request, response) in EXPECTED.items():
        assert (_as_pairs(specs[name].request), _as_pairs(specs[name].response)) == (request, response), name


def test_the_ros2_interface_package_is_a_standard_ament_package_of_our_srv_files():
    assert not (INTERFACES / "srv").exists(), "the .srv files live in recorder/srv only (one source of truth)"
    cmake = (INTERFACES / "CMakeLists.txt").read_text()
    assert f"project({PACKAGE})" in cmake and "rosidl_generate_interfaces(${PROJECT_NAME}" in cmake
    package = ET.parse(INTERFACES / "package.xml").getroot()
    assert package.get("format") == "3" and package.findtext("name") == PACKAGE
    assert package.findtext("member_of_group") == "rosidl_interface_packages"
    assert {e.text for e in package.findall("buildtool_depend")} == {"ament_cmake", "rosidl_default_generators"}


def test_the_built_ros2_types_have_exactly_the_srv_fields():
    from axon_dagster.recorder.ros2_env import load_srv_module

    srv = load_srv_module()
    for name, (request, response) in EXPECTED.items():
        srv_type = getattr(srv, name)
        for message, fields in ((srv_type.Request, request), (srv_type.Response, response)):
            types = message.get_fields_and_field_types()
            assert list(types) == [field for _t, field in fields], name
            assert list(types.values()) == [ROSIDL_TYPES[t] for t, _f in fields], name


def test_genpy_generates_classes_with_the_srv_fields(tmp_path):
    srv = import_generated(build(tmp_path / "build"), PACKAGE)
    status = srv.GetStatusResponse()
    assert list(status.__slots__) == [name for _t, name in EXPECTED["GetStatus"][1]]
    assert status._slot_types == [t for t, _n in EXPECTED["GetStatus"][1]]
    assert srv.StartRecording._type == f"{PACKAGE}/StartRecording"
    assert srv.StartRecordingRequest(config_path="/x.yaml").config_path == "/x.yaml"
    # genpy's md5sum covers field types and names, so it changes with the contract
    assert re.fullmatch(r"[0-9a-f]{32}", srv.GetStatus._md5sum)


def test_genpy_build_is_skipped_when_fresh_and_redone_when_a_srv_changes(tmp_path):
    srv_dir = tmp_path / "srv"
    srv_dir.mkdir()
    for path in SRV_DIR.glob("*.srv"):
        (srv_dir / path.name).write_bytes(path.read_bytes())
    out = tmp_path / "build"
    build(out, srv_dir=srv_dir)
    generated = out / PACKAGE / "srv" / "_GetStatus.py"
    first_mtime = generated.stat().st_mtime_ns
    build(out, srv_dir=srv_dir)
    assert generated.stat().st_mtime_ns == first_mtime, "an up-to-date build is left alone"

    (srv_dir / "GetStatus.srv").write_text((srv_dir / "GetStatus.srv").read_text() + "string robot_id\n")
    build(out, srv_dir=srv_dir)
    assert "robot_id" in generated.read_text()
    assert (out / PACKAGE / STAMP).exists()
    assert [p.name for p in out.iterdir()] == [PACKAGE], "no staging or retired directories left behind"


def test_a_bad_srv_file_fails_the_build_and_leaves_the_previous_build(tmp_path):
    srv_dir = tmp_path / "srv"
    srv_dir.mkdir()
    (srv_dir / "Ping.srv").write_text("string x\n---\nbool ok\n")
    out = tmp_path / "build"
    build(out, srv_dir=srv_dir, package="axon_ping_msgs")
    (srv_dir / "Ping.srv").write_text("strng x\n---\nbool ok\n")
    with pytest.raises(GenpyBuildError, match="genpy could not generate axon_ping_msgs"):
        build(out, srv_dir=srv_dir, package="axon_ping_msgs")
    assert "_Ping.py" in [p.name for p in (out / "axon_ping_msgs" / "srv").iterdir()]


def test_the_explicit_build_step_prints_where_it_built(tmp_path, capsys):
    assert genpy_build_main(["--out", str(tmp_path / "b")]) == 0
    assert Path(capsys.readouterr().out.strip()) == tmp_path / "b" / PACKAGE / "srv"
    assert (tmp_path / "b" / PACKAGE / "srv" / "_StopRecording.py").exists()


@pytest.mark.parametrize(
    "text, words",
    [
        ("string a\n", "no '---'"),
        ("string a\n---\n---\n", "a second '---'"),
        ("geometry_msgs/Pose p\n---\n", "unsupported field"),
    ],
)
def test_parse_srv_refuses_what_it_does_not_understand(text, words):
    with pytest.raises(SrvSpecError, match=words):
        parse_srv("X", text)


def test_service_names_and_namespaces():
    assert service_name("axon", "get_status") == "/axon/get_status"
    assert service_name("/robot_1/axon/", "start_recording") == "/robot_1/axon/start_recording"
    for bad in ("", "/", "1axon", "ax on", "axon//x", 7):
        with pytest.raises(ValueError, match="ROS namespace"):
            validate_namespace(bad)
    with pytest.raises(ValueError, match="unknown recorder operation"):
        service_name("axon", "pause")


class _Reply:
    def __init__(self, **fields):
        self.__dict__.update(fields)


def test_replies_are_checked_against_the_srv():
    ok = dict(is_recording=True, dataset_path="/d", active_topics=["/a"], batch_sizes=(3,), pending_batches=0,
              disk_usage_gb=1, last_error="")
    assert status_response(_Reply(**ok)).disk_usage_gb == 1.0
    assert status_response(_Reply(**ok)).batch_sizes == [3]
    with pytest.raises(RecorderProtocolError, match="'batch_sizes' must be a int32"):
        status_response(_Reply(**{**ok, "batch_sizes": "3"}))
    with pytest.raises(RecorderProtocolError, match="'is_recording' must be bool"):
        status_response(_Reply(**{**ok, "is_recording": 1}))
    with pytest.raises(RecorderProtocolError, match="no field 'last_error'"):
        status_response(_Reply(**{k: v for k, v in ok.items() if k != "last_error"}))
    with pytest.raises(RecorderProtocolError, match="returned no response"):
        read_response("get_status", None)
    with pytest.raises(RecorderRefused, match="recorder refused stop_recording: busy"):
        stop_response(_Reply(success=False, message="busy", flushed_batches=0))
    with pytest.raises(RecorderProtocolError, match="must not be negative"):
        stop_response(_Reply(success=True, message="", flushed_batches=-1))

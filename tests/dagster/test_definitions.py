import subprocess
import sys

import dagster as dg

from axon_dagster.defs import build_definitions
from axon_dagster.defs.lineage import CLOUD_DATASET, DATASET, INSPECTION_REPORT, ORDER

defs = build_definitions()


def test_definitions_load_with_jobs_sensor_and_resources():
    for job in ("order_processing", "data_flow"):
        assert defs.resolve_job_def(job).name == job
    assert defs.resolve_sensor_def("staged_dataset_sensor").job_name == "data_flow"
    assert not defs.resolve_sensor_def("upload_grant_sensor").targets  # it grants, it launches nothing
    # Nothing of the cloud reads a robot's disk: no job stages from a reported path, no upload job of its own.
    jobs = {j.name for j in defs.resolve_all_job_defs()}
    assert not jobs & {"legacy_data_flow", "upload_approved"}
    assert {n.name for n in defs.resolve_job_def("data_flow").nodes} == {"ingest_staged_recording", "inspect_staged_dataset", "settle_dataset"}
    assert set(defs.resources) >= {"control_plane", "object_store", "inspection", "upload_grants", "data_flow_policy"}
    assert "recorder" not in defs.resources  # the cloud never drives a recorder: robots do


def test_lineage_graph_runs_order_to_cloud_dataset():
    graph = defs.resolve_asset_graph()
    upstream = {key: set(graph.get(key).parent_keys) for key in graph.get_all_asset_keys()}
    assert upstream[CLOUD_DATASET] == {INSPECTION_REPORT}
    assert upstream[INSPECTION_REPORT] == {DATASET}
    assert upstream[ORDER] == set()


def test_network_steps_retry_with_backoff():
    for job in ("order_processing", "data_flow"):
        for node in defs.resolve_job_def(job).nodes:
            policy = node.definition.retry_policy
            assert policy is not None and policy.backoff == dg.Backoff.EXPONENTIAL, node.name


def test_order_form_refuses_a_missing_scene():
    job = defs.resolve_job_def("order_processing")
    with __import__("pytest").raises(dg.DagsterInvalidConfigError, match="scene"):
        job.execute_in_process(
            run_config={"ops": {"create_order": {"config": {"order_id": "o1", "skills": ["nav"]}}}},
            instance=dg.DagsterInstance.ephemeral(),
        )


def test_code_location_loads_the_way_the_grpc_server_does():
    # `dagster api grpc -m axon_dagster.defs` imports the module in a fresh process.
    out = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-m", "axon_dagster.defs"],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_build_definitions_accepts_injected_resources():
    from axon_dagster.defs.resources import ControlPlaneResource

    custom = build_definitions({"control_plane": ControlPlaneResource(url="http://cp.example:9000")})
    assert custom.resources["control_plane"].url == "http://cp.example:9000"


def test_every_area_exports_definitions_and_the_location_merges_them_all():
    from axon_dagster import defs as location

    merged = location.build_definitions()
    for area in location.AREAS:
        assert isinstance(area, dg.Definitions)
        for job in area.jobs or ():
            assert merged.resolve_job_def(job.name) is not None
        for sensor in area.sensors or ():
            assert merged.resolve_sensor_def(sensor.name) is not None
    names = [j.name for a in location.AREAS for j in (a.jobs or ())]
    assert len(names) == len(set(names)), names  # no job defined by two areas


def test_importing_the_code_location_builds_no_resources():
    # A bad setting is not met at import (areas read no environment) but when the location loads.
    env = {**__import__("os").environ, "AXON_MAX_UPLOAD_ATTEMPTS": "many"}
    imported = subprocess.run([sys.executable, "-c", "import axon_dagster.defs"], capture_output=True, text=True, env=env, timeout=120)
    assert imported.returncode == 0, imported.stderr
    loaded = subprocess.run(
        [sys.executable, "-c", "from axon_dagster.defs import defs; defs()"], capture_output=True, text=True, env=env, timeout=120
    )
    assert loaded.returncode != 0 and "AXON_MAX_UPLOAD_ATTEMPTS must be an integer" in loaded.stderr

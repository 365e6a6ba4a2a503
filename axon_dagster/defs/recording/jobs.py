"""The recording surface: drive one robot's recorder directly from Dagster.

Ops ``start_recording``, ``stop_recording``, ``get_status``, ``update_config``,
``wait_for_recording`` and ``health_check`` speak to the recorder through ``RecorderResource``
(http, ros1 or ros2: the ops never know which). Jobs: ``simple_recording`` (start, wait, stop),
``multi_session_recording`` (sessions with their own configs, in sequence) and
``conditional_recording`` (only when the recorder is healthy and has disk to spare). Schedules
``daily_recording`` / ``hourly_recording`` and sensors ``disk_space_sensor`` /
``topic_availability_sensor`` start ``simple_recording``; all ship STOPPED, since they make
robots record. The ``lance_dataset`` asset describes one recording.

Each job has one flat launchpad form (a config mapping) checked before any op runs, so a bad
duration never leaves a recording running. Recurring runs record a fresh task each time: the op
copies a template config with the run's ``task_id`` (a recorder refuses to record a task twice).

Errors: a refusal, a protocol mismatch or a bad config fail the step at once (retrying cannot
help); an unreachable recorder is retried with backoff (NETWORK_RETRY).
"""

import contextlib
import dataclasses
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Optional

import dagster as dg
from pydantic import Field

from axon_dagster.recorder.config import RecordingConfig, RecordingConfigError
from axon_dagster.recorder.protocol import (
    RecorderError,
    RecorderProtocolError,
    RecorderRefused,
    RecorderStatus,
    RecorderTimeout,
)
from axon_dagster.storage.digest import DigestMismatch
from axon_dagster.storage.recording import Sidecar, sidecar_path

from ..resources import RecorderResource
from ..retry import NETWORK_RETRY
from ..runs import ACTIVE_RUN_STATUSES

LANCE_DATASET = dg.AssetKey("lance_dataset")
MULTI_SESSION_COUNT = 2
RECORDING_CONFIG_DIR_ENV = "AXON_RECORDING_CONFIG_DIR"
DEFAULT_RECORDING_CONFIG_DIR = ".axon/recording-configs"


class RecordingPolicyResource(dg.ConfigurableResource):
    """Where recording templates live and when the sensors may start a recording."""

    config_dir: str = Field(
        default=DEFAULT_RECORDING_CONFIG_DIR,
        description="Templates daily_recording.yaml, hourly_recording.yaml, default.yaml (RecordingConfig YAML); "
        "per-run copies go to <config_dir>/runs/",
    )
    max_disk_usage_gb: float = Field(default=50.0, ge=0, description="Start only while the recorder's data uses less")
    required_topics: list[str] = Field(
        default_factory=list, description="topic_availability_sensor waits for these (default: default.yaml's topics)"
    )
    sensor_duration_seconds: float = Field(default=3600.0, gt=0, description="Length of recordings the sensors start")

    def template(self, name: str) -> Path:
        return Path(self.config_dir).resolve() / name

    def runs_dir(self) -> Path:
        return Path(self.config_dir).resolve() / "runs"


def recording_policy_from_env() -> RecordingPolicyResource:
    return RecordingPolicyResource(config_dir=os.path.abspath(os.environ.get(RECORDING_CONFIG_DIR_ENV, DEFAULT_RECORDING_CONFIG_DIR)))


# -- op configs ---------------------------------------------------------------------------------


class StartRecordingConfig(dg.Config):
    config_path: str = Field(description="Recording config file (YAML); a template when task_id is set")
    task_id: Optional[str] = Field(
        default=None, description="Record under this task id: the template is copied with it (schedules set one per run)"
    )


class StopRecordingConfig(dg.Config):
    wait_for_flush: bool = Field(default=True, description="Wait until the recorder reports no pending batches")
    flush_timeout_seconds: float = Field(default=60.0, gt=0, description="How long to wait for the flush")


class UpdateConfigConfig(dg.Config):
    config_path: str = Field(description="Recording config file (YAML) to hand to the recorder")


class WaitForRecordingConfig(dg.Config):
    duration_seconds: float = Field(gt=0, description="How long to record")
    check_interval_seconds: float = Field(default=5.0, gt=0, description="Status check interval while recording")


class HealthCheckConfig(dg.Config):
    max_disk_usage_gb: float = Field(default=50.0, ge=0, description="Healthy only while the recorder's data uses less")


# -- plain functions (no Dagster): the recording rules, testable on their own ------------------------


@contextlib.contextmanager
def recorder_client(recorder: RecorderResource) -> Iterator[Any]:
    client = recorder.client()
    try:
        yield client
    finally:
        close = getattr(client, "close", None)
        if close is not None:
            close()


def config_for_run(config_path: str, task_id: Optional[str], runs_dir: Path) -> tuple[str, RecordingConfig]:
    """The config file to record with: ``config_path`` itself, or — with ``task_id`` — a copy of
    that template under ``runs_dir`` carrying the run's task id. Raises RecordingConfigError."""
    template = RecordingConfig.read(config_path)
    if task_id is None or task_id == template.task_id:
        return str(Path(config_path).resolve()), template
    config = RecordingConfig.from_dict({**template.to_dict(), "task_id": task_id})
    return str(config.write(runs_dir / f"{task_id}.yaml")), config


@dataclasses.dataclass(frozen=True)
class HealthReport:
    reachable: bool
    reasons: tuple[str, ...]
    status: Optional[RecorderStatus] = None

    @property
    def ready(self) -> bool:
        return self.reachable and not self.reasons

    def to_dict(self) -> dict[str, Any]:
        return {
            "ready": self.ready,
            "reachable": self.reachable,
            "reasons": list(self.reasons),
            "status": dataclasses.asdict(self.status) if self.status else None,
        }


def check_health(client: Any, max_disk_usage_gb: float) -> HealthReport:
    """Is the recorder ready to start a recording? Never raises for recorder failures: an
    unreachable recorder is simply not ready, with the reason."""
    try:
        status = client.get_status()
        health = getattr(client, "health", None)  # the HTTP RPC has /health; ROS has no such call
        service = health() if health is not None else {"status": "ok"}
    except RecorderError as exc:
        return HealthReport(False, (f"recorder unavailable: {exc}",))
    reasons = []
    if str(service.get("status", "ok")).lower() != "ok":
        reasons.append(f"recorder health is {service.get('status')!r}")
    if status.is_recording:
        reasons.append(f"recorder is already recording ({status.dataset_path or 'unknown dataset'})")
    if status.last_error:
        reasons.append(f"recorder reports an error: {status.last_error}")
    if not status.disk_usage_gb < max_disk_usage_gb:
        reasons.append(f"recorder data uses {status.disk_usage_gb:.3g} GB; the limit is {max_disk_usage_gb:g} GB")
    return HealthReport(True, tuple(reasons), status)


def topics_from_stats(stats: dict[str, Any]) -> set[str]:
    """Topics an HTTP recorder can record, from ``/rpc/stats``: the keys of Axon's
    ``topic_message_counts`` (every subscription of the recorder's YAML, listed with zero counts
    when idle — Axon records its subscriptions, not a task's topics), else an older peer's
    ``available_topics`` (a list of names or a mapping of name to details)."""
    counts = stats.get("topic_message_counts")
    if isinstance(counts, dict) and counts:
        return {str(t) for t in counts}
    available = stats.get("available_topics")
    if not isinstance(available, (list, dict)):
        raise RecorderProtocolError(
            "the recorder reports neither topic_message_counts nor available_topics in /rpc/stats; "
            "topic availability needs one (or the ros1/ros2 transport, which asks the ROS graph)"
        )
    return {str(t) for t in available}


def available_topics(client: Any) -> set[str]:
    """Topics being published where the recorder runs: the ROS graph for ros1/ros2, the
    recorder's statistics for http."""
    graph = getattr(client, "available_topics", None)
    if graph is not None:
        return set(graph())
    stats = getattr(client, "stats", None)
    if stats is None:
        raise RecorderProtocolError(f"{client!r} can tell neither the ROS graph nor recorder statistics")
    return topics_from_stats(stats())


def lance_dataset_metadata(dataset_path: str | os.PathLike) -> dict[str, Any]:
    """The ``lance_dataset`` asset's metadata, after checking the dataset against its sidecar's
    digest: path, size, topics, time range, schema and the recording config it was made with."""
    path = Path(dataset_path)
    if path.suffix == ".mcap":
        return mcap_recording_metadata(path)
    side = sidecar_path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"no Lance dataset at {path}")
    if not side.exists():
        raise FileNotFoundError(f"no sidecar {side}: {path} is not a finished recording")
    sidecar = Sidecar.read(side)
    sidecar.verify(path)  # DigestMismatch if a file changed since the recorder wrote it
    import lance  # heavy: only where the asset materializes

    dataset = lance.dataset(str(path))
    schema = dg.TableSchema(columns=[dg.TableColumn(name=f.name, type=str(f.type)) for f in dataset.schema])
    size = sum((path / rel).stat().st_size for rel in sidecar.files)
    return {
        "dataset_path": dg.MetadataValue.path(str(path)),
        "task_id": sidecar.task_id,
        "robot_id": sidecar.robot_id,
        "size_bytes": size,
        "row_count": dataset.count_rows(),
        "topics": dg.MetadataValue.json(sorted(sidecar.topics)),
        "topic_message_counts": dg.MetadataValue.json({t: s.count for t, s in sorted(sidecar.topics.items())}),
        "start_time": _iso(sidecar.start_ns),
        "end_time": _iso(sidecar.end_ns),
        "duration_seconds": (sidecar.end_ns - sidecar.start_ns) / 1e9,
        "dagster/column_schema": schema,
        "recording_config": dg.MetadataValue.json(sidecar.metadata),
        "dataset_digest": sidecar.dataset_digest,
    }


def mcap_recording_metadata(mcap_path: str | os.PathLike) -> dict[str, Any]:
    """The recording asset's metadata for an Axon MCAP, after checking it is complete and matches
    Axon's checksum: what Axon's sidecar (or, without one, the MCAP's axon.* records) says."""
    from axon_dagster.storage.axon_recording import AxonRecordingFiles, load_sidecar, verify_recording

    files = AxonRecordingFiles.for_mcap(mcap_path)
    # IncompleteRecording if not finished, ChecksumMismatch if the file changed since Axon hashed it
    sha, axon = verify_recording(files)
    axon = axon or load_sidecar(files)  # no sidecar: the MCAP's axon.* records
    rec = axon.recording
    return {
        "dataset_path": dg.MetadataValue.path(str(files.mcap_path)),
        "recording_format": "mcap",
        "task_id": axon.task_id,
        "robot_id": axon.device.device_id,
        "size_bytes": files.mcap_path.stat().st_size,
        "row_count": rec.message_count,
        "topics": dg.MetadataValue.json(sorted(axon.topic_counts())),
        "topic_message_counts": dg.MetadataValue.json(dict(sorted(axon.topic_counts().items()))),
        "start_time": rec.recording_started_at,
        "end_time": rec.recording_finished_at,
        "duration_seconds": rec.duration_sec,
        "recording_config": dg.MetadataValue.json(axon.to_dict()["task"]),
        "axon_checksum_sha256": rec.checksum_sha256 or "",
        "mcap_sha256": sha,
    }


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).isoformat()


def _status_metadata(status: RecorderStatus) -> dict[str, Any]:
    return {
        "is_recording": status.is_recording,
        "dataset_path": status.dataset_path,
        "active_topics": dg.MetadataValue.json(status.active_topics),
        "pending_batches": status.pending_batches,
        "disk_usage_gb": status.disk_usage_gb,
        "last_error": status.last_error,
    }


def _fail(message: str, exc: Exception | None = None) -> dg.Failure:
    """A failure retrying cannot fix (refused, protocol mismatch, bad config)."""
    return dg.Failure(description=message + (f": {exc}" if exc else ""), allow_retries=False)


# -- ops ----------------------------------------------------------------------------------------


@dg.op(ins={"after": dg.In(dg.Nothing)}, retry_policy=NETWORK_RETRY, tags={"kind": "recorder"})
def get_status(context: dg.OpExecutionContext, recorder: RecorderResource) -> dict:
    """The recorder's status (GetStatus)."""
    with recorder_client(recorder) as client:
        try:
            status = client.get_status()
        except RecorderProtocolError as exc:
            raise _fail("recorder status is not what the protocol promises", exc) from exc
    context.add_output_metadata(_status_metadata(status))
    return dataclasses.asdict(status)


@dg.op(ins={"after": dg.In(dg.Nothing)}, retry_policy=NETWORK_RETRY, tags={"kind": "recorder"})
def update_config(context: dg.OpExecutionContext, config: UpdateConfigConfig, recorder: RecorderResource) -> dict:
    """Hand the recorder a config without starting (UpdateConfig)."""
    with recorder_client(recorder) as client:
        try:
            reply = client.update_config(config.config_path)
        except RecordingConfigError as exc:
            raise _fail("bad recording config", exc) from exc
        except (RecorderRefused, RecorderProtocolError) as exc:
            raise _fail("recorder did not take the config", exc) from exc
    context.add_output_metadata({"config_path": config.config_path, "message": reply.message})
    return {"config_path": config.config_path, "message": reply.message}


@dg.op(ins={"after": dg.In(dg.Nothing)}, retry_policy=NETWORK_RETRY, tags={"kind": "recorder"})
def start_recording(
    context: dg.OpExecutionContext,
    config: StartRecordingConfig,
    recorder: RecorderResource,
    recording_policy: RecordingPolicyResource,
) -> dict:
    """Start recording (StartRecording). Repeating it for the task already recording is harmless,
    which makes a retry after an unanswered start safe."""
    try:
        config_path, task = config_for_run(config.config_path, config.task_id, recording_policy.runs_dir())
    except RecordingConfigError as exc:
        raise _fail("bad recording config; nothing was started", exc) from exc
    with recorder_client(recorder) as client:
        try:
            reply = client.start_recording(config_path)
        except (RecorderRefused, RecorderProtocolError) as exc:
            raise _fail(f"recorder did not start task {task.task_id}", exc) from exc
    context.log.info(f"recording task {task.task_id}: {reply.message}")
    context.add_output_metadata({"task_id": task.task_id, "config_path": dg.MetadataValue.path(config_path), "message": reply.message})
    return {"task_id": task.task_id, "config_path": config_path, "topics": list(task.topics), "message": reply.message}


@dg.op(tags={"kind": "recorder"})
def wait_for_recording(
    context: dg.OpExecutionContext, config: WaitForRecordingConfig, recorder: RecorderResource, started: dict
) -> dict:
    """Let the recording run for ``duration_seconds``, checking its status every interval: a
    recorder that stops, reports an error or stops answering fails the step (not retried: the
    session is lost either way, and the stop step must not run on a broken recording)."""
    task_id = started["task_id"]
    deadline = time.monotonic() + config.duration_seconds
    checks = 0
    with recorder_client(recorder) as client:
        while True:
            try:
                status = client.get_status()
            except RecorderError as exc:
                raise _fail(f"recorder stopped answering while recording task {task_id}", exc) from exc
            checks += 1
            if not status.is_recording:
                raise _fail(f"recorder stopped recording task {task_id} early" + (f": {status.last_error}" if status.last_error else ""))
            if status.last_error:
                raise _fail(f"recorder reports an error while recording task {task_id}: {status.last_error}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            context.log.debug(f"task {task_id}: {dict(zip(status.active_topics, status.batch_sizes))}, {remaining:.0f}s to go")
            time.sleep(min(config.check_interval_seconds, remaining))
    context.add_output_metadata({"task_id": task_id, "status_checks": checks, **_status_metadata(status)})
    return {**started, "status": dataclasses.asdict(status)}


@dg.op(ins={"after": dg.In(dg.Nothing)}, retry_policy=NETWORK_RETRY, tags={"kind": "recorder"})
def stop_recording(context: dg.OpExecutionContext, config: StopRecordingConfig, recorder: RecorderResource):
    """Stop and flush (StopRecording); report the dataset as a ``lance_dataset`` materialization
    when it is readable from here (it is on the robot's disk otherwise)."""
    with recorder_client(recorder) as client:
        try:
            reply = client.stop_recording()
        except (RecorderRefused, RecorderProtocolError) as exc:
            raise _fail("recorder did not stop", exc) from exc
        except RecorderTimeout as exc:
            # the stop may have been acted on: repeating it would be refused as "nothing to stop"
            raise _fail("recorder did not confirm the stop in time; check its status", exc) from exc
        # The stop is done: from here on a failure must not make the step retry (a second stop
        # would be refused as "nothing to stop"), so status problems fail it for good.
        try:
            status = client.get_status()
            deadline = time.monotonic() + config.flush_timeout_seconds
            while config.wait_for_flush and status.pending_batches > 0:
                if time.monotonic() > deadline:
                    raise _fail(f"{status.pending_batches} batches still pending after {config.flush_timeout_seconds:g}s")
                time.sleep(0.2)
                status = client.get_status()
        except RecorderError as exc:
            raise _fail(f"recorder stopped ({reply.message}) but its status could not be read", exc) from exc
    result = {"message": reply.message, "flushed_batches": reply.flushed_batches, "dataset_path": status.dataset_path}
    if status.dataset_path and Path(status.dataset_path).is_dir():
        try:
            metadata = lance_dataset_metadata(status.dataset_path)
        except (FileNotFoundError, DigestMismatch) as exc:
            raise _fail(f"the recorder's dataset {status.dataset_path} does not check out", exc) from exc
        yield dg.AssetMaterialization(asset_key=LANCE_DATASET, metadata=metadata)
    elif status.dataset_path:
        context.log.info(f"dataset {status.dataset_path} is not readable from this process; not materialized here")
    yield dg.Output(result, metadata={"flushed_batches": reply.flushed_batches, "dataset_path": status.dataset_path})


@dg.op(
    ins={"after": dg.In(dg.Nothing)},
    out={"report": dg.Out(dict), "ready": dg.Out(dict, is_required=False)},
    tags={"kind": "recorder"},
)
def health_check(context: dg.OpExecutionContext, config: HealthCheckConfig, recorder: RecorderResource):
    """Is the recorder reachable, idle, error-free and below the disk limit? Always yields
    ``report``; yields ``ready`` only when every condition holds, so steps that hang off
    ``ready`` are skipped (not failed) otherwise."""
    with recorder_client(recorder) as client:
        report = check_health(client, config.max_disk_usage_gb)
    for reason in report.reasons:
        context.log.warning(f"recorder not ready: {reason}")
    yield dg.Output(report.to_dict(), "report", metadata={"ready": report.ready, "reasons": dg.MetadataValue.json(list(report.reasons))})
    if report.ready:
        yield dg.Output(report.to_dict(), "ready")


# -- asset --------------------------------------------------------------------------------------


class LanceDatasetConfig(dg.Config):
    dataset_path: str = Field(description="A recording: <data_dir>/<task_id>.lance with its <task_id>.json sidecar")


@dg.asset(key=LANCE_DATASET, group_name="recording", kinds={"lance"})
def lance_dataset(context: dg.AssetExecutionContext, config: LanceDatasetConfig) -> dg.MaterializeResult:
    """A Lance dataset written by the recorder, checked against its sidecar's digest."""
    try:
        metadata = lance_dataset_metadata(config.dataset_path)
    except FileNotFoundError as exc:
        raise _fail("not a recording", exc) from exc
    except DigestMismatch as exc:
        raise _fail("the dataset changed since it was recorded", exc) from exc
    return dg.MaterializeResult(metadata=metadata)


# -- jobs: one flat form each, checked before anything runs --------------------------------------


class RecordingRunConfig(dg.Config):
    """One recording: the launchpad form of simple_recording and of each multi-session session."""

    config_path: str = Field(description="Recording config file (YAML); a template when task_id is set")
    task_id: Optional[str] = Field(default=None, description="Record under this task id (copies the template)")
    duration_seconds: float = Field(gt=0, description="How long to record")
    check_interval_seconds: float = Field(default=5.0, gt=0, description="Status check interval while recording")
    wait_for_flush: bool = True
    flush_timeout_seconds: float = Field(default=60.0, gt=0)


class ConditionalRecordingRunConfig(RecordingRunConfig):
    max_disk_usage_gb: float = Field(default=50.0, ge=0, description="Record only while the recorder's data uses less")


class MultiSessionRunConfig(dg.Config):
    sessions: list[RecordingRunConfig] = Field(description=f"Exactly {MULTI_SESSION_COUNT} sessions, recorded in order")


def _session_ops(run: RecordingRunConfig, start: str, wait: str, stop: str) -> dict[str, Any]:
    return {
        start: {"config": {"config_path": run.config_path, "task_id": run.task_id}},
        wait: {"config": {"duration_seconds": run.duration_seconds, "check_interval_seconds": run.check_interval_seconds}},
        stop: {"config": {"wait_for_flush": run.wait_for_flush, "flush_timeout_seconds": run.flush_timeout_seconds}},
    }


@dg.config_mapping
def _simple_config(config: RecordingRunConfig) -> dg.RunConfig:
    return dg.RunConfig(ops=_session_ops(config, "start_recording", "wait_for_recording", "stop_recording"))


@dg.config_mapping
def _conditional_config(config: ConditionalRecordingRunConfig) -> dg.RunConfig:
    ops = _session_ops(config, "start_recording", "wait_for_recording", "stop_recording")
    return dg.RunConfig(ops={**ops, "health_check": {"config": {"max_disk_usage_gb": config.max_disk_usage_gb}}})


@dg.config_mapping
def _multi_session_config(config: MultiSessionRunConfig) -> dg.RunConfig:
    if len(config.sessions) != MULTI_SESSION_COUNT:
        raise ValueError(f"multi_session_recording records exactly {MULTI_SESSION_COUNT} sessions, got {len(config.sessions)}")
    task_ids = [s.task_id for s in config.sessions if s.task_id]
    if len(set(task_ids)) != len(task_ids):
        raise ValueError(f"each session must record its own task, got task ids {task_ids}")
    ops: dict[str, Any] = {}
    for n, session in enumerate(config.sessions, start=1):
        ops.update(_session_ops(session, f"session_{n}_start", f"session_{n}_wait", f"session_{n}_stop"))
    return dg.RunConfig(ops=ops)


@dg.job(config=_simple_config, tags={"axon/flow": "recording"})
def simple_recording():
    """Status, start, wait for the duration, stop, final status."""
    started = start_recording(after=get_status())
    stopped = stop_recording(after=wait_for_recording(started))
    get_status.alias("final_status")(after=stopped)


@dg.job(config=_multi_session_config, tags={"axon/flow": "recording"})
def multi_session_recording():
    """Sessions with different configs, one after the other."""
    previous = get_status()
    for n in range(1, MULTI_SESSION_COUNT + 1):
        started = start_recording.alias(f"session_{n}_start")(after=previous)
        previous = stop_recording.alias(f"session_{n}_stop")(after=wait_for_recording.alias(f"session_{n}_wait")(started))
    get_status.alias("final_status")(after=previous)


@dg.job(config=_conditional_config, tags={"axon/flow": "recording"})
def conditional_recording():
    """Record only when health_check finds the recorder ready; otherwise the run succeeds with
    the recording steps skipped and the reasons in health_check's report."""
    _report, ready = health_check()
    started = start_recording(after=ready)
    stopped = stop_recording(after=wait_for_recording(started))
    get_status.alias("final_status")(after=stopped)


# -- schedules and sensors: they make robots record, so they ship STOPPED -----------------------------


def simple_recording_run_config(config_path: str | Path, task_id: str, duration_seconds: float) -> dict[str, Any]:
    return {"config_path": str(config_path), "task_id": task_id, "duration_seconds": duration_seconds}


def _template_problem(path: Path) -> Optional[str]:
    try:
        RecordingConfig.read(path)
    except RecordingConfigError as exc:
        return f"recording template unusable: {exc}"
    return None


def _recording_schedule(
    name: str, cron: str, template: str, prefix: str, stamp_format: str, duration_seconds: float, label: str, description: str
) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=name,
        job=simple_recording,
        cron_schedule=cron,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=description,
    )
    def _schedule(context: dg.ScheduleEvaluationContext, recording_policy: RecordingPolicyResource):
        path = recording_policy.template(template)
        problem = _template_problem(path)
        if problem:
            return dg.SkipReason(problem)
        # one task per tick: a recorder never records a task twice, and run_key dedups the tick
        stamp = context.scheduled_execution_time.strftime(stamp_format)
        return dg.RunRequest(
            run_key=f"{name}:{stamp}",
            run_config=simple_recording_run_config(path, f"{prefix}-{stamp}", duration_seconds),
            tags={"axon/recording_type": prefix, "axon/duration": label},
        )

    return _schedule


daily_recording = _recording_schedule(
    "daily_recording", "0 9 * * *", "daily_recording.yaml", "daily", "%Y%m%d", 8 * 3600.0, "8h",
    "Every day at 09:00: an 8-hour recording from daily_recording.yaml",
)
hourly_recording = _recording_schedule(
    "hourly_recording", "0 * * * *", "hourly_recording.yaml", "hourly", "%Y%m%d-%H%M", 300.0, "5m",
    "Every hour: a 5-minute recording from hourly_recording.yaml",
)


def _active_recording_runs(context: dg.SensorEvaluationContext) -> int:
    runs = context.instance.get_runs(filters=dg.RunsFilter(job_name="simple_recording", statuses=ACTIVE_RUN_STATUSES), limit=1)
    return len(runs)


def _sensor_run_request(policy: RecordingPolicyResource, trigger: str, template: Path) -> dg.RunRequest:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return dg.RunRequest(
        run_key=f"{trigger}:{stamp}",
        run_config=simple_recording_run_config(template, f"{trigger}-{stamp}", policy.sensor_duration_seconds),
        tags={"axon/trigger": trigger},
    )


@dg.sensor(job=simple_recording, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.STOPPED)
def disk_space_sensor(
    context: dg.SensorEvaluationContext, recorder: RecorderResource, recording_policy: RecordingPolicyResource
):
    """Start a recording (default.yaml) whenever the recorder is idle and below the disk limit."""
    template = recording_policy.template("default.yaml")
    problem = _template_problem(template)
    if problem:
        return dg.SkipReason(problem)
    if _active_recording_runs(context):
        return dg.SkipReason("a simple_recording run is already in progress")
    with recorder_client(recorder) as client:
        report = check_health(client, recording_policy.max_disk_usage_gb)
    if not report.ready:
        return dg.SkipReason("; ".join(report.reasons))
    return _sensor_run_request(recording_policy, "disk", template)


@dg.sensor(job=simple_recording, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.STOPPED)
def topic_availability_sensor(
    context: dg.SensorEvaluationContext, recorder: RecorderResource, recording_policy: RecordingPolicyResource
):
    """Start a recording (default.yaml) when the topics it needs become available: the ROS graph
    on ros1/ros2, the recorder's statistics on http. The cursor remembers whether they were
    available, so one appearance starts one recording."""
    template = recording_policy.template("default.yaml")
    problem = _template_problem(template)
    if problem:
        return dg.SkipReason(problem)
    required = set(recording_policy.required_topics or RecordingConfig.read(template).topics)
    if not required:
        return dg.SkipReason("no required topics: list them in default.yaml's topics or the policy's required_topics")
    with recorder_client(recorder) as client:
        try:
            topics = available_topics(client)
        except RecorderError as exc:
            return dg.SensorResult(skip_reason=f"cannot list topics: {exc}", cursor="unknown")
    missing = sorted(required - topics)
    if missing:
        return dg.SensorResult(skip_reason=f"waiting for topics {missing}", cursor="missing")
    if context.cursor == "available":
        return dg.SensorResult(skip_reason="required topics still available; their recording was already requested", cursor="available")
    if _active_recording_runs(context):
        return dg.SensorResult(skip_reason="a simple_recording run is already in progress", cursor=context.cursor)
    return dg.SensorResult(run_requests=[_sensor_run_request(recording_policy, "topics", template)], cursor="available")

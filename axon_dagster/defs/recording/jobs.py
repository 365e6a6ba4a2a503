"""Recording jobs: ask a robot for a recording through the control plane, and wait until it is made.

``simple_recording`` (request one recording, wait until the robot reports it recorded),
``multi_session_recording`` (sessions one after the other, each its own request) and
``conditional_recording`` (only when the robot last reported its recorder ready, by the shared
recorder-health policy :mod:`axon_dagster.recorder.health`). The robot's edge agent is the only
thing that talks to its recorder: it starts the recording when its collector does, stops it at
the requested duration and reports it; the recording then takes the data flow like any order's.

Each job has one flat launchpad form (a config mapping) checked before any op runs.
"""

from typing import Any, Optional

import dagster as dg
from pydantic import Field

from axon_dagster.client import ControlPlaneError

from ..resources import ControlPlaneResource
from ..retry import NETWORK_RETRY
from .dispatch import RecordingRequest, RecordingRequestError, await_recording, request_recording, robot_health

MULTI_SESSION_COUNT = 2
DEFAULT_WAIT_SECONDS = 86400.0  # the robot records when its collector starts the task


class RequestConfig(dg.Config):
    robot_id: str = Field(description="The robot to record on")
    scene: str = Field(description="Scene, e.g. warehouse")
    sub_scene: str = Field(default="", description="Sub-scene, e.g. aisle_1")
    skills: list[str] = Field(description="Skills recorded, e.g. [navigation]")
    duration_seconds: float = Field(gt=0, description="How long to record (the robot stops the recording then)")
    topics: list[str] = Field(default_factory=list, description="Topics to record (empty: the recorder's default)")
    priority: int = 0
    recording_id: Optional[str] = Field(
        default=None, description="Id of the request (the order's id; schedules set one per tick); default: from the run id"
    )


class AwaitConfig(dg.Config):
    timeout_seconds: float = Field(default=DEFAULT_WAIT_SECONDS, gt=0, description="How long the robot may take to record it")
    poll_interval_seconds: float = Field(default=5.0, gt=0, description="How often to ask the control plane")


class RobotHealthConfig(dg.Config):
    robot_id: str = Field(description="The robot whose recorder must be ready")
    max_disk_usage_gb: float = Field(default=50.0, ge=0, description="Ready only while the recorder's data uses less")


def _failure(message: str) -> dg.Failure:
    return dg.Failure(description=message, allow_retries=False)


@dg.op(name="request_recording", ins={"after": dg.In(dg.Nothing)}, retry_policy=NETWORK_RETRY, tags={"kind": "control-plane"})
def request_recording_op(context: dg.OpExecutionContext, config: RequestConfig, control_plane: ControlPlaneResource) -> dict:
    """Hand the robot a one-task order for this recording (a retry finds the request already made)."""
    recording_id = config.recording_id or f"rec-{context.run_id[:8]}-{context.op.name}"
    try:
        request = RecordingRequest(
            recording_id=recording_id, robot_id=config.robot_id, scene=config.scene, sub_scene=config.sub_scene,
            skills=tuple(config.skills), duration_seconds=config.duration_seconds, topics=tuple(config.topics),
            priority=config.priority,
        )
    except ValueError as exc:  # InvalidIdError is a ValueError too
        raise _failure(f"bad recording request: {exc}") from exc
    try:
        task = request_recording(control_plane.client(), request, created_by=context.run_id)
    except ControlPlaneError as exc:
        if exc.status_code >= 500:
            raise  # unavailable: retried
        raise _failure(f"the control plane refused recording {recording_id} on robot {config.robot_id}: {exc}") from exc
    except RecordingRequestError as exc:
        raise _failure(str(exc)) from exc
    context.log.info(f"recording {recording_id}: task {task['task_id']} is on robot {config.robot_id} ({task['status']})")
    context.add_output_metadata({"recording_id": recording_id, "task_id": task["task_id"], "robot_id": config.robot_id})
    return task


@dg.op(name="await_recording", retry_policy=NETWORK_RETRY, tags={"kind": "control-plane"})
def await_recording_op(context: dg.OpExecutionContext, config: AwaitConfig, control_plane: ControlPlaneResource, task: dict) -> dict:
    """Wait until the robot reports the task recorded; a failed or cancelled task fails the step."""
    try:
        done = await_recording(
            control_plane.client(), task["task_id"], timeout_s=config.timeout_seconds, poll_s=config.poll_interval_seconds,
            on_status=lambda t: context.log.info(f"task {t['task_id']} is {t['status']}"),
        )
    except RecordingRequestError as exc:
        raise _failure(str(exc)) from exc
    context.add_output_metadata({"task_id": done["task_id"], "status": done["status"], "robot_id": done.get("robot_id") or ""})
    return done


@dg.op(out={"report": dg.Out(dict), "ready": dg.Out(dg.Nothing, is_required=False)}, retry_policy=NETWORK_RETRY,
       tags={"kind": "control-plane"})
def robot_health_check(context: dg.OpExecutionContext, config: RobotHealthConfig, control_plane: ControlPlaneResource):
    """Is the robot's recorder ready, as the robot last reported it? Always yields ``report``;
    yields ``ready`` only when it is, so the steps after it are skipped (not failed) otherwise."""
    health = robot_health(control_plane.client(), config.robot_id, max_disk_usage_gb=config.max_disk_usage_gb)
    for reason in health.reasons:
        context.log.warning(f"robot {config.robot_id} not ready to record: {reason}")
    yield dg.Output(health.to_dict(), "report", metadata={"ready": health.ready, "reasons": dg.MetadataValue.json(list(health.reasons))})
    if health.ready:
        yield dg.Output(None, "ready")


# -- the forms ------------------------------------------------------------------------------------


class RecordingRunConfig(RequestConfig):
    """One recording: the launchpad form of simple_recording and of each multi-session session."""

    timeout_seconds: float = Field(default=DEFAULT_WAIT_SECONDS, gt=0, description="How long the robot may take to record it")
    poll_interval_seconds: float = Field(default=5.0, gt=0)


class ConditionalRecordingRunConfig(RecordingRunConfig):
    max_disk_usage_gb: float = Field(default=50.0, ge=0, description="Record only while the recorder's data uses less")


class MultiSessionRunConfig(dg.Config):
    sessions: list[RecordingRunConfig] = Field(description=f"Exactly {MULTI_SESSION_COUNT} sessions, recorded in order")


_AWAIT_FIELDS = ("timeout_seconds", "poll_interval_seconds")


def _session_ops(run: RecordingRunConfig, request: str, wait: str) -> dict[str, Any]:
    fields = run.model_dump()
    return {
        request: {"config": {k: v for k, v in fields.items() if k in RequestConfig.model_fields}},
        wait: {"config": {k: fields[k] for k in _AWAIT_FIELDS}},
    }


@dg.config_mapping
def _simple_config(config: RecordingRunConfig) -> dg.RunConfig:
    return dg.RunConfig(ops=_session_ops(config, "request_recording", "await_recording"))


@dg.config_mapping
def _conditional_config(config: ConditionalRecordingRunConfig) -> dg.RunConfig:
    ops = _session_ops(config, "request_recording", "await_recording")
    health = {"robot_id": config.robot_id, "max_disk_usage_gb": config.max_disk_usage_gb}
    return dg.RunConfig(ops={**ops, "robot_health_check": {"config": health}})


@dg.config_mapping
def _multi_session_config(config: MultiSessionRunConfig) -> dg.RunConfig:
    if len(config.sessions) != MULTI_SESSION_COUNT:
        raise ValueError(f"multi_session_recording records exactly {MULTI_SESSION_COUNT} sessions, got {len(config.sessions)}")
    ids = [s.recording_id for s in config.sessions if s.recording_id]
    if len(set(ids)) != len(ids):
        raise ValueError(f"each session must be its own request, got recording ids {ids}")
    ops: dict[str, Any] = {}
    for n, session in enumerate(config.sessions, start=1):
        ops.update(_session_ops(session, f"session_{n}_request", f"session_{n}_await"))
    return dg.RunConfig(ops=ops)


@dg.job(config=_simple_config, tags={"axon/flow": "recording"})
def simple_recording():
    """Request one recording from a robot and wait until it is recorded."""
    await_recording_op(request_recording_op())


@dg.job(config=_multi_session_config, tags={"axon/flow": "recording"})
def multi_session_recording():
    """Sessions with their own settings, one after the other (each waits for the one before)."""
    previous = []
    for n in range(1, MULTI_SESSION_COUNT + 1):
        task = request_recording_op.alias(f"session_{n}_request")(after=previous)
        previous = [await_recording_op.alias(f"session_{n}_await")(task)]


@dg.job(config=_conditional_config, tags={"axon/flow": "recording"})
def conditional_recording():
    """Record only when the robot's recorder is ready (robot_health_check); otherwise the run
    succeeds with the recording steps skipped and the reasons in the health report."""
    _report, ready = robot_health_check()
    await_recording_op(request_recording_op(after=ready))

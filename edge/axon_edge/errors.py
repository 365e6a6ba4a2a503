"""Errors of the edge agent. The HTTP surface maps each to one status code; the message is the
explanation a collector sees, so it names the task and what to do."""

from __future__ import annotations


class EdgeError(Exception):
    """Base class: a request the agent refuses or could not carry out."""


class UnknownTask(EdgeError):
    def __init__(self, task_id: str):
        self.task_id = task_id
        super().__init__(f"task {task_id} is not known on this robot")


class InvalidRequest(EdgeError, ValueError):
    """Malformed input (bad id, unknown command). Nothing was changed."""


class Conflict(EdgeError):
    """The request is well formed but the task or the recorder is not in a state that allows it."""


class RecorderBusy(Conflict):
    def __init__(self, task_id: str, recording_task_id: str):
        self.task_id = task_id
        self.recording_task_id = recording_task_id
        super().__init__(
            f"cannot start task {task_id}: the recorder is busy recording task {recording_task_id}; stop it first"
        )


class NotRecording(Conflict):
    def __init__(self, task_id: str, status: str):
        self.task_id = task_id
        self.status = status
        super().__init__(f"cannot stop task {task_id}: it is not recording (status {status})")


class RecorderFailure(EdgeError):
    """The recorder could not do what was asked. ``unreachable`` tells a down recorder (retry later)
    from one that answered with a refusal or nonsense; ``task_failed`` says the task was marked
    FAILED because its recording was lost."""

    def __init__(self, message: str, *, unreachable: bool, task_failed: bool = False):
        self.unreachable = unreachable
        self.task_failed = task_failed
        super().__init__(message)


class DataDirLocked(EdgeError):
    def __init__(self, data_dir: str):
        super().__init__(f"another axon-edge agent is already running on data dir {data_dir}")

"""Errors of the inspection room."""

from __future__ import annotations


class InspectionInfrastructureError(RuntimeError):
    """The recording could not be inspected (missing or unreadable files, storage or Ray down).

    This says nothing about the data: callers fail the run and retry, and must never record the
    dataset as rejected because of it.
    """

    def __init__(self, dataset_path: str, reason: str):
        self.dataset_path = dataset_path
        self.reason = reason
        super().__init__(f"cannot inspect {dataset_path}: {reason}")


class MalformedRecording(Exception):
    """The recording's own bytes are bad: not a Lance dataset although its files read fine, columns
    missing or of the wrong type, a data file truncated or corrupt. A defect of the data, so it
    gets a verdict (rejected, with this reason) — unlike InspectionInfrastructureError, where
    the bytes could not be reached at all."""

    def __init__(self, dataset_path: str, reason: str):
        self.dataset_path = dataset_path
        self.reason = reason
        super().__init__(f"{dataset_path} is malformed: {reason}")

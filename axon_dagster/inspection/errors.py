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

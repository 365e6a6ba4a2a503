"""Errors of the service layer (besides the domain's own). Entry points map them: HTTP codes, exit codes."""

from __future__ import annotations


class ServiceError(Exception):
    """A request the control plane refuses. Nothing was changed."""


class NotFoundError(ServiceError, LookupError):
    def __init__(self, kind: str, key: str):
        self.kind, self.key = kind, key
        super().__init__(f"unknown {kind} {key!r}")


class AlreadyExistsError(ServiceError):
    def __init__(self, kind: str, key: str, detail: str = ""):
        self.kind, self.key = kind, key
        super().__init__(detail or f"{kind} {key!r} already exists")


class AuthenticationError(ServiceError):
    def __init__(self, message: str = "missing or invalid robot token"):
        super().__init__(message)


class InvalidRequestError(ServiceError, ValueError):
    """Malformed input the domain has no word for (bad paging, mismatched ids, bad event data)."""


class PermissionDeniedError(ServiceError):
    """Authenticated, but the principal's role does not allow the action (HTTP 403)."""


class CrossSiteRequestError(ServiceError):
    """A state-changing request that a browser sent on another site's behalf (HTTP 403)."""

"""Errors of the object stores (callers need not import a backend's SDK to catch them)."""

from __future__ import annotations

class ObjectStoreError(Exception):
    """The store refused or failed a request."""


class ObjectNotFound(ObjectStoreError, KeyError):
    def __str__(self) -> str:  # KeyError would print the repr of the message
        return str(self.args[0])


class ObjectStoreUnavailable(ObjectStoreError):
    """The store could not be reached (connection refused, timeout): retry later."""

"""Errors raised by the domain model. Adapters translate them (HTTP 4xx, CLI exit codes)."""

from __future__ import annotations


class DomainError(Exception):
    """Base class: a request the domain refuses. Nothing was changed."""


class InvalidIdError(DomainError, ValueError):
    def __init__(self, kind: str, value: object, reason: str):
        self.kind = kind
        self.value = value
        self.reason = reason
        super().__init__(f"invalid {kind} {value!r}: {reason}")


class IllegalTransitionError(DomainError):
    def __init__(self, entity: str, entity_id: str, from_state: str, to_state: str):
        self.entity = entity
        self.entity_id = entity_id
        self.from_state = from_state
        self.to_state = to_state
        super().__init__(f"{entity} {entity_id}: illegal transition {from_state} -> {to_state}")


class PlanningError(DomainError, ValueError):
    """An order or batch definition that cannot be planned into tasks."""

"""Checks of plain request values every use case shares: text, paging, cursors, enums, task statuses.
Each raises :class:`InvalidRequestError` naming the field; nothing is written before they pass."""

from __future__ import annotations

from typing import Any

from axon_dagster.domain import TaskStatus, parse_task_status

from .errors import InvalidRequestError

MAX_PAGE = 10_000
MAX_OFFSET = 2**63 - 1  # offsets and cursors are 64-bit in both stores
MAX_TEXT = 4096  # paths and free text a robot or an admin may send


def text(value: Any, field: str, *, limit: int = MAX_TEXT, required: bool = False) -> str:
    if not isinstance(value, str):
        raise InvalidRequestError(f"{field} must be a string, got {type(value).__name__}")
    if required and not value:
        raise InvalidRequestError(f"{field} must not be empty")
    if len(value) > limit:
        raise InvalidRequestError(f"{field} is longer than {limit} characters")
    if any(ord(ch) < 32 and ch not in "\t\n" for ch in value) or "\x7f" in value:
        raise InvalidRequestError(f"{field} contains control characters")
    return value


def task_status(value: Any, field: str) -> TaskStatus:
    if isinstance(value, TaskStatus):
        return value
    if not isinstance(value, str):
        raise InvalidRequestError(f"{field} must be a task status string, got {value!r}")
    try:
        return parse_task_status(value)
    except ValueError as exc:
        raise InvalidRequestError(f"{field}: {exc}") from None


def enum_value(kind: Any, value: Any, field: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(m.value for m in kind)
        raise InvalidRequestError(f"unknown {field} {value!r}; expected one of {allowed}") from None


def cursor(after: Any) -> int:
    if not isinstance(after, int) or isinstance(after, bool) or not 0 <= after <= MAX_OFFSET:
        raise InvalidRequestError(f"cursor 'after' must be an integer between 0 and {MAX_OFFSET}, got {after!r}")
    return after


def page(limit: Any, offset: Any, max_page: int = MAX_PAGE) -> tuple[int, int]:
    """``limit`` (1..``max_page``) and ``offset`` (64-bit) of a page; the one paging rule of every list."""
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= max_page:
        raise InvalidRequestError(f"limit must be an integer between 1 and {max_page}, got {limit!r}")
    if not isinstance(offset, int) or isinstance(offset, bool) or not 0 <= offset <= MAX_OFFSET:
        raise InvalidRequestError(f"offset must be an integer between 0 and {MAX_OFFSET} (64-bit), got {offset!r}")
    return limit, offset


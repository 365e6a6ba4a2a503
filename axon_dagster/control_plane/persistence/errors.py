"""Errors the store raises in its own words, so callers need not know SQLAlchemy."""

from __future__ import annotations


class DuplicateKeyError(Exception):
    """An insert hit an existing primary or unique key (a concurrent create won the race)."""

"""The one reader of the process environment.

Nothing outside :mod:`axon_dagster.settings` touches ``os.environ`` (``tests/architecture`` fails
on it); modules ask for a typed settings section instead. :class:`Env` is how the sections read:
typed getters whose errors name the variable (``AXON_MAX_UPLOAD_ATTEMPTS must be a whole number
>= 1, got 'many'``). An empty value means unset, everywhere.

Besides reading, this module owns the two other things a process does with its environment:
:func:`child_environ` (the environment a subprocess inherits, plus overrides) and :func:`export`
(variables this process sets for the code it starts or hosts, e.g. the API's worker processes).

Stdlib only: robots import the recorder modules that use it.
"""

from __future__ import annotations

import os
from typing import Callable, Iterable, Mapping, TypeVar

from .base import SettingError

T = TypeVar("T")

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


class Env:
    """A read-only, typed view of an environment (the process's unless ``environ`` is given).

    Every getter treats an empty or all-blank value as unset and returns ``default`` then."""

    def __init__(self, environ: Mapping[str, str] | None = None):
        self._env: Mapping[str, str] = os.environ if environ is None else environ

    def raw(self, name: str) -> str | None:
        """The value exactly as set (not stripped), None when unset or empty."""
        value = self._env.get(name)
        return value if value else None

    def text(self, name: str, default: T = None) -> str | T:  # type: ignore[assignment]
        value = self._env.get(name, "").strip()
        return value if value else default

    def required(self, name: str, why: str) -> str:
        value = self.text(name)
        if value is None:
            raise SettingError(f"{name} is not set: {why}", name=name)
        return value

    def parsed(self, name: str, default: T, parse: Callable[[str], T], expected: str, *, key: str | None = None) -> T:
        """``parse(value)``; a ValueError from it becomes ``NAME must be <expected>, got 'value'``
        (a message of the ValueError's own, when it has one, replaces ``must be <expected>``)."""
        value = self.text(name)
        if value is None:
            return default
        try:
            return parse(value)
        except _OutOfRange as exc:
            raise SettingError(f"{name} must be {exc}, got {value!r}", name=name, key=key) from None
        except ValueError:
            raise SettingError(f"{name} must be {expected}, got {value!r}", name=name, key=key) from None

    def number(self, name: str, default: T, *, minimum: float | None = None, positive: bool = False,
               maximum: float | None = None, expected: str = "a number", key: str | None = None) -> float | T:
        def parse(value: str) -> float:
            number = float(value)
            if number != number or number in (float("inf"), float("-inf")):
                raise ValueError(value)
            if positive and not number > 0:
                raise _OutOfRange("positive")
            if minimum is not None and number < minimum:
                raise _OutOfRange(f"greater than or equal to {minimum:g}")
            if maximum is not None and number > maximum:
                raise _OutOfRange(f"less than or equal to {maximum:g}")
            return number

        return self.parsed(name, default, parse, expected, key=key)

    def integer(self, name: str, default: T, *, minimum: int | None = None, expected: str = "an integer",
                key: str | None = None) -> int | T:
        def parse(value: str) -> int:
            number = int(value)
            if minimum is not None and number < minimum:
                raise _OutOfRange(f"greater than or equal to {minimum}")
            return number

        return self.parsed(name, default, parse, expected, key=key)

    def flag(self, name: str, default: T, *, key: str | None = None) -> bool | T:
        def parse(value: str) -> bool:
            word = value.lower()
            if word in TRUE_WORDS:
                return True
            if word in FALSE_WORDS:
                return False
            raise ValueError(value)

        return self.parsed(name, default, parse, "true or false (1/0, yes/no, on/off)", key=key)

    def choice(self, name: str, default: T, choices: Iterable[str], *, key: str | None = None) -> str | T:
        options = tuple(choices)

        def parse(value: str) -> str:
            if value not in options:
                raise ValueError(value)
            return value

        return self.parsed(name, default, parse, f"one of {', '.join(options)}", key=key)

    def items(self, name: str, separator: str = ",") -> tuple[str, ...]:
        """A separated list; blanks dropped."""
        return tuple(part.strip() for part in self._env.get(name, "").split(separator) if part.strip())


class _OutOfRange(ValueError):
    """A value that parsed but is out of range; its message says the range."""


def child_environ(overrides: Mapping[str, str] | None = None, *, drop: Iterable[str] = (),
                  prepend: Mapping[str, str] | None = None, defaults: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a subprocess gets: this process's, minus ``drop``, with ``defaults`` where
    unset, ``prepend`` put in front of a search path (``PATH``-style, ``os.pathsep``-joined, blanks
    dropped), and ``overrides`` set."""
    dropped = set(drop)
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    for name, value in (defaults or {}).items():
        env.setdefault(name, value)
    for name, first in (prepend or {}).items():
        env[name] = os.pathsep.join(p for p in (first, env.get(name, "")) if p)
    env.update(overrides or {})
    return env


def export(values: Mapping[str, str | None]) -> dict[str, str | None]:
    """Set (or, for None, remove) variables in this process's environment, for what it starts or
    hosts next; returns the previous values, for :func:`export` to restore."""
    previous = {name: os.environ.get(name) for name in values}
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    return previous

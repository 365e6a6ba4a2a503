"""The checks every config file shares: each takes a parsed YAML value and its dotted key and returns
the value, or raises :class:`~.base.ConfigError` naming the key; and reading a YAML file."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from .base import ConfigError

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECRET_KEY = re.compile(r"(token|password|passwd|secret|api_key|apikey|access_key|private_key|credentials?)$", re.I)
_URL_PASSWORD = re.compile(r"://[^/@\s]*:[^/@\s]*@")


def fail(key: str, message: str):
    raise ConfigError(message, key=key)


def text(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        fail(key, f"must be a non-empty string, got {value!r}")
    if any(ord(ch) < 32 for ch in value):
        fail(key, "contains control characters")
    return value


def optional(check: Callable[[Any, str], Any]) -> Callable[[Any, str], Any]:
    return lambda value, key: None if value is None else check(value, key)


def enum(*choices: str) -> Callable[[Any, str], str]:
    def check(value: Any, key: str) -> str:
        if value not in choices:
            fail(key, f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    return check


def url(*schemes: str) -> Callable[[Any, str], str]:
    def check(value: Any, key: str) -> str:
        text(value, key)
        if not value.startswith(tuple(f"{s}://" for s in schemes)) or any(ch.isspace() for ch in value):
            fail(key, f"must be a {' or '.join(s + '://' for s in schemes)} URL, got {value!r}")
        return value

    return check


def number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        fail(key, f"must be a number, got {value!r}")
    return float(value)


def positive(value: Any, key: str) -> float:
    if number(value, key) <= 0:
        fail(key, f"must be positive, got {value!r}")
    return float(value)


def count(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        fail(key, f"must be a whole number >= 1, got {value!r}")
    return value


def boolean(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        fail(key, f"must be true or false, got {value!r}")
    return value


def env_name(value: Any, key: str) -> str:
    if not isinstance(value, str) or not _ENV_NAME.match(value):
        fail(key, f"must be an environment variable name (letters, digits, _), got {value!r}")
    return value


def section(data: Any, key: str, fields: Mapping[str, Callable[[Any, str], Any]]) -> dict[str, Any]:
    """Validate one mapping: unknown keys refused, each present key checked. Returns {field: value}."""
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        fail(key or "<top level>", f"must be a mapping, got {type(data).__name__}")
    out: dict[str, Any] = {}
    for name, value in data.items():
        dotted = f"{key}.{name}" if key else str(name)
        if name not in fields:
            known = [f for f, check in fields.items() if not getattr(check, "retired", False)]
            fail(dotted, f"unknown key; known keys here: {', '.join(known)}")
        out[name] = fields[name](value, dotted)
    return out


def retired(why: str) -> Callable[[Any, str], Any]:
    """A key that was removed: refused by name, saying ``why`` (and where the setting went)."""

    def refuse(value: Any, key: str) -> Any:
        fail(key, f"unknown key (removed): {why}")

    refuse.retired = True  # type: ignore[attr-defined]
    return refuse


def nested(fields: Mapping[str, Callable[[Any, str], Any]]) -> Callable[[Any, str], dict[str, Any]]:
    return lambda value, key: section(value, key, fields)


def refuse_literal_secrets(data: Any, key: str = "") -> None:
    """Refuse a secret-looking key with a literal value, and URLs with a password, anywhere in the tree."""
    if isinstance(data, Mapping):
        for name, value in data.items():
            dotted = f"{key}.{name}" if key else str(name)
            if isinstance(name, str) and value is not None and not name.endswith(("_env", "_file")):
                if _SECRET_KEY.search(name) and not isinstance(value, Mapping):
                    fail(dotted, f"secrets are never read from the YAML; use {name}_env (an environment "
                                  f"variable name) or {name}_file (a path to a file holding it)")
            refuse_literal_secrets(value, dotted)
    elif isinstance(data, list):
        for i, item in enumerate(data):
            refuse_literal_secrets(item, f"{key}[{i}]")
    elif isinstance(data, str) and _URL_PASSWORD.search(data):
        fail(key, f"URL contains a password; secrets are never read from the YAML: use {key.rsplit('.', 1)[-1]}_env "
                   "or _file")


def read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", source=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read file: {exc}", source=path) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", source=path) from None

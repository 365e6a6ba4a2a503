"""What every settings module shares: the two errors and secret references.

Stdlib only: the recorder modules robots run import the package.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping


class ConfigError(ValueError):
    """A config that cannot be used. ``key`` is the dotted path of the bad key (None: the whole file)."""

    def __init__(self, message: str, *, key: str | None = None, source: str | os.PathLike | None = None):
        self.key = key
        self.source = str(source) if source is not None else None
        where = f"config {self.source}: " if self.source else "config: "
        super().__init__(where + (f"{key}: " if key else "") + message)


class SettingError(ConfigError):
    """An environment variable that cannot be used: ``name`` is the variable; ``key`` the config key
    it overrides (or the variable again). The message names the variable and the bad value."""

    def __init__(self, message: str, *, name: str, key: str | None = None):
        ValueError.__init__(self, message)
        self.name = name
        self.key = key or name
        self.source = None


@dataclass(frozen=True)
class SecretRef:
    """Where a secret lives: an environment variable and/or a file. Never the value itself."""

    env: str | None = None
    file: str | None = None
    key: str | None = None  # dotted key of the *_file setting, for error messages

    def resolve(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The secret: the env var if set and non-empty, else the file's content (stripped), else None."""
        env = os.environ if environ is None else environ
        if self.env and env.get(self.env, "").strip():
            return env[self.env].strip()
        if self.file:
            try:
                value = Path(self.file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"cannot read secret file {self.file}: {exc.strerror or exc}", key=self.key) from None
            return value or None
        return None

    def describe(self) -> str:
        parts = ([f"env {self.env}"] if self.env else []) + ([f"file {self.file}"] if self.file else [])
        return " or ".join(parts) or "none"

"""Settings of the ``axon-dagster`` command line itself (the processes it starts read their own):
``AXON_DATABASE_URL`` for ``db upgrade`` / ``api`` / ``datasets``, ``AXON_ADMIN_TOKEN`` to call the
API, ``AXON_LOG_LEVEL``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from .api import DEFAULT_DATABASE_URL
from .environ import Env


@dataclass(frozen=True)
class CliSettings:
    database_url: str = DEFAULT_DATABASE_URL
    admin_token: str | None = field(default=None, repr=False)
    log_level: str = "WARNING"

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> CliSettings:
        env = Env(environ)
        return cls(database_url=env.text("AXON_DATABASE_URL", cls.database_url), admin_token=env.text("AXON_ADMIN_TOKEN"),
                   log_level=env.text("AXON_LOG_LEVEL", cls.log_level))

"""Settings of inspection on Ray (the ``ray`` / ``ray-job`` runners and the ``kuberay`` runner the
axon-cloud chart configures). Read by the code location and by ``axon-dagster inspect``.

The Ray auth token is a secret: ``AXON_RAY_AUTH_TOKEN``, else the file ``AXON_RAY_AUTH_TOKEN_FILE``
names (never a command-line option, so it never shows in a process list).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from .base import SettingError
from .environ import Env

Environ = Mapping[str, str] | None


@dataclass(frozen=True)
class RaySettings:
    address: str | None = None
    auth_token: str | None = field(default=None, repr=False)
    job_python: str | None = None  # None: the runner's default
    timeout_seconds: float | None = None  # None: the runner's default

    @classmethod
    def load(cls, environ: Environ = None) -> RaySettings:
        env = Env(environ)
        token, token_file = env.text("AXON_RAY_AUTH_TOKEN"), env.text("AXON_RAY_AUTH_TOKEN_FILE")
        if token is None and token_file:
            try:
                token = Path(token_file).read_text().strip() or None
            except OSError as exc:
                raise SettingError(f"AXON_RAY_AUTH_TOKEN_FILE {token_file!r} unreadable: {exc}",
                                   name="AXON_RAY_AUTH_TOKEN_FILE") from None
        return cls(
            address=env.text("AXON_RAY_ADDRESS"),
            auth_token=token,
            job_python=env.text("AXON_RAY_JOB_PYTHON"),
            timeout_seconds=env.number("AXON_RAY_TIMEOUT_SECONDS", None, expected="a number of seconds"),
        )


@dataclass(frozen=True)
class KubeRaySettings:
    """What the axon-cloud chart sets for the ``kuberay`` runner (cluster and secret are required)."""

    cluster_name: str
    auth_secret_name: str
    namespace: str | None = None  # None: the pod's own namespace
    image: str | None = None
    timeout_seconds: float = 3600.0
    poll_seconds: float = 5.0

    @classmethod
    def load(cls, environ: Environ = None) -> KubeRaySettings:
        env = Env(environ)
        why = "the KubeRay runner needs it (the axon-cloud chart sets it)"
        return cls(
            cluster_name=env.required("AXON_KUBERAY_CLUSTER", why),
            auth_secret_name=env.required("AXON_KUBERAY_AUTH_SECRET_NAME", why),
            namespace=env.text("AXON_KUBERAY_NAMESPACE"),
            image=env.text("AXON_KUBERAY_IMAGE"),
            timeout_seconds=env.number("AXON_KUBERAY_TIMEOUT_SECONDS", cls.timeout_seconds, expected="a number of seconds"),
            poll_seconds=env.number("AXON_KUBERAY_POLL_SECONDS", cls.poll_seconds, expected="a number of seconds"),
        )

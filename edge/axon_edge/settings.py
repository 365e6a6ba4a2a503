"""The edge agent's settings: the only place the agent reads its environment.

``axon-edge run`` takes every option from the command line or, by default, from the environment
variable named here (a k3s pod only sets env). The robot-side data path adds:

- ``AXON_EDGE_CACHE_DIR``: the robot's edge cache (default ``<data dir>/cache``); put it on the
  recorder's disk so recordings move in without a copy;
- ``AXON_EDGE_CACHE_MAX_GB`` (no quota by default) and ``AXON_EDGE_CACHE_POLICY`` (``lru`` |
  ``fifo`` | ``manual``): eviction never drops a recording whose task is not UPLOADED (or rejected);
- ``AXON_EDGE_CACHE_RETENTION_DAYS``: published or rejected recordings older than this leave the
  cache whatever the quota (none by default: only eviction over quota removes them);
- ``AXON_EDGE_CACHE_UPKEEP_SECONDS`` (default 3600): how often retention and eviction run (and
  after every release the cloud allows);
- ``AXON_EDGE_CACHE_REPORT_SECONDS`` (default 30) and ``AXON_EDGE_CACHE_REPORT_HEARTBEAT_SECONDS``
  (default 300): the cache's usage goes to the control plane when it changed, at most once per the
  first, and at least once per the second (``PUT /api/v1/edge/cache-usage``);
- ``AXON_EDGE_UPLOAD_MAX_MBPS``: the uploader's cap in megabits/s (none by default);
- ``AXON_EDGE_UPLOAD_WINDOWS``: ``HH:MM-HH:MM[,HH:MM-HH:MM...]`` (UTC) when the site allows uploads,
  reported to the control plane (its bandwidth sensor grants only inside them; none = any time);
- ``AXON_EDGE_UPLOAD_CONCURRENCY``: parts in flight at once (default 4);
- ``AXON_EDGE_GATE_REJECTED``: ``keep`` (default: marked rejected, evictable) or ``delete`` a
  recording the edge gate rejects.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# option -> (environment variable, required)
REQUIRED_ENV = {
    "robot_id": ("AXON_ROBOT_ID", True),
    "control_plane_url": ("AXON_CONTROL_PLANE_URL", True),
    "token": ("AXON_ROBOT_TOKEN", True),
    "data_dir": ("AXON_EDGE_DATA_DIR", True),
    "recorder_url": ("AXON_RECORDER_URL", False),  # required with --recorder-transport http
    "port": ("AXON_EDGE_PORT", False),
}

CACHE_POLICIES = ("lru", "fifo", "manual")
GATE_REJECTED = ("keep", "delete")
_WINDOW = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]|24):([0-5]\d)$")


def environment() -> Mapping[str, str]:
    """The process environment (read here and nowhere else in the agent)."""
    return os.environ


@dataclass(frozen=True)
class UploadWindow:
    start: str  # "HH:MM"
    end: str

    def wire(self) -> dict[str, str]:
        return {"start": self.start, "end": self.end}


@dataclass(frozen=True)
class DataPathSettings:
    """The robot's side of the bytes' path: edge cache, gate policy, uploader."""

    cache_dir: Path | None = None  # None: <data dir>/cache
    cache_max_gb: float | None = None
    cache_policy: str = "lru"
    gate_rejected: str = "keep"
    upload_max_mbps: float | None = None
    upload_windows: tuple[UploadWindow, ...] = ()
    upload_concurrency: int = 4
    cache_retention_days: float | None = None
    cache_upkeep_seconds: float = 3600.0
    cache_report_seconds: float = 30.0
    cache_report_heartbeat_seconds: float = 300.0

    def __post_init__(self) -> None:
        if self.cache_policy not in CACHE_POLICIES:
            raise ValueError(f"AXON_EDGE_CACHE_POLICY must be one of {', '.join(CACHE_POLICIES)}, got {self.cache_policy!r}")
        if self.gate_rejected not in GATE_REJECTED:
            raise ValueError(f"AXON_EDGE_GATE_REJECTED must be one of {', '.join(GATE_REJECTED)}, got {self.gate_rejected!r}")
        if self.cache_max_gb is not None and not (math.isfinite(self.cache_max_gb) and self.cache_max_gb >= 0):
            raise ValueError(f"AXON_EDGE_CACHE_MAX_GB must be a non-negative number, got {self.cache_max_gb!r}")
        if self.upload_max_mbps is not None and not (math.isfinite(self.upload_max_mbps) and self.upload_max_mbps > 0):
            raise ValueError(f"AXON_EDGE_UPLOAD_MAX_MBPS must be a positive number of megabits/s, got {self.upload_max_mbps!r}")
        if self.cache_retention_days is not None and not (math.isfinite(self.cache_retention_days) and self.cache_retention_days > 0):
            raise ValueError(f"AXON_EDGE_CACHE_RETENTION_DAYS must be a positive number of days, got {self.cache_retention_days!r}")
        for var, seconds in (("AXON_EDGE_CACHE_UPKEEP_SECONDS", self.cache_upkeep_seconds),
                             ("AXON_EDGE_CACHE_REPORT_SECONDS", self.cache_report_seconds),
                             ("AXON_EDGE_CACHE_REPORT_HEARTBEAT_SECONDS", self.cache_report_heartbeat_seconds)):
            if not (math.isfinite(seconds) and seconds > 0):
                raise ValueError(f"{var} must be a positive number of seconds, got {seconds!r}")
        if self.cache_report_heartbeat_seconds < self.cache_report_seconds:
            raise ValueError("AXON_EDGE_CACHE_REPORT_HEARTBEAT_SECONDS must not be shorter than AXON_EDGE_CACHE_REPORT_SECONDS, got "
                             f"{self.cache_report_heartbeat_seconds!r} < {self.cache_report_seconds!r}")
        if not 1 <= self.upload_concurrency <= 64:
            raise ValueError(f"AXON_EDGE_UPLOAD_CONCURRENCY must be between 1 and 64, got {self.upload_concurrency!r}")

    @property
    def upload_max_bytes_per_second(self) -> int | None:
        return None if self.upload_max_mbps is None else int(self.upload_max_mbps * 1e6 / 8)

    def cache_root(self, data_dir: str | os.PathLike) -> Path:
        return self.cache_dir if self.cache_dir is not None else Path(data_dir) / "cache"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "DataPathSettings":
        """Read and validate; a bad value is a ValueError naming the variable."""
        env = environment() if env is None else env

        def number(var: str, kind: type = float):
            raw = (env.get(var) or "").strip()
            if not raw:
                return None
            try:
                return kind(raw)
            except ValueError:
                raise ValueError(f"{var} must be a number, got {raw!r}") from None

        concurrency = number("AXON_EDGE_UPLOAD_CONCURRENCY", int)
        seconds = {field: number(var) for field, var in (
            ("cache_upkeep_seconds", "AXON_EDGE_CACHE_UPKEEP_SECONDS"), ("cache_report_seconds", "AXON_EDGE_CACHE_REPORT_SECONDS"),
            ("cache_report_heartbeat_seconds", "AXON_EDGE_CACHE_REPORT_HEARTBEAT_SECONDS"))}
        return cls(
            cache_dir=Path(env["AXON_EDGE_CACHE_DIR"]) if env.get("AXON_EDGE_CACHE_DIR") else None,
            cache_max_gb=number("AXON_EDGE_CACHE_MAX_GB"),
            cache_policy=(env.get("AXON_EDGE_CACHE_POLICY") or "lru").strip(),
            gate_rejected=(env.get("AXON_EDGE_GATE_REJECTED") or "keep").strip(),
            upload_max_mbps=number("AXON_EDGE_UPLOAD_MAX_MBPS"),
            upload_windows=parse_windows(env.get("AXON_EDGE_UPLOAD_WINDOWS") or ""),
            upload_concurrency=4 if concurrency is None else concurrency,
            cache_retention_days=number("AXON_EDGE_CACHE_RETENTION_DAYS"),
            **{field: value for field, value in seconds.items() if value is not None},
        )


def parse_windows(text: str) -> tuple[UploadWindow, ...]:
    """``"22:00-06:00,12:00-13:00"`` -> windows (UTC; an end before the start wraps midnight)."""
    windows = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        m = _WINDOW.match(item.replace(" ", ""))
        if not m or (m[1], m[2]) == (m[3], m[4]):
            raise ValueError(f"AXON_EDGE_UPLOAD_WINDOWS: bad window {item!r}; expected HH:MM-HH:MM, e.g. 22:00-06:00")
        windows.append(UploadWindow(f"{m[1]}:{m[2]}", f"{m[3]}:{m[4]}"))
    return tuple(windows)

"""Bandwidth for uploads: a shared rate limiter (a token bucket) with a time-window schedule, a probe of the link,
and a priority queue that admits uploads in order when the link is scarce.

- :class:`BandwidthSchedule` maps local-time windows to a cap in bytes/s (``None`` = no cap), e.g.
  ``{"22:00-06:00": None, "06:00-22:00": 5_000_000}``: full speed at night, 5 MB/s by day.
- :class:`RateLimiter` enforces the current cap for *every* upload of the process together: the
  uploader draws tokens for each block just before it goes on the wire (see ``uploader.py``).
- :class:`UploadQueue` orders uploads by (order priority desc, age asc) and, while the link is
  capped, lets only ``max_active_when_capped`` of them run at once, so the most urgent dataset
  gets the scarce bandwidth instead of every dataset getting a sliver.
- :class:`ThroughputLog` keeps recent measured upload throughput in a small JSON file, and
  :func:`probe_bandwidth` turns it (or a configured command, as in the reference design) into a
  Mbps figure for the ``bandwidth`` sensor.

Import-light: no boto3 here (robots import the storage package).
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import math
import os
import re
import shlex
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from . import metrics

log = logging.getLogger(__name__)

Rate = int | None  # bytes per second; None = uncapped
_WINDOW = re.compile(r"^\s*([01]\d|2[0-3]):([0-5]\d)\s*-\s*([01]\d|2[0-3]|24):([0-5]\d)\s*$")
MINUTES_PER_DAY = 24 * 60


class BandwidthConfigError(ValueError):
    """A bandwidth schedule, cap or probe setting that makes no sense. Nothing was changed."""


def _validate_rate(rate: object, what: str) -> Rate:
    if rate is None:
        return None
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) or rate <= 0:
        raise BandwidthConfigError(f"{what}: a cap must be a positive number of bytes/s or null (uncapped), got {rate!r}")
    return int(rate)


@dataclass(frozen=True)
class _Window:
    start: int  # minutes after midnight, inclusive
    end: int  # exclusive; may be <= start for a window that wraps midnight
    rate: Rate
    label: str

    def minutes(self) -> set[int]:
        if self.start < self.end:
            return set(range(self.start, self.end))
        return set(range(self.start, MINUTES_PER_DAY)) | set(range(0, self.end))


class BandwidthSchedule:
    """Caps by local time of day. Windows are ``"HH:MM-HH:MM"`` (end exclusive, may wrap midnight,
    ``24:00`` allowed as an end); they must not overlap. Outside every window ``default`` applies."""

    def __init__(self, windows: Mapping[str, object] | None = None, default: object = None):
        self.default: Rate = _validate_rate(default, "default")
        parsed: list[_Window] = []
        if windows is not None and not isinstance(windows, Mapping):
            raise BandwidthConfigError(f"a bandwidth schedule must map 'HH:MM-HH:MM' to a cap, got {type(windows).__name__}")
        for label, rate in (windows or {}).items():
            m = _WINDOW.match(str(label))
            if not m:
                raise BandwidthConfigError(f"bad schedule window {label!r}: expected 'HH:MM-HH:MM', e.g. '22:00-06:00'")
            start = int(m[1]) * 60 + int(m[2])
            end = int(m[3]) * 60 + int(m[4])
            if end > MINUTES_PER_DAY:
                raise BandwidthConfigError(f"bad schedule window {label!r}: ends after 24:00")
            if start == end:
                raise BandwidthConfigError(f"bad schedule window {label!r}: empty (start equals end)")
            parsed.append(_Window(start, end % MINUTES_PER_DAY if end == MINUTES_PER_DAY else end, _validate_rate(rate, f"window {label}"), str(label)))
        for a, b in itertools.combinations(parsed, 2):
            if a.minutes() & b.minutes():
                raise BandwidthConfigError(f"schedule windows {a.label!r} and {b.label!r} overlap")
        self.windows = tuple(parsed)

    @classmethod
    def parse(cls, value: object) -> "BandwidthSchedule":
        """A schedule from config: ``None``/``""`` (uncapped), a number (constant cap), a mapping of
        windows, or that as JSON text (``AXON_UPLOAD_BANDWIDTH``)."""
        if isinstance(value, BandwidthSchedule):
            return value
        if value is None or (isinstance(value, str) and not value.strip()):
            return cls()
        if isinstance(value, str):
            text = value.strip()
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                raise BandwidthConfigError(f"bandwidth setting {text!r} is neither a number nor a JSON schedule: {exc}") from None
        if isinstance(value, Mapping):
            return cls(value)
        return cls(default=value)

    def rate_at(self, when: datetime) -> Rate:
        minute = when.hour * 60 + when.minute
        for w in self.windows:
            if minute in w.minutes():
                return w.rate
        return self.default

    def current_rate(self) -> Rate:
        return self.rate_at(datetime.now())

    def __repr__(self) -> str:
        return f"BandwidthSchedule({ {w.label: w.rate for w in self.windows} }, default={self.default})"


class RateLimiter:
    """A cap in bytes/s shared by every thread that calls :meth:`acquire`.

    Tokens may go into debt: a caller takes what it needs at once and then sleeps until the debt
    is paid, so concurrent callers together never exceed ``burst + rate * t`` bytes in any span ``t``.
    The rate comes from a schedule and is re-read on every call, so a window boundary takes effect
    within one block. ``burst_seconds`` bounds the burst (smaller = smoother, more wake-ups)."""

    def __init__(
        self,
        schedule: BandwidthSchedule | object = None,
        *,
        burst_seconds: float = 0.05,
        min_burst_bytes: int = 64 * 1024,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] = datetime.now,
    ):
        if not isinstance(burst_seconds, (int, float)) or burst_seconds <= 0:
            raise BandwidthConfigError(f"burst_seconds must be positive, got {burst_seconds!r}")
        self.schedule = BandwidthSchedule.parse(schedule)
        self.burst_seconds = float(burst_seconds)
        self.min_burst_bytes = int(min_burst_bytes)
        self._clock, self._sleep, self._now = clock, sleep, now
        self._lock = threading.Lock()
        self._tokens = 0.0
        self._last = clock()
        self._rate: Rate = None
        self._rate_checked = -math.inf

    def set_schedule(self, schedule: BandwidthSchedule | object) -> None:
        parsed = BandwidthSchedule.parse(schedule)
        with self._lock:
            self.schedule = parsed
            self._rate_checked = -math.inf

    def capped(self) -> bool:
        """Is a cap in force? Lock-free and cheap (called per block on the upload hot path)."""
        if self._clock() - self._rate_checked >= 1.0:
            return self.rate() is not None
        return self._rate is not None

    def rate(self) -> Rate:
        """The cap in force now (re-read from the schedule at most once a second)."""
        with self._lock:
            return self._current_rate(self._clock())

    def _current_rate(self, t: float) -> Rate:
        if t - self._rate_checked >= 1.0:
            new = self.schedule.rate_at(self._now())
            if new != self._rate:
                if new is not None:
                    log.info("upload bandwidth cap now %.2f MB/s", new / 1e6)
                else:
                    log.info("upload bandwidth now uncapped")
                self._tokens = 0.0 if new is None else min(self._tokens, self._burst(new))
                self._last = t
                self._rate = new
            self._rate_checked = t
        return self._rate

    def _burst(self, rate: int) -> float:
        return max(rate * self.burst_seconds, float(self.min_burst_bytes))

    def acquire(self, n: int) -> float:
        """Take ``n`` bytes' worth of tokens, sleeping as long as the cap requires. Returns the time
        slept."""
        if n <= 0:
            return 0.0
        with self._lock:
            t = self._clock()
            rate = self._current_rate(t)
            if rate is None:
                return 0.0
            self._tokens = min(self._burst(rate), self._tokens + (t - self._last) * rate)
            self._last = t
            self._tokens -= n
            wait = -self._tokens / rate if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
        return wait


# --------------------------------------------------------------------------- priority queue


class UploadQueue:
    """Admits uploads in priority order (higher order priority first, then older first).

    While the link is capped (``is_scarce()``), at most ``max_active_when_capped`` uploads run at
    once; otherwise ``max_active``. Re-entrant per thread, so a dataset upload that holds a slot
    can upload its files without queueing behind itself."""

    def __init__(
        self,
        *,
        max_active: int = 4,
        max_active_when_capped: int = 1,
        is_scarce: Callable[[], bool] = lambda: False,
    ):
        for name, value in (("max_active", max_active), ("max_active_when_capped", max_active_when_capped)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise BandwidthConfigError(f"{name} must be a positive integer, got {value!r}")
        self.max_active = max_active
        self.max_active_when_capped = max_active_when_capped
        self.is_scarce = is_scarce
        self._cond = threading.Condition()
        self._waiting: list[tuple[int, float, int, str]] = []
        self._active: dict[int, str] = {}
        self._seq = itertools.count()
        self._held = threading.local()

    def _limit(self) -> int:
        return self.max_active_when_capped if self.is_scarce() else self.max_active

    @property
    def waiting(self) -> int:
        with self._cond:
            return len(self._waiting)

    def active(self) -> list[str]:
        with self._cond:
            return list(self._active.values())

    @contextmanager
    def slot(self, priority: int = 0, created_at: float | None = None, label: str = "") -> Iterator[None]:
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise BandwidthConfigError(f"upload priority must be an integer, got {priority!r}")
        depth = getattr(self._held, "depth", 0)
        if depth:
            self._held.depth = depth + 1
            try:
                yield
            finally:
                self._held.depth -= 1
            return
        entry = (-priority, time.time() if created_at is None else float(created_at), next(self._seq), label)
        with self._cond:
            heapq.heappush(self._waiting, entry)
            metrics.UPLOAD_QUEUE_LENGTH.set(len(self._waiting))
            try:
                while not (self._waiting[0] is entry and len(self._active) < self._limit()):
                    # Re-check periodically: the schedule may lift the cap while nobody finishes.
                    self._cond.wait(timeout=1.0)
            except BaseException:
                self._waiting.remove(entry)
                heapq.heapify(self._waiting)
                metrics.UPLOAD_QUEUE_LENGTH.set(len(self._waiting))
                self._cond.notify_all()
                raise
            heapq.heappop(self._waiting)
            self._active[entry[2]] = label
            metrics.UPLOAD_QUEUE_LENGTH.set(len(self._waiting))
            self._cond.notify_all()
        if len(self._waiting):
            log.info("upload %s admitted (priority %d); %d waiting", label, priority, len(self._waiting))
        self._held.depth = 1
        try:
            yield
        finally:
            self._held.depth = 0
            with self._cond:
                self._active.pop(entry[2], None)
                self._cond.notify_all()


# --------------------------------------------------------------------------- throughput and probe


class ThroughputLog:
    """Recent measured upload throughput, kept in a small JSON file so another process (the
    Dagster sensor) can read it. Each sample is one request: bytes sent and the seconds spent
    sending them, *excluding* time spent waiting for our own cap — so it measures the link, not
    the cap."""

    MAX_SAMPLES = 200

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock = threading.Lock()

    def record(self, n_bytes: int, seconds: float, at: float | None = None) -> None:
        if n_bytes <= 0 or seconds <= 0:
            return
        with self._lock:
            samples = self._read()
            samples.append([time.time() if at is None else at, int(n_bytes), float(seconds)])
            samples = samples[-self.MAX_SAMPLES:]
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
            tmp.write_text(json.dumps({"samples": samples}))
            os.replace(tmp, self.path)

    def _read(self) -> list[list[float]]:
        try:
            data = json.loads(self.path.read_text())
            return [s for s in data.get("samples", []) if isinstance(s, list) and len(s) == 3]
        except FileNotFoundError:
            return []
        except (ValueError, AttributeError):
            log.warning("throughput log %s is unreadable; starting a new one", self.path)
            return []

    def recent_bytes_per_second(self, window_seconds: float = 600.0, now: float | None = None) -> float | None:
        """Bytes/s over the samples of the last ``window_seconds``; None without samples."""
        now = time.time() if now is None else now
        with self._lock:
            recent = [s for s in self._read() if now - s[0] <= window_seconds]
        total_bytes = sum(s[1] for s in recent)
        total_seconds = sum(s[2] for s in recent)
        return total_bytes / total_seconds if recent and total_seconds > 0 else None


class ProbeError(RuntimeError):
    """The bandwidth probe could not produce a figure (command failed, unparsable output, no data)."""


@dataclass(frozen=True)
class ProbeResult:
    upload_mbps: float  # megabits per second, as in the reference design
    source: str  # "command" or "measured"
    detail: str


def parse_probe_output(stdout: str) -> float:
    """A probe command prints Mbps: a bare number, or JSON ``{"upload_mbps": x}``."""
    text = stdout.strip()
    if not text:
        raise ProbeError("bandwidth probe printed nothing (expected Mbps, or JSON with upload_mbps)")
    try:
        value: Any = json.loads(text)
    except json.JSONDecodeError:
        raise ProbeError(f"bandwidth probe output {text[:80]!r} is not a number or JSON") from None
    if isinstance(value, dict):
        if "upload_mbps" not in value:
            raise ProbeError(f"bandwidth probe JSON has no 'upload_mbps': {text[:80]!r}")
        value = value["upload_mbps"]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ProbeError(f"bandwidth probe reported {value!r}; expected a non-negative number of Mbps")
    return float(value)


def probe_bandwidth(
    *,
    command: str | list[str] | None = None,
    throughput_log: str | os.PathLike | None = None,
    window_seconds: float = 600.0,
    timeout_seconds: float = 10.0,
) -> ProbeResult:
    """Upload bandwidth in Mbps: from ``command`` when configured (stdout = Mbps), else from the
    throughput the uploader measured over the last ``window_seconds``. Raises ProbeError when
    neither gives a figure."""
    if command:
        argv = shlex.split(command) if isinstance(command, str) else list(command)
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_seconds)
        except FileNotFoundError:
            raise ProbeError(f"bandwidth probe command not found: {argv[0]!r}") from None
        except subprocess.TimeoutExpired:
            raise ProbeError(f"bandwidth probe {argv[0]!r} did not answer within {timeout_seconds}s") from None
        if out.returncode != 0:
            raise ProbeError(f"bandwidth probe {argv[0]!r} exited {out.returncode}: {out.stderr.strip()[:200]}")
        mbps = parse_probe_output(out.stdout)
        return ProbeResult(mbps, "command", f"{argv[0]} reported {mbps:.2f} Mbps")
    if throughput_log:
        rate = ThroughputLog(throughput_log).recent_bytes_per_second(window_seconds)
        if rate is None:
            raise ProbeError(f"no upload measured in the last {window_seconds:.0f}s (throughput log {throughput_log})")
        mbps = rate * 8 / 1e6
        return ProbeResult(mbps, "measured", f"measured {rate / 1e6:.2f} MB/s over the last {window_seconds:.0f}s")
    raise ProbeError("no bandwidth probe configured: set a probe command or a throughput log")


# --------------------------------------------------------------------------- process-wide defaults

_shared_lock = threading.Lock()
_shared_rate_limiter: RateLimiter | None = None
_shared_queue: UploadQueue | None = None


def shared_rate_limiter() -> RateLimiter:
    """The process's one rate limiter; its schedule comes from ``AXON_UPLOAD_BANDWIDTH`` (bytes/s,
    or a JSON schedule) and can be changed with ``shared_rate_limiter().set_schedule(...)``."""
    global _shared_rate_limiter
    with _shared_lock:
        if _shared_rate_limiter is None:
            from axon_dagster.settings.storage import UploaderSettings  # stdlib only

            _shared_rate_limiter = RateLimiter(UploaderSettings.load().bandwidth)
        return _shared_rate_limiter


def shared_queue() -> UploadQueue:
    global _shared_queue
    with _shared_lock:
        if _shared_queue is None:
            _shared_queue = UploadQueue(is_scarce=lambda: shared_rate_limiter().rate() is not None)
        return _shared_queue

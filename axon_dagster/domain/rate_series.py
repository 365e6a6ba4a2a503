"""A recording's per-topic message rate over time, as stored with its inspection report.

The data flow computes it once, where the recording is (``axon_dagster.inspection.rate_series``),
and the control plane keeps it in the dataset's ``inspection_report`` under ``rate_series``; the
review page draws its plot from that record alone (robots and the cloud share no disk, and the
API shares none with the data flow's runs either).

Stored shape (JSON)::

    {"bucket_seconds": 1.0, "start_ns": 1767000000000000000,
     "rates_hz": {"/imu": [200.0, 199.0, 0.0, ...], ...}}

Bound: at most ``MAX_BUCKETS`` (600: the plot is 640 px wide) values per topic — a longer
recording gets wider buckets, never more of them — and each rate has ``RATE_DIGITS`` significant
digits, so a topic costs at most ~4 KB of JSON (600 values of up to 6 characters).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

MAX_BUCKETS = 600  # values per topic, stored and drawn
RATE_DIGITS = 3  # significant digits of a stored rate (a plot reads no finer)
MAX_TOPICS = 256  # a stored series naming more topics is refused as malformed


class MalformedRateSeries(ValueError):
    """A stored rate series that does not have the documented shape."""


def rounded_rate(value: float) -> float:
    return float(f"{value:.{RATE_DIGITS}g}")


@dataclass(frozen=True)
class RateSeries:
    bucket_seconds: float
    start_ns: int
    rates_hz: dict[str, list[float]] = field(default_factory=dict)  # topic -> messages/s per bucket

    @property
    def buckets(self) -> int:
        return len(next(iter(self.rates_hz.values()), []))

    def to_dict(self) -> dict[str, Any]:
        return {"bucket_seconds": self.bucket_seconds, "start_ns": self.start_ns,
                "rates_hz": {t: list(v) for t, v in self.rates_hz.items()}}

    @classmethod
    def from_dict(cls, data: Any) -> "RateSeries":
        """The stored series, checked: raises MalformedRateSeries naming what is wrong."""
        if not isinstance(data, Mapping):
            raise MalformedRateSeries(f"expected an object, got {type(data).__name__}")
        unknown = sorted(set(data) - {"bucket_seconds", "start_ns", "rates_hz"})
        if unknown:
            raise MalformedRateSeries(f"unknown field(s): {', '.join(map(str, unknown))}")
        width, start, rates = data.get("bucket_seconds"), data.get("start_ns"), data.get("rates_hz")
        if not _number(width) or not width > 0:
            raise MalformedRateSeries(f"bucket_seconds must be a positive number, got {width!r}")
        if isinstance(start, bool) or not isinstance(start, int) or start < 0:
            raise MalformedRateSeries(f"start_ns must be a non-negative integer, got {start!r}")
        if not isinstance(rates, Mapping):
            raise MalformedRateSeries("rates_hz must be an object of topic -> list of rates")
        if len(rates) > MAX_TOPICS:
            raise MalformedRateSeries(f"{len(rates)} topics, more than {MAX_TOPICS}")
        lengths = set()
        for topic, values in rates.items():
            if not isinstance(topic, str) or not topic:
                raise MalformedRateSeries(f"topic names must be non-empty strings, got {topic!r}")
            if not isinstance(values, list) or not all(_number(v) and v >= 0 for v in values):
                raise MalformedRateSeries(f"rates of {topic} must be a list of non-negative numbers")
            lengths.add(len(values))
        if len(lengths) > 1 or (lengths and not 0 < next(iter(lengths)) <= MAX_BUCKETS):
            raise MalformedRateSeries(f"every topic needs the same number of buckets, 1 to {MAX_BUCKETS}; got {sorted(lengths)}")
        return cls(float(width), start, {t: [float(v) for v in rates[t]] for t in sorted(rates)})


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

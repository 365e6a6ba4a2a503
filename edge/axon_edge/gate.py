"""The edge gate: a cheap check of a finished recording against its order's requirements, from
the recording's own summary (Axon's sidecar, or the MCAP's ``axon.*`` records; a Lance-era
sidecar) — no message is read. A recording it rejects never uses the uplink.

Checks (each in ``checks`` with what was measured and what was required):

- ``required_topics``: every topic of the order's ``required_topics`` has at least one message (the
  task's ``topics`` say what to record, not what must be there: a short recording may end before a
  slow topic's first message, and the cloud's QC judges coverage);
- ``messages``: the recording holds messages at all;
- ``duration``: within ``min_duration_seconds`` .. ``max_duration_seconds``;
- ``rates``: each topic of ``expected_rates_hz`` has at least ``(1 - rate_tolerance)`` of the
  messages its rate promises over the recording's duration, less one (a short recording may end
  between two messages). Inspection in the cloud judges timing in detail; the gate only stops
  recordings that are plainly not what was ordered.

The result is the EXECUTED event's ``gate`` (CONTRACT-13): ``{"passed", "reasons", "checks"}``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from axon_dagster.domain import PlanningError, Requirements


@dataclass(frozen=True)
class RecordingSummary:
    """What the gate needs to know of a recording."""

    duration_seconds: float
    topic_counts: Mapping[str, int]

    @classmethod
    def of_axon(cls, sidecar: Any) -> "RecordingSummary":
        """From an ``AxonSidecar`` (the JSON sidecar, or the MCAP's metadata records)."""
        return cls(float(sidecar.recording.duration_sec or 0.0), dict(sidecar.topic_counts()))

    @classmethod
    def of_lance(cls, sidecar: Any) -> "RecordingSummary":
        """From a Lance-era ``Sidecar``: the data's time span."""
        return cls(max(0.0, (sidecar.end_ns - sidecar.start_ns) / 1e9), {t: s.count for t, s in sidecar.topics.items()})


def edge_gate(summary: RecordingSummary, requirements: Mapping[str, Any] | None) -> dict[str, Any]:
    try:
        req = Requirements.from_dict(requirements or {})
    except PlanningError as exc:
        # The control plane validated these when the order was made; a robot that cannot read
        # them must not guess: the recording goes up and inspection judges it.
        return {"passed": True, "reasons": [], "checks": {"requirements": {"passed": True, "skipped": str(exc)}}}
    checks: dict[str, dict[str, Any]] = {}
    reasons: list[str] = []

    def check(name: str, passed: bool, reason: str, **facts: Any) -> None:
        checks[name] = {"passed": passed, **facts}
        if not passed:
            reasons.append(reason)

    counts = {t: int(n) for t, n in summary.topic_counts.items()}
    required = list(req.required_topics)
    missing = sorted(t for t in required if counts.get(t, 0) <= 0)
    check("required_topics", not missing, f"required topic(s) without messages: {', '.join(missing)}",
          required=sorted(required), missing=missing)
    total = sum(counts.values())
    check("messages", total > 0, "the recording holds no messages", count=total)
    duration = summary.duration_seconds
    too_short = duration < req.min_duration_seconds
    too_long = req.max_duration_seconds is not None and duration > req.max_duration_seconds
    check(
        "duration", not (too_short or too_long),
        f"duration {duration:.2f}s outside {req.min_duration_seconds:g}s .. "
        + (f"{req.max_duration_seconds:g}s" if req.max_duration_seconds is not None else "unbounded"),
        seconds=round(duration, 3), min_seconds=req.min_duration_seconds, max_seconds=req.max_duration_seconds,
    )
    slow: dict[str, dict[str, float]] = {}
    for topic, rate in sorted(req.expected_rates_hz.items()):
        floor = max(0, math.floor(rate * (1 - req.rate_tolerance) * duration) - 1)
        if counts.get(topic, 0) < floor:
            slow[topic] = {"count": counts.get(topic, 0), "min_count": floor, "expected_hz": rate}
    check("rates", not slow, "topic(s) below their expected rate: " + ", ".join(
        f"{t} {v['count']} < {v['min_count']} messages" for t, v in slow.items()), below=slow)
    return {"passed": not reasons, "reasons": reasons, "checks": checks}

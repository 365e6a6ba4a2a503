"""The QC checks, as pure functions over a recording's per-topic profile.

Daft computes the profile (one small aggregate row per topic, see :mod:`.daft_profile`); the
verdicts here need no I/O, so they are the same whichever runner (native, Ray, KubeRay) computed
the profile.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from axon_dagster.domain import PlanningError, QcOutcome, Requirements

from .report import CheckResult, TopicStats

ROWS_PRESENT = "rows_present"
REQUIRED_TOPICS = "required_topics"
TOPIC_RATES = "topic_rates"
MAX_GAP = "max_gap"
MONOTONIC_TIMESTAMPS = "monotonic_timestamps"
DURATION = "duration"

# Share of the score. Missing data matters most; a slightly short recording least.
CHECK_WEIGHTS: Mapping[str, float] = {
    ROWS_PRESENT: 1.0,
    REQUIRED_TOPICS: 3.0,
    TOPIC_RATES: 2.0,
    MAX_GAP: 2.0,
    MONOTONIC_TIMESTAMPS: 2.0,
    DURATION: 1.0,
}
# A recording failing one of these is rejected whatever its score: nothing else can make up for it.
CRITICAL_CHECKS = frozenset({ROWS_PRESENT, REQUIRED_TOPICS})


@dataclass(frozen=True)
class TopicProfile:
    """What the Daft pipeline measures for one topic."""

    count: int
    first_ns: int
    last_ns: int
    max_step_ns: int  # largest log-time step between consecutive messages in sequence order
    backward_steps: int
    lost_messages: int


def checked_requirements(requirements: Requirements | Mapping[str, Any]) -> Requirements:
    """Validate requirements (a dataclass built directly skips ``from_dict``'s checks)."""
    if isinstance(requirements, Requirements):
        return Requirements.from_dict(requirements.to_dict())
    if isinstance(requirements, Mapping):
        return Requirements.from_dict(requirements)
    raise PlanningError(f"requirements must be Requirements or a mapping, got {type(requirements).__name__}")


def recording_duration_s(profile: Mapping[str, TopicProfile]) -> float:
    """Span of the recording. Messages at t0..tN stand for [t0, tN + one period): add the mean
    period of the fastest topic so a clean 5 s recording measures 5 s, not 4.995 s."""
    if not profile:
        return 0.0
    span_ns = max(p.last_ns for p in profile.values()) - min(p.first_ns for p in profile.values())
    periods = [(p.last_ns - p.first_ns) / (p.count - 1) for p in profile.values() if p.count > 1 and p.last_ns > p.first_ns]
    return (span_ns + (min(periods) if periods else 0.0)) / 1e9


def topic_stats(profile: Mapping[str, TopicProfile], duration_s: float) -> dict[str, TopicStats]:
    return {
        topic: TopicStats(
            count=p.count,
            rate_hz=round(p.count / duration_s, 4) if duration_s > 0 else 0.0,
            max_gap_s=round(p.max_step_ns / 1e9, 6),
            first_ns=p.first_ns,
            last_ns=p.last_ns,
            backward_steps=p.backward_steps,
            lost_messages=p.lost_messages,
        )
        for topic, p in sorted(profile.items())
    }


def run_checks(
    profile: Mapping[str, TopicProfile], requirements: Requirements
) -> tuple[list[CheckResult], dict[str, TopicStats], float]:
    """All checks of inspection v0 → (check results, per-topic stats, duration in seconds)."""
    duration_s = recording_duration_s(profile)
    stats = topic_stats(profile, duration_s)
    row_count = sum(p.count for p in profile.values())
    checks = [_rows_present(row_count), _required_topics(stats, requirements)]
    if row_count == 0:
        # Nothing else can be measured; say so instead of passing checks vacuously.
        checks += [
            CheckResult(name, False, None, None, CHECK_WEIGHTS[name], "no rows to measure")
            for name in (TOPIC_RATES, MAX_GAP, MONOTONIC_TIMESTAMPS, DURATION)
        ]
    else:
        checks += [
            _topic_rates(stats, requirements, duration_s),
            _max_gap(stats, requirements),
            _monotonic(stats),
            _duration(duration_s, requirements),
        ]
    return checks, stats, duration_s


def score_of(checks: list[CheckResult]) -> float:
    total = sum(c.weight for c in checks)
    if total == 0:
        return 0.0
    return round(sum(c.weight for c in checks if c.passed) / total, 4)


def outcome_of(checks: list[CheckResult], score: float, requirements: Requirements) -> QcOutcome:
    if any(c.name in CRITICAL_CHECKS and not c.passed for c in checks):
        return QcOutcome.REJECTED
    return requirements.outcome_for(score)


def _rows_present(row_count: int) -> CheckResult:
    return CheckResult(
        ROWS_PRESENT, row_count > 0, row_count, 0, CHECK_WEIGHTS[ROWS_PRESENT],
        f"{row_count} messages" if row_count else "the recording holds no messages",
    )


def _required_topics(stats: Mapping[str, TopicStats], req: Requirements) -> CheckResult:
    required = sorted(req.required_topics)
    if not required:
        return CheckResult(REQUIRED_TOPICS, True, [], [], 0.0, "no required topics set")
    missing = [t for t in required if t not in stats]
    detail = f"missing {', '.join(missing)}" if missing else f"all {len(required)} required topics present"
    return CheckResult(REQUIRED_TOPICS, not missing, missing, required, CHECK_WEIGHTS[REQUIRED_TOPICS], detail)


def _topic_rates(stats: Mapping[str, TopicStats], req: Requirements, duration_s: float) -> CheckResult:
    """value: the worst relative deviation from an expected rate; threshold: rate_tolerance."""
    if not req.expected_rates_hz:
        return CheckResult(TOPIC_RATES, True, 0.0, req.rate_tolerance, 0.0, "no expected rates set")
    deviations: dict[str, float] = {}
    for topic, expected in sorted(req.expected_rates_hz.items()):
        actual = stats[topic].rate_hz if topic in stats else 0.0
        deviations[topic] = abs(actual - expected) / expected
    worst_topic = max(deviations, key=deviations.__getitem__)
    worst = round(deviations[worst_topic], 4)
    off = [
        f"{t} {stats[t].rate_hz if t in stats else 0.0:.2f} Hz (expected {req.expected_rates_hz[t]:.2f})"
        for t, d in deviations.items()
        if d > req.rate_tolerance
    ]
    detail = ("off rate: " + "; ".join(off)) if off else f"all {len(deviations)} topics within {req.rate_tolerance:.0%}"
    return CheckResult(TOPIC_RATES, not off, worst, req.rate_tolerance, CHECK_WEIGHTS[TOPIC_RATES], detail)


def _max_gap(stats: Mapping[str, TopicStats], req: Requirements) -> CheckResult:
    worst_topic = max(stats, key=lambda t: stats[t].max_gap_s)
    worst = stats[worst_topic].max_gap_s
    passed = worst <= req.max_gap_seconds
    detail = f"largest gap {worst:.3f} s on {worst_topic}"
    if not passed:
        over = [t for t, s in stats.items() if s.max_gap_s > req.max_gap_seconds]
        detail += f"; over {req.max_gap_seconds} s on {', '.join(over)}"
    return CheckResult(MAX_GAP, passed, worst, req.max_gap_seconds, CHECK_WEIGHTS[MAX_GAP], detail)


def _monotonic(stats: Mapping[str, TopicStats]) -> CheckResult:
    backwards = {t: s.backward_steps for t, s in stats.items() if s.backward_steps}
    total = sum(backwards.values())
    detail = (
        "log time goes back on " + ", ".join(f"{t} ({n}x)" for t, n in backwards.items())
        if backwards
        else "log time never goes back"
    )
    return CheckResult(MONOTONIC_TIMESTAMPS, total == 0, total, 0, CHECK_WEIGHTS[MONOTONIC_TIMESTAMPS], detail)


def _duration(duration_s: float, req: Requirements) -> CheckResult:
    high = req.max_duration_seconds if req.max_duration_seconds is not None else math.inf
    passed = req.min_duration_seconds <= duration_s <= high
    bounds = [req.min_duration_seconds, req.max_duration_seconds]
    detail = f"{duration_s:.3f} s within [{req.min_duration_seconds}, {high}]" if passed else (
        f"{duration_s:.3f} s outside [{req.min_duration_seconds}, {high}]"
    )
    return CheckResult(DURATION, passed, round(duration_s, 6), bounds, CHECK_WEIGHTS[DURATION], detail)

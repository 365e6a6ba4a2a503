"""The QC checks, as pure functions over a recording's profile and its sidecar findings. (Over
~400 lines on purpose: the checks share one scoring and one evidence rule, stated once below; split
up, each part would import the others' helpers.)

Daft computes the profile (small aggregates per topic plus the sync offsets, see
:mod:`.daft_profile`); :mod:`.sidecar_check` compares the files with the sidecar. The verdicts here
need no I/O, so they are the same whichever runner (native, Ray, Ray job, KubeRay) computed the
profile.

Scoring: every scored check weighs the same, so with N applicable checks one failure costs 1/N of
the score — but never less than 1/SCORE_SPREAD (1/9): with the content checks of MCAP recordings
up to 22 checks apply, and one failed check must still score below 0.9 — the default
``auto_approve`` — so a recording with a failed check is never auto-approved at the default
thresholds (an admin who lowers ``auto_approve`` decides otherwise). ``rows_present`` is a gate, not scored: an empty recording fails every data
check anyway. A failed critical check (rows, required topics, sidecar consistency) rejects the
recording whatever its score: nothing else can make up for missing or corrupt data.

Integrity first: ``integrity`` passes only when something vouches for the bytes — a valid sidecar
whose SHA-256 digests were verified (here, or by the edge cache when it staged the dataset) and,
for a recording ingested from an Axon MCAP, Axon's checksum present and the MCAP hashed at
ingestion. Without that evidence (no sidecar, a remote dataset, an MCAP whose recorder wrote no
checksum) the recording is never approved: at best it needs review, whatever the score and the
thresholds; a reviewer decides. Evidence that *contradicts* the data (files changed, checksum
mismatch) is ``sidecar_consistency``'s and rejects.

Malformed data (not a Lance dataset although its files read, columns missing or of the wrong
type, a data file truncated, corrupt or lost) fails ``well_formed``, a critical gate, with the
reason: a verdict (rejected), never "could not inspect". What could not be read at all (storage
unreachable, a missing dataset, a permission error, Ray down) stays InspectionInfrastructureError.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from axon_dagster.domain import PlanningError, QcOutcome, Requirements

from .daft_profile import ContentProfile, RecordingProfile, TopicProfile
from .report import CheckResult, TopicStats
from .sidecar_check import SidecarFindings

WELL_FORMED = "well_formed"
INTEGRITY = "integrity"
ROWS_PRESENT = "rows_present"
TOPIC_SET = "topic_set"
CONSTANT_TIMESTAMPS = "constant_timestamps"
TIMESTAMPS_IN_RANGE = "timestamps_in_range"
SEQUENCE_NUMBERS = "sequence_numbers"
DUPLICATE_MESSAGES = "duplicate_messages"
REQUIRED_TOPICS = "required_topics"
TOPIC_RATES = "topic_rates"
DROPPED_MESSAGES = "dropped_messages"
MAX_GAP = "max_gap"
MONOTONIC_TIMESTAMPS = "monotonic_timestamps"
DURATION = "duration"
TOPIC_SYNC = "topic_sync"
FROZEN_STREAMS = "frozen_streams"
SIDECAR_CONSISTENCY = "sidecar_consistency"
# Content checks: they read the decoded columns of recordings ingested from MCAP (not applicable to
# recordings without them) and Axon's sidecar as recorded at ingestion.
HEADER_STAMP_SKEW = "header_stamp_skew"
NONFINITE_VALUES = "nonfinite_values"
IMAGE_FORMAT_STABLE = "image_format_stable"
FROZEN_VALUES = "frozen_values"
AXON_SIDECAR_MATCH = "axon_sidecar_match"
PAUSES_ACCOUNTED = "pauses_accounted"
TIMING_DROPS = "timing_drops"
CONTENT_CHECKS = (HEADER_STAMP_SKEW, NONFINITE_VALUES, IMAGE_FORMAT_STABLE, FROZEN_VALUES, AXON_SIDECAR_MATCH,
                  PAUSES_ACCOUNTED, TIMING_DROPS)
# Axon's times are whole milliseconds and the first message may arrive just before its clock
# starts the recording: log times this close outside the sidecar's range are within it.
AXON_TIME_TOLERANCE_NS = 1_000_000_000

# More than this share of a topic's time steps at zero: its timestamps are (partly) constant.
MAX_ZERO_STEP_SHARE = 0.01

# Report order.
CHECK_NAMES = (
    WELL_FORMED, INTEGRITY, ROWS_PRESENT, REQUIRED_TOPICS, TOPIC_SET, TOPIC_RATES, DROPPED_MESSAGES, MAX_GAP,
    MONOTONIC_TIMESTAMPS, CONSTANT_TIMESTAMPS, TIMESTAMPS_IN_RANGE, SEQUENCE_NUMBERS, DUPLICATE_MESSAGES,
    DURATION, TOPIC_SYNC, FROZEN_STREAMS, SIDECAR_CONSISTENCY, *CONTENT_CHECKS,
)
GATES = frozenset({WELL_FORMED, ROWS_PRESENT})  # not scored: a failed gate rejects
CHECK_WEIGHTS: Mapping[str, float] = {name: (0.0 if name in GATES else 1.0) for name in CHECK_NAMES}
CRITICAL_CHECKS = frozenset({WELL_FORMED, ROWS_PRESENT, REQUIRED_TOPICS, SIDECAR_CONSISTENCY})
# A failed check of these never lets the recording be approved (at best: needs_review).
APPROVAL_REQUIRES = frozenset({INTEGRITY})
# Checks measured from the data; they cannot be measured when the data cannot be read.
DATA_CHECKS = tuple(
    n for n in CHECK_NAMES if n not in (WELL_FORMED, INTEGRITY, REQUIRED_TOPICS, TOPIC_SET, SIDECAR_CONSISTENCY, *CONTENT_CHECKS)
)
assert DATA_CHECKS[0] == ROWS_PRESENT
MAX_LISTED = 5  # problems named in a detail line before "... and N more"


def checked_requirements(requirements: Requirements | Mapping[str, Any]) -> Requirements:
    """Validate requirements (a dataclass built directly skips ``from_dict``'s checks)."""
    if isinstance(requirements, Requirements):
        return Requirements.from_dict(requirements.to_dict())
    if isinstance(requirements, Mapping):
        return Requirements.from_dict(requirements)
    raise PlanningError(f"requirements must be Requirements or a mapping, got {type(requirements).__name__}")


def recording_duration_s(topics: Mapping[str, TopicProfile]) -> float:
    """How long the recording ran: the longest span any topic covered (forward log-time steps, so
    a clock jumping back does not shorten it), plus the shortest mean period — messages at t0..tN
    stand for [t0, tN + one period), so a clean 5 s recording measures 5 s, not 4.995 s."""
    if not topics:
        return 0.0
    periods = [p.active_ns / (p.count - 1) for p in topics.values() if p.count > 1 and p.active_ns > 0]
    return (max(p.active_ns for p in topics.values()) + (min(periods) if periods else 0.0)) / 1e9


def topic_stats(topics: Mapping[str, TopicProfile], duration_s: float) -> dict[str, TopicStats]:
    return {
        topic: TopicStats(
            count=p.count,
            rate_hz=round(p.count / duration_s, 4) if duration_s > 0 else 0.0,
            max_gap_s=round(p.max_step_ns / 1e9, 6),
            first_ns=p.first_ns,
            last_ns=p.last_ns,
            backward_steps=p.backward_steps,
            lost_messages=p.lost_messages,
            dropped_messages=p.dropped_messages,
            lost_in_gaps=p.lost_in_gaps,
            repeated_payloads=p.repeated_payloads,
            longest_frozen_s=round(p.longest_frozen_ns / 1e9, 6),
            active_s=round(p.active_ns / 1e9, 6),
            duplicate_messages=p.duplicate_messages,
            repeated_sequences=p.repeated_sequences,
            sequence_resets=p.sequence_resets,
            zero_steps=p.zero_steps,
        )
        for topic, p in sorted(topics.items())
    }


def run_checks(
    profile: RecordingProfile | None,
    sidecar: SidecarFindings | None,
    requirements: Requirements,
    *,
    unmeasured_reason: str = "",
) -> tuple[list[CheckResult], dict[str, TopicStats], float]:
    """Every check → (results in CHECK_NAMES order, per-topic stats, duration in seconds).

    ``profile`` is None when the data could not be read because the dataset is incomplete (the
    sidecar proves files missing or changed): the data checks then fail as not measured."""
    axon = _axon_facts(sidecar)
    if profile is None:
        reason = f"not measured: {unmeasured_reason or 'the data could not be read'}"
        checks = {name: _fail(name, reason) for name in DATA_CHECKS}
        checks.update(_content_unmeasured(axon, reason))
        checks[REQUIRED_TOPICS] = _fail(REQUIRED_TOPICS, reason, value=None, threshold=sorted(requirements.required_topics))
        checks[TOPIC_SET] = _fail(TOPIC_SET, reason, value=None, threshold=_declared_topics(sidecar))
        checks[SIDECAR_CONSISTENCY] = _sidecar_consistency(sidecar, None)
        checks[WELL_FORMED] = _fail(WELL_FORMED, unmeasured_reason or "the data could not be read", value=False, threshold=True)
        checks[INTEGRITY] = _integrity(sidecar)
        return [checks[n] for n in CHECK_NAMES], {}, 0.0

    topics = profile.topics
    duration_s = recording_duration_s(topics)
    stats = topic_stats(topics, duration_s)
    row_count = sum(p.count for p in topics.values())
    checks = {
        WELL_FORMED: CheckResult(WELL_FORMED, True, True, True, CHECK_WEIGHTS[WELL_FORMED], "recording columns present and readable"),
        INTEGRITY: _integrity(sidecar),
        ROWS_PRESENT: _rows_present(row_count),
        REQUIRED_TOPICS: _required_topics(stats, requirements),
        TOPIC_SET: _topic_set(topics, sidecar),
        SIDECAR_CONSISTENCY: _sidecar_consistency(sidecar, topics),
    }
    if row_count == 0:
        # Nothing else can be measured; say so instead of passing checks vacuously.
        for name in DATA_CHECKS[1:]:
            checks[name] = _fail(name, "no rows to measure")
        checks.update(_content_unmeasured(axon, "no rows to measure"))
    else:
        checks.update({
            TOPIC_RATES: _topic_rates(stats, requirements, duration_s),
            DROPPED_MESSAGES: _dropped(stats, requirements),
            MAX_GAP: _max_gap(stats, requirements),
            MONOTONIC_TIMESTAMPS: _monotonic(stats),
            CONSTANT_TIMESTAMPS: _constant_timestamps(topics),
            TIMESTAMPS_IN_RANGE: _in_range(topics, sidecar),
            SEQUENCE_NUMBERS: _sequence_numbers(topics),
            DUPLICATE_MESSAGES: _duplicates(topics),
            DURATION: _duration(duration_s, requirements),
            TOPIC_SYNC: _sync(profile, requirements),
            FROZEN_STREAMS: _frozen(stats, requirements),
            **content_checks(profile, axon, requirements),
        })
    return [checks[n] for n in CHECK_NAMES], stats, duration_s


SCORE_SPREAD = 9.0  # a failed check (weight 1) costs at least 1/SCORE_SPREAD of the score


def score_of(checks: list[CheckResult]) -> float:
    """Passed weight over applicable weight; with more than SCORE_SPREAD applicable checks the
    failed weight is counted against SCORE_SPREAD instead, so each failure costs at least 1/9."""
    total = sum(c.weight for c in checks)
    if total == 0:
        return 0.0
    failed = sum(c.weight for c in checks if not c.passed)
    return round(max(0.0, 1.0 - failed / min(total, SCORE_SPREAD)), 4)


def outcome_of(checks: list[CheckResult], score: float, requirements: Requirements) -> QcOutcome:
    """A failed critical check rejects; otherwise the score decides, except that a recording
    whose integrity nothing vouches for is never approved (needs_review at best)."""
    if any(c.name in CRITICAL_CHECKS and not c.passed for c in checks):
        return QcOutcome.REJECTED
    outcome = requirements.outcome_for(score)
    if outcome is QcOutcome.APPROVED and any(c.name in APPROVAL_REQUIRES and not c.passed for c in checks):
        return QcOutcome.NEEDS_REVIEW
    return outcome


# ------------------------------------------------------------------------------------ checks

def _fail(name: str, detail: str, value: Any = None, threshold: Any = None) -> CheckResult:
    return CheckResult(name, False, value, threshold, CHECK_WEIGHTS[name], detail)


def _not_applicable(name: str, detail: str, value: Any = None, threshold: Any = None) -> CheckResult:
    """Nothing to check: passes with weight 0, so it neither helps nor hurts the score."""
    return CheckResult(name, True, value, threshold, 0.0, detail)


def _listed(items: list[str]) -> str:
    shown = ", ".join(items[:MAX_LISTED])
    return shown + (f" ... and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else "")


def _rows_present(row_count: int) -> CheckResult:
    return CheckResult(
        ROWS_PRESENT, row_count > 0, row_count, 0, CHECK_WEIGHTS[ROWS_PRESENT],
        f"{row_count} messages" if row_count else "the recording holds no messages",
    )


def _required_topics(stats: Mapping[str, TopicStats], req: Requirements) -> CheckResult:
    required = sorted(req.required_topics)
    if not required:
        return _not_applicable(REQUIRED_TOPICS, "no required topics set", [], [])
    missing = [t for t in required if t not in stats]
    detail = f"missing {', '.join(missing)}" if missing else f"all {len(required)} required topics present"
    return CheckResult(REQUIRED_TOPICS, not missing, missing, required, CHECK_WEIGHTS[REQUIRED_TOPICS], detail)


def _topic_rates(stats: Mapping[str, TopicStats], req: Requirements, duration_s: float) -> CheckResult:
    """value: the worst relative deviation of a topic's count (= its rate) from expected_rate x
    duration; threshold: rate_tolerance."""
    if not req.expected_rates_hz:
        return _not_applicable(TOPIC_RATES, "no expected rates set", 0.0, req.rate_tolerance)
    deviations: dict[str, float] = {}
    off: list[str] = []
    for topic, expected in sorted(req.expected_rates_hz.items()):
        count = stats[topic].count if topic in stats else 0
        expected_count = expected * duration_s
        deviations[topic] = abs(count - expected_count) / expected_count if expected_count > 0 else 1.0
        if deviations[topic] > req.rate_tolerance:
            rate = stats[topic].rate_hz if topic in stats else 0.0
            off.append(f"{topic} {count} msgs = {rate:.2f} Hz (expected {expected:.2f} Hz, ~{expected_count:.0f} msgs)")
    worst = round(max(deviations.values()), 4)
    detail = ("off rate: " + "; ".join(off)) if off else f"all {len(deviations)} topics within {req.rate_tolerance:.0%}"
    return CheckResult(TOPIC_RATES, not off, worst, req.rate_tolerance, CHECK_WEIGHTS[TOPIC_RATES], detail)


def _dropped(stats: Mapping[str, TopicStats], req: Requirements) -> CheckResult:
    """value: the worst share of a topic's messages lost in sequence holes outside stalls.

    Every lost message is judged by exactly one check: a hole whose log-time step exceeds
    max_gap_seconds is a stall, judged by max_gap; any other hole is a drop, judged here (so
    the messages lost in a stall that max_gap tolerates count as drops)."""
    rates = {
        t: s.dropped_messages / (s.count + s.lost_messages) if s.count + s.lost_messages else 0.0
        for t, s in stats.items()
    }
    worst_topic = max(rates, key=rates.__getitem__)
    worst = round(rates[worst_topic], 4)
    over = [f"{t} {stats[t].dropped_messages} lost ({r:.1%})" for t, r in rates.items() if r > req.max_drop_rate]
    if over:
        detail = f"sequence holes over {req.max_drop_rate:.1%}: " + "; ".join(over)
    else:
        total = sum(s.dropped_messages for s in stats.values())
        detail = f"{total} messages lost in sequence holes; worst {worst_topic} {worst:.2%}"
    return CheckResult(DROPPED_MESSAGES, not over, worst, req.max_drop_rate, CHECK_WEIGHTS[DROPPED_MESSAGES], detail)


def _max_gap(stats: Mapping[str, TopicStats], req: Requirements) -> CheckResult:
    worst_topic = max(stats, key=lambda t: stats[t].max_gap_s)
    worst = stats[worst_topic].max_gap_s
    passed = worst <= req.max_gap_seconds
    detail = f"largest gap {worst:.3f} s on {worst_topic}"
    if not passed:
        over = [
            f"{t} ({s.max_gap_s:.3f} s, {s.lost_in_gaps} msgs lost in it)"
            for t, s in stats.items() if s.max_gap_s > req.max_gap_seconds
        ]
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
    detail = f"{duration_s:.3f} s {'within' if passed else 'outside'} [{req.min_duration_seconds}, {high}]"
    return CheckResult(DURATION, passed, round(duration_s, 6), bounds, CHECK_WEIGHTS[DURATION], detail)


def _sync(profile: RecordingProfile, req: Requirements) -> CheckResult:
    limit = req.max_sync_offset_seconds
    if not req.sync_topic or not req.sync_reference_topic:
        return _not_applicable(TOPIC_SYNC, "sync check off (no sync topics set)", None, limit)
    sync = profile.sync
    if sync is None:
        absent = [t for t in (req.sync_topic, req.sync_reference_topic) if t not in profile.topics]
        return _not_applicable(TOPIC_SYNC, f"not measured: {', '.join(absent)} not in the recording", None, limit)
    value = round(sync.offset_percentile_ns / 1e9, 6)
    passed = value <= limit
    pct = f"p{sync.percentile:g}"
    detail = (
        f"{pct} |{sync.topic} - nearest {sync.reference}| = {value * 1e3:.2f} ms "
        f"{'<=' if passed else '>'} {limit * 1e3:.2f} ms over {sync.samples} messages "
        f"(max {sync.max_offset_ns / 1e6:.2f} ms)"
    )
    return CheckResult(TOPIC_SYNC, passed, value, limit, CHECK_WEIGHTS[TOPIC_SYNC], detail)


def _frozen(stats: Mapping[str, TopicStats], req: Requirements) -> CheckResult:
    limit = req.max_frozen_seconds
    watched = [t for t in req.frozen_topics if t in stats]
    if not watched:
        return _not_applicable(FROZEN_STREAMS, "not measured: no frozen_topics in the recording", 0.0, limit)
    worst_topic = max(watched, key=lambda t: stats[t].longest_frozen_s)
    worst = stats[worst_topic].longest_frozen_s
    frozen = [
        f"{t} identical payloads for {stats[t].longest_frozen_s:.3f} s ({stats[t].repeated_payloads} repeats)"
        for t in watched if stats[t].longest_frozen_s > limit
    ]
    if frozen:
        detail = "frozen: " + "; ".join(frozen)
    else:
        detail = f"longest identical-payload run {worst:.3f} s on {worst_topic} (watching {', '.join(watched)})"
    return CheckResult(FROZEN_STREAMS, not frozen, worst, limit, CHECK_WEIGHTS[FROZEN_STREAMS], detail)


def _sidecar_consistency(findings: SidecarFindings | None, topics: Mapping[str, TopicProfile] | None) -> CheckResult:
    if findings is None:
        return _not_applicable(SIDECAR_CONSISTENCY, "no sidecar beside the dataset (or a remote dataset)", 0, 0)
    if findings.error:
        return _fail(SIDECAR_CONSISTENCY, findings.error, value=1, threshold=0)
    side = findings.sidecar
    assert side is not None
    problems: list[str] = []
    problems += [f"file {f} missing" for f in findings.missing_files]
    problems += [f"file {f} changed (SHA-256 differs)" for f in findings.changed_files]
    problems += [f"file {f} not in the sidecar" for f in findings.extra_files]
    if not problems and findings.digest_verified and findings.actual_digest != side.dataset_digest:
        problems.append(f"dataset digest {findings.actual_digest[:12]} != sidecar {side.dataset_digest[:12]}")
    source = (side.extra or {}).get("source") if isinstance(side.extra, dict) else None
    for key, whose in (("axon_checksum_sha256", "Axon's checksum"), ("recorder_checksum_sha256", "the recorder's checksum")):
        if isinstance(source, dict) and source.get("mcap_sha256") and source.get(key) and source["mcap_sha256"] != source[key]:
            problems.append(
                f"{source.get('mcap_file', 'the MCAP')} SHA-256 {source['mcap_sha256'][:12]} != {whose} "
                f"{source[key][:12]} (changed since it was recorded)"
            )
    if topics is not None:
        for topic in sorted(set(side.topics) | set(topics)):
            listed, measured = side.topics.get(topic), topics.get(topic)
            if listed is None:
                problems.append(f"{topic} recorded but not in the sidecar")
            elif measured is None:
                problems.append(f"{topic} in the sidecar ({listed.count} msgs) but not recorded")
            else:
                if listed.count != measured.count:
                    problems.append(f"{topic} count {measured.count} != sidecar {listed.count}")
                if (listed.first_ns, listed.last_ns) != (measured.first_ns, measured.last_ns):
                    problems.append(
                        f"{topic} time range [{measured.first_ns}, {measured.last_ns}] != sidecar "
                        f"[{listed.first_ns}, {listed.last_ns}]"
                    )
    digest = "SHA-256 verified" if findings.digest_verified else "names only, digest not verified"
    checked = f"{len(side.files)} files, {digest}" + (f", counts and time ranges of {len(side.topics)} topics" if topics is not None else "")
    detail = ("inconsistent with the sidecar: " + _listed(problems)) if problems else f"matches the sidecar ({checked})"
    return CheckResult(SIDECAR_CONSISTENCY, not problems, len(problems), 0, CHECK_WEIGHTS[SIDECAR_CONSISTENCY], detail)


# ------------------------------------------------------------------------------ content checks


def _axon_facts(findings: SidecarFindings | None):
    """Axon's sidecar as recorded at ingestion in the dataset's sidecar; None when there is none
    (a recording that did not come from an Axon MCAP) or it cannot be parsed."""
    if findings is None or findings.sidecar is None:
        return None
    from axon_dagster.storage.axon_recording import AxonRecordingError

    from axon_dagster.ingest.mcap_to_lance import axon_facts

    try:
        return axon_facts(findings.sidecar)
    except (AxonRecordingError, ValueError):
        return None


def _content_unmeasured(axon, reason: str) -> dict[str, CheckResult]:
    """The content checks when the data could not be measured: failed for an Axon recording (they
    would have applied), not applicable for one that did not come from an MCAP."""
    if axon is None:
        return {name: _not_applicable(name, "no decoded content (not ingested from MCAP)") for name in CONTENT_CHECKS}
    return {name: _fail(name, reason) for name in CONTENT_CHECKS}


def content_checks(profile: RecordingProfile, axon, req: Requirements) -> dict[str, CheckResult]:
    content = profile.content
    out: dict[str, CheckResult] = {}
    if content is None:
        why = "no decoded content (not ingested from MCAP)"
        out.update({name: _not_applicable(name, why) for name in CONTENT_CHECKS if name != AXON_SIDECAR_MATCH})
    else:
        out[HEADER_STAMP_SKEW] = _stamp_skew(content, req)
        out[NONFINITE_VALUES] = _nonfinite(content)
        out[IMAGE_FORMAT_STABLE] = _image_format(content)
        out[FROZEN_VALUES] = _frozen_values(content, req)
        out[PAUSES_ACCOUNTED] = _pauses(profile, axon, req)
        out[TIMING_DROPS] = _timing_drops(content, profile.topics, req)
    out[AXON_SIDECAR_MATCH] = _axon_sidecar(profile.topics, axon)
    return out


def _stamp_skew(content: Mapping[str, ContentProfile], req: Requirements) -> CheckResult:
    limit = req.max_stamp_skew_seconds
    stamped = {t: c for t, c in content.items() if c.stamped}
    if not stamped:
        return _not_applicable(HEADER_STAMP_SKEW, "no message carries a header stamp", None, limit)
    worst_topic = max(stamped, key=lambda t: stamped[t].skew_p95_ns)
    worst = round(stamped[worst_topic].skew_p95_ns / 1e9, 6)
    over = [
        f"{t} p95 {c.skew_p95_ns / 1e9:.3f} s (max {c.skew_max_ns / 1e9:.3f} s)"
        for t, c in stamped.items() if c.skew_p95_ns / 1e9 > limit
    ]
    paused = max(c.pause_ns for c in stamped.values()) / 1e9
    note = f"; {paused:.3f} s of pauses taken out" if paused else ""
    detail = (
        f"header stamps off their log times by more than {limit} s: " + _listed(over)
        if over else f"p95 |log time - header stamp| {worst * 1e3:.1f} ms at most, on {worst_topic}{note}"
    )
    return CheckResult(HEADER_STAMP_SKEW, not over, worst, limit, CHECK_WEIGHTS[HEADER_STAMP_SKEW], detail)


def _nonfinite(content: Mapping[str, ContentProfile]) -> CheckResult:
    valued = {t: c for t, c in content.items() if c.valued}
    if not valued:
        return _not_applicable(NONFINITE_VALUES, "no decoded numeric fields (Imu, JointState, Odometry)", 0, 0)
    bad = {t: c for t, c in valued.items() if c.nonfinite_messages}
    total = sum(c.nonfinite_messages for c in bad.values())
    detail = (
        "NaN/Inf in " + _listed([f"{t} ({c.nonfinite_messages} msgs: {', '.join(c.nonfinite_columns)})" for t, c in bad.items()])
        if bad else f"all decoded numeric fields finite on {len(valued)} topics"
    )
    return CheckResult(NONFINITE_VALUES, not bad, total, 0, CHECK_WEIGHTS[NONFINITE_VALUES], detail)


def _image_format(content: Mapping[str, ContentProfile]) -> CheckResult:
    images = {t: c.image_formats for t, c in content.items() if c.image_formats}
    if not images:
        return _not_applicable(IMAGE_FORMAT_STABLE, "no images or point clouds", 0, 1)
    changed = {t: f for t, f in images.items() if len(f) > 1}
    worst = max(len(f) for f in images.values())
    detail = (
        "size or encoding changed mid-recording: " + _listed([f"{t} {' -> '.join(f)}" for t, f in changed.items()])
        if changed else f"one size and encoding per topic on {len(images)} topics"
    )
    return CheckResult(IMAGE_FORMAT_STABLE, not changed, worst, 1, CHECK_WEIGHTS[IMAGE_FORMAT_STABLE], detail)


def _frozen_values(content: Mapping[str, ContentProfile], req: Requirements) -> CheckResult:
    limit = req.max_frozen_seconds
    watched = [t for t in req.frozen_topics if t in content and content[t].keyed > 1]
    if not watched:
        return _not_applicable(FROZEN_VALUES, "not measured: no frozen_topics with decoded values or image data", 0.0, limit)
    worst_topic = max(watched, key=lambda t: content[t].longest_frozen_values_ns)
    worst = round(content[worst_topic].longest_frozen_values_ns / 1e9, 6)
    frozen = [
        f"{t} identical decoded values for {content[t].longest_frozen_values_ns / 1e9:.3f} s "
        f"({content[t].longest_frozen_values_messages} msgs)"
        for t in watched if content[t].longest_frozen_values_ns / 1e9 > limit
    ]
    detail = ("frozen: " + "; ".join(frozen)) if frozen else (
        f"longest run of identical decoded values {worst:.3f} s on {worst_topic} (watching {', '.join(watched)})"
    )
    return CheckResult(FROZEN_VALUES, not frozen, worst, limit, CHECK_WEIGHTS[FROZEN_VALUES], detail)


def _axon_sidecar(topics: Mapping[str, TopicProfile], axon) -> CheckResult:
    if axon is None:
        return _not_applicable(AXON_SIDECAR_MATCH, "no Axon sidecar (not recorded by Axon)", 0, 0)
    problems: list[str] = []
    rows = sum(p.count for p in topics.values())
    if axon.recording.message_count != rows:
        problems.append(f"message_count {axon.recording.message_count} != {rows} messages in the data")
    listed = axon.topic_counts()
    for topic in sorted(set(listed) | set(topics)):
        measured = topics[topic].count if topic in topics else None
        if topic not in listed:
            problems.append(f"{topic} recorded ({measured} msgs) but not in topics_summary")
        elif measured is None:
            if listed[topic]:
                problems.append(f"{topic} in topics_summary ({listed[topic]} msgs) but not recorded")
        elif measured != listed[topic]:
            problems.append(f"{topic} count {measured} != topics_summary {listed[topic]}")
    # Log times against Axon's recording_started_at/finished_at: timestamps_in_range (the
    # dataset's sidecar carries Axon's range).
    origin = "sidecar" if axon.source == "sidecar" else "axon.* metadata"
    detail = (
        f"data disagrees with Axon's {origin}: " + _listed(problems) if problems
        else f"counts of {len(listed)} topics ({rows} messages) match Axon's {origin}"
    )
    return CheckResult(AXON_SIDECAR_MATCH, not problems, len(problems), 0, CHECK_WEIGHTS[AXON_SIDECAR_MATCH], detail)


def _pauses(profile: RecordingProfile, axon, req: Requirements) -> CheckResult:
    limit = req.max_unaccounted_seconds
    if axon is None or not axon.recording.duration_sec:
        return _not_applicable(PAUSES_ACCOUNTED, "no recorder wall time (Axon's duration_sec) to account for", None, limit)
    topics, content = profile.topics, profile.content or {}
    if not topics:
        return _fail(PAUSES_ACCOUNTED, "no rows to measure")
    wall = axon.recording.duration_sec
    span = (max(p.last_ns for p in topics.values()) - min(p.first_ns for p in topics.values())) / 1e9
    paused = max((c.pause_ns for c in content.values()), default=0) / 1e9
    unaccounted = round(wall - span - paused, 6)
    passed = abs(unaccounted) <= limit
    detail = (
        f"recorder wall time {wall:.3f} s = data {span:.3f} s + pauses {paused:.3f} s "
        f"{'+' if unaccounted >= 0 else '-'} {abs(unaccounted):.3f} s unaccounted "
        f"({'within' if passed else 'over'} {limit} s)"
    )
    return CheckResult(PAUSES_ACCOUNTED, passed, unaccounted, limit, CHECK_WEIGHTS[PAUSES_ACCOUNTED], detail)


def _timing_drops(content: Mapping[str, ContentProfile], topics: Mapping[str, TopicProfile], req: Requirements) -> CheckResult:
    """value: the worst share of a stamped topic's messages missing from its log-time steps
    (Axon's sequence numbers have no holes: see daft_profile.content_profile); threshold: max_drop_rate."""
    measured = {t: c for t, c in content.items() if c.period_ns > 0 and t in topics}
    if not measured:
        return _not_applicable(TIMING_DROPS, "no stamped topic with a steady period", 0.0, req.max_drop_rate)
    rates = {t: c.timing_lost / (topics[t].count + c.timing_lost) for t, c in measured.items()}
    worst_topic = max(rates, key=rates.__getitem__)
    worst = round(rates[worst_topic], 4)
    over = [
        f"{t} ~{measured[t].timing_lost} lost ({r:.1%}, period {measured[t].period_ns / 1e6:.1f} ms)"
        for t, r in rates.items() if r > req.max_drop_rate
    ]
    detail = (
        f"messages missing from the timing over {req.max_drop_rate:.1%}: " + _listed(over) if over
        else f"~{sum(c.timing_lost for c in measured.values())} messages missing from the timing of "
             f"{len(measured)} topics; worst {worst_topic} {worst:.2%}"
    )
    return CheckResult(TIMING_DROPS, not over, worst, req.max_drop_rate, CHECK_WEIGHTS[TIMING_DROPS], detail)


# ------------------------------------------------------------------------ integrity and sanity


def _integrity(findings: SidecarFindings | None) -> CheckResult:
    """Is there evidence for these bytes? (Contradicting evidence is sidecar_consistency's.)"""
    name = INTEGRITY
    if findings is None:
        return _fail(name, "no sidecar beside the dataset (or a remote dataset): nothing vouches for these bytes, "
                           "so they are never approved; a reviewer decides", value="unverified", threshold="verified")
    if findings.error or findings.sidecar is None:
        return _fail(name, f"no valid sidecar: {findings.error or 'unreadable'}", value="unverified", threshold="verified")
    side = findings.sidecar
    how = "SHA-256 of every file verified against the sidecar" if findings.digest_verified else \
        "file names compared with the sidecar, SHA-256 verified when the dataset was staged"
    extra = side.extra if isinstance(side.extra, dict) else {}
    source = extra.get("source") if isinstance(extra.get("source"), dict) else {}
    if source.get("format") == "mcap":
        missing: list[str] = []
        if not extra.get("axon"):
            missing.append("no Axon sidecar or axon.* metadata (not shown to come from Axon)")
        if not (source.get("axon_checksum_sha256") or source.get("recorder_checksum_sha256")):
            missing.append("no Axon checksum_sha256 (no Axon sidecar) and none reported by the recorder: "
                           "the MCAP's bytes cannot be checked against the recorder's")
        if not source.get("mcap_sha256"):
            missing.append("the MCAP was not hashed at ingestion")
        if missing:
            return _fail(name, f"{source.get('mcap_file', 'the MCAP')}: " + "; ".join(missing) + " — never approved; a reviewer decides",
                         value="unverified", threshold="verified")
        whose = "Axon's checksum" if source.get("axon_checksum_sha256") else "the checksum the recorder reported"
        how += f"; {source.get('mcap_file', 'the MCAP')} hashed at ingestion against {whose}"
    return CheckResult(name, True, "verified", "verified", CHECK_WEIGHTS[name], how)


def _declared_topics(findings: SidecarFindings | None) -> list[str]:
    """What the recorder declared it records: for a recording ingested from MCAP, the file's
    channels (Axon opens one per subscription, messages or not); for the Lance-era layout, the
    ``topics`` of the task config the recorder wrote into the sidecar's metadata. [] when it
    declared nothing (the check does not apply)."""
    side = findings.sidecar if findings is not None else None
    if side is None:
        return []
    extra = side.extra if isinstance(side.extra, dict) else {}
    source = extra.get("source") if isinstance(extra.get("source"), dict) else {}
    if source.get("format") == "mcap":
        declared = source.get("channels")
    else:
        declared = side.metadata.get("topics") if isinstance(side.metadata, dict) else None
    if not isinstance(declared, (list, tuple)) or not all(isinstance(t, str) for t in declared):
        return []
    return sorted(set(declared))


def _topic_set(topics: Mapping[str, TopicProfile], findings: SidecarFindings | None) -> CheckResult:
    declared = _declared_topics(findings)
    if not declared:
        return _not_applicable(TOPIC_SET, "the recorder declared no topic list (it records every topic it knows)", [], [])
    undeclared = sorted(t for t in topics if t not in declared)
    lost = [t for t in declared if t not in topics]
    problems = ([f"not declared: {_listed(undeclared)}"] if undeclared else []) + ([f"declared but lost: {_listed(lost)}"] if lost else [])
    detail = ("topics differ from what the recorder declared: " + "; ".join(problems)) if problems else \
        f"exactly the {len(declared)} declared topics"
    return CheckResult(TOPIC_SET, not problems, undeclared + lost, declared, CHECK_WEIGHTS[TOPIC_SET], detail)


def _constant_timestamps(topics: Mapping[str, TopicProfile]) -> CheckResult:
    """value: the worst share of a topic's time steps that are zero (duplicated rows excluded)."""
    shares = {
        t: p.zero_steps / steps
        for t, p in topics.items()
        if (steps := p.count - 1 - p.duplicate_messages) > 0
    }
    if not shares:
        return _not_applicable(CONSTANT_TIMESTAMPS, "no topic with two messages", 0.0, MAX_ZERO_STEP_SHARE)
    worst_topic = max(shares, key=shares.__getitem__)
    worst = round(shares[worst_topic], 4)
    stuck = [f"{t} ({topics[t].zero_steps} of {topics[t].count} messages repeat the previous log time)"
             for t, share in shares.items() if share > MAX_ZERO_STEP_SHARE]
    detail = ("timestamps stand still on " + _listed(stuck)) if stuck else f"log time advances on every topic (worst {worst_topic} {worst:.2%} zero steps)"
    return CheckResult(CONSTANT_TIMESTAMPS, not stuck, worst, MAX_ZERO_STEP_SHARE, CHECK_WEIGHTS[CONSTANT_TIMESTAMPS], detail)


def _in_range(topics: Mapping[str, TopicProfile], findings: SidecarFindings | None) -> CheckResult:
    """Log times within the recording's own range (the sidecar's start/end; for an Axon MCAP,
    Axon's recording_started_at/finished_at), give or take AXON_TIME_TOLERANCE_NS.
    value: the largest excursion in seconds."""
    limit = AXON_TIME_TOLERANCE_NS / 1e9
    side = findings.sidecar if findings is not None else None
    if side is None or not isinstance(side.start_ns, int) or not isinstance(side.end_ns, int) \
            or side.start_ns <= 0 or side.end_ns < side.start_ns:
        return _not_applicable(TIMESTAMPS_IN_RANGE, "no recording range to compare with (no valid sidecar)", None, limit)
    start, end = side.start_ns, side.end_ns
    excursions: dict[str, float] = {}
    out: list[str] = []
    for t, p in topics.items():
        before, after = start - p.first_ns, p.last_ns - end
        excursions[t] = max(before, after, 0) / 1e9
        if before > AXON_TIME_TOLERANCE_NS:
            out.append(f"{t} from {before / 1e9:.3f} s before the recording started")
        if after > AXON_TIME_TOLERANCE_NS:
            out.append(f"{t} until {after / 1e9:.3f} s after it finished")
    worst = round(max(excursions.values()), 6)
    span = (end - start) / 1e9
    detail = ("log times outside the recording's range: " + _listed(out)) if out else \
        f"every log time within the recording's {span:.3f} s range (+-{limit:g} s)"
    return CheckResult(TIMESTAMPS_IN_RANGE, not out, worst, limit, CHECK_WEIGHTS[TIMESTAMPS_IN_RANGE], detail)


def _sequence_numbers(topics: Mapping[str, TopicProfile]) -> CheckResult:
    """Per topic in write order, each sequence number must exceed the previous one (holes are
    drops, judged by dropped_messages/max_gap). A topic numbered all 0 carries no numbers."""
    numbered = {t: p for t, p in topics.items() if p.count > 1 and p.max_sequence > 0}
    if not numbered:
        return _not_applicable(SEQUENCE_NUMBERS, "no topic carries sequence numbers", 0, 0)
    broken = {t: p for t, p in numbered.items() if p.repeated_sequences or p.sequence_resets}
    total = sum(p.repeated_sequences + p.sequence_resets for p in broken.values())
    detail = (
        "sequence numbers broken on " + _listed([
            f"{t} ({p.repeated_sequences} repeated, {p.sequence_resets} back steps)" for t, p in broken.items()])
        if broken else f"sequence numbers rise on all {len(numbered)} numbered topics"
    )
    return CheckResult(SEQUENCE_NUMBERS, not broken, total, 0, CHECK_WEIGHTS[SEQUENCE_NUMBERS], detail)


def _duplicates(topics: Mapping[str, TopicProfile]) -> CheckResult:
    dup = {t: p.duplicate_messages for t, p in topics.items() if p.duplicate_messages}
    total = sum(dup.values())
    detail = ("duplicated messages (same sequence, time and payload as the previous): "
              + _listed([f"{t} ({n}x)" for t, n in dup.items()])) if dup else "no message is written twice"
    return CheckResult(DUPLICATE_MESSAGES, not dup, total, 0, CHECK_WEIGHTS[DUPLICATE_MESSAGES], detail)

"""The inspection report: per-check verdicts, a weighted score, the outcome and per-topic statistics.

Stored as JSON beside the dataset (``storage.recording.report_path``) and uploaded with it, so it
must round-trip exactly through :meth:`InspectionReport.to_dict` / :meth:`InspectionReport.from_dict`.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

from axon_dagster.domain import QcOutcome

REPORT_FORMAT_VERSION = 3  # 2: drops/gaps split, frozen-stream and sync figures; 3: integrity, duplicates, sequence/time sanity


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    value: Any  # JSON-serialisable measurement (number, list of topics, ...)
    threshold: Any  # what the value was compared against
    weight: float  # share of the score; 0 when the requirements gave the check nothing to check
    detail: str = ""


@dataclass(frozen=True)
class TopicStats:
    count: int
    rate_hz: float  # messages per second over the whole recording
    max_gap_s: float  # largest step between consecutive messages (sequence order)
    first_ns: int
    last_ns: int
    backward_steps: int = 0  # times the log time went back between consecutive messages
    lost_messages: int = 0  # holes in the sequence numbers (dropped + lost in gaps)
    dropped_messages: int = 0  # lost in isolated holes (a step no longer than max_gap_seconds)
    lost_in_gaps: int = 0  # lost inside stalls longer than max_gap_seconds
    repeated_payloads: int = 0  # messages whose payload equals the previous message's
    longest_frozen_s: float = 0.0  # longest run of identical consecutive payloads, in log time
    active_s: float = 0.0  # sum of forward log-time steps (the span, minus backward jumps)
    duplicate_messages: int = 0  # rows written twice in a row (same sequence, time and payload)
    repeated_sequences: int = 0  # sequence number equal to the previous row's (not a duplicate)
    sequence_resets: int = 0  # sequence number below the previous row's
    zero_steps: int = 0  # log time equal to the previous row's (not a duplicate)


@dataclass
class InspectionReport:
    dataset_path: str
    checks: list[CheckResult]
    score: float
    outcome: QcOutcome
    per_topic: dict[str, TopicStats]
    row_count: int = 0
    duration_s: float = 0.0
    requirements: dict[str, Any] = field(default_factory=dict)
    runner: str = "native"
    inspected_at: str = ""  # ISO-8601 UTC
    elapsed_s: float = 0.0
    format_version: int = REPORT_FORMAT_VERSION
    # messages/s per topic over time (``RateSeries.to_dict()``, axon_dagster.domain.rate_series), set by
    # the data flow where the recording is; the review plot is drawn from it. None: not computed.
    rate_series: dict[str, Any] | None = None

    @property
    def approved(self) -> bool:
        return self.outcome is QcOutcome.APPROVED

    @property
    def failed_checks(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.passed]

    def check(self, name: str) -> CheckResult:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(f"no check named {name!r} in report (have: {', '.join(c.name for c in self.checks)})")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["outcome"] = self.outcome.value
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "InspectionReport":
        raw = dict(data)
        raw["checks"] = [CheckResult(**c) for c in raw["checks"]]
        raw["per_topic"] = {t: TopicStats(**s) for t, s in raw["per_topic"].items()}
        raw["outcome"] = QcOutcome(raw["outcome"])
        return cls(**raw)

    @classmethod
    def read(cls, path: str | os.PathLike) -> "InspectionReport":
        return cls.from_dict(json.loads(Path(path).read_text()))

    def write(self, path: str | os.PathLike) -> Path:
        """Write the report as JSON atomically (temp file in the same directory, then rename)."""
        path = Path(path)
        text = self.to_json()
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

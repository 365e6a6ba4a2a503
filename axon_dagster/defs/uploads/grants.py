"""Which robot uploads what next: the upload-grant rules as one pure function (no I/O, no Dagster).

Input: the control plane's upload queue (``GET /api/v1/upload-queue``): RECORDED datasets whose
edge gate passed, already ordered by their order's priority (highest first) then age (oldest
first); the ACTIVE grants; every robot with the uplink it reported (``PUT /edge/uplink``: Mbit/s
and daily windows in its time zone). A candidate is granted when

- its robot holds fewer than ``max_grants_per_robot`` active grants (counting this tick's),
- now is inside one of the robot's windows (no windows reported: any time), and
- the robot's reported uplink is at least ``min_bandwidth_mbps`` (not measured: not held back —
  an unknown link is not a slow one; it is counted as ``uplink_unmeasured``).

Everything not granted is counted under its reason. An expired grant is gone from the active
ones and its dataset is a candidate again, so it is simply granted anew.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# skip reasons (metric label values)
ROBOT_BUSY = "robot_busy"
OUTSIDE_WINDOW = "outside_window"
UPLINK_TOO_SLOW = "uplink_too_slow"
NO_ROBOT = "no_robot"
TICK_FULL = "tick_full"
BAD_UPLINK = "bad_uplink_report"
SKIP_REASONS = (ROBOT_BUSY, OUTSIDE_WINDOW, UPLINK_TOO_SLOW, NO_ROBOT, TICK_FULL, BAD_UPLINK)


@dataclass(frozen=True)
class GrantRules:
    max_grants_per_robot: int = 1
    min_bandwidth_mbps: float = 10.0
    max_grants_per_tick: int = 100

    def __post_init__(self) -> None:
        if self.max_grants_per_robot < 1:
            raise ValueError(f"max_grants_per_robot must be at least 1, got {self.max_grants_per_robot}")
        if self.min_bandwidth_mbps < 0:
            raise ValueError(f"min_bandwidth_mbps must be >= 0, got {self.min_bandwidth_mbps}")


@dataclass
class GrantPlan:
    grant: list[dict[str, Any]] = field(default_factory=list)  # candidates to grant, in order
    skipped: Counter = field(default_factory=Counter)  # reason -> candidates
    examples: dict[str, str] = field(default_factory=dict)  # reason -> one line about the first such candidate
    unmeasured: set[str] = field(default_factory=set)  # robots granted without a measured uplink

    def skip(self, reason: str, detail: str) -> None:
        self.skipped[reason] += 1
        self.examples.setdefault(reason, detail)

    def summary(self) -> str:
        parts = [f"{len(self.grant)} granted"] + [f"{n} {reason} ({self.examples[reason]})" for reason, n in self.skipped.items()]
        return "; ".join(parts)


def _clock(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def in_windows(windows: Sequence[Mapping[str, str]], tz_name: str | None, now: datetime) -> bool:
    """Is ``now`` inside one of the daily windows ``[{start: "HH:MM", end: "HH:MM"}]`` (in
    ``tz_name``)? A window whose end is before its start runs past midnight; start == end is the
    whole day. No windows: always. Raises ValueError for a window or zone that cannot be read."""
    if not windows:
        return True
    try:
        zone = ZoneInfo(tz_name or "UTC")
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {tz_name!r}") from exc
    local = now.astimezone(zone).time().replace(second=0, microsecond=0)
    for window in windows:
        start, end = _clock(window["start"]), _clock(window["end"])
        if start == end or (start <= local < end if start < end else (local >= start or local < end)):
            return True
    return False


def plan_grants(queue: Mapping[str, Any], rules: GrantRules, now: datetime | None = None) -> GrantPlan:
    """The candidates to grant now, in the queue's order, per :class:`GrantRules`."""
    now = now or datetime.now(timezone.utc)
    robots = {r["robot_id"]: r for r in queue.get("robots") or []}
    active = Counter(g["robot_id"] for g in queue.get("active_grants") or [] if g.get("status", "ACTIVE") == "ACTIVE")
    plan = GrantPlan()
    for candidate in queue.get("candidates") or []:
        dataset_id, robot_id = candidate["dataset_id"], candidate.get("robot_id")
        if not robot_id:
            plan.skip(NO_ROBOT, f"{dataset_id} is held by no robot")
            continue
        if active[robot_id] >= rules.max_grants_per_robot:
            plan.skip(ROBOT_BUSY, f"{robot_id} holds {active[robot_id]} active grant(s)")
            continue
        uplink = (robots.get(robot_id) or {}).get("uplink") or {}
        try:
            inside = in_windows(uplink.get("windows") or [], uplink.get("timezone"), now)
        except (ValueError, KeyError, TypeError) as exc:
            plan.skip(BAD_UPLINK, f"{robot_id}: {exc}")
            continue
        if not inside:
            plan.skip(OUTSIDE_WINDOW, f"{robot_id} uploads only in {uplink.get('windows')} {uplink.get('timezone') or 'UTC'}")
            continue
        mbps = uplink.get("mbps")
        if mbps is None:
            plan.unmeasured.add(robot_id)
        elif float(mbps) < rules.min_bandwidth_mbps:
            plan.skip(UPLINK_TOO_SLOW, f"{robot_id} reports {float(mbps):g} Mbit/s < {rules.min_bandwidth_mbps:g}")
            continue
        if len(plan.grant) >= rules.max_grants_per_tick:
            plan.skip(TICK_FULL, f"at most {rules.max_grants_per_tick} grants per tick")
            continue
        plan.grant.append(candidate)
        active[robot_id] += 1
    return plan

"""What the simulator should get wrong: the recording's data faults plus the recorder's own."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping

from .synthetic import Faults

_SIM_FAULTS = ("die_after_seconds", "disk_full_after_seconds", "finish_delay_seconds", "finish_callback_delay_seconds")


class FaultsError(ValueError):
    """A faults specification the simulator cannot apply."""


@dataclass(frozen=True)
class SimFaults:
    """What the simulator should get wrong: data faults for the recording, plus recorder faults."""

    recording: Faults = Faults()
    die_after_seconds: float | None = None
    disk_full_after_seconds: float | None = None
    finish_delay_seconds: float = 0.0
    finish_callback_delay_seconds: float = 0.0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "SimFaults":
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise FaultsError(f"faults must be a JSON object, got {type(data).__name__}")
        data = dict(data)
        known = sorted({f.name for f in dataclasses.fields(Faults)} | set(_SIM_FAULTS))
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise FaultsError(f"unknown fault(s): {', '.join(map(str, unknown))}; known: {', '.join(known)}")
        sim = {name: data.pop(name, None) for name in _SIM_FAULTS}
        for name, value in sim.items():
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0
            ):
                raise FaultsError(f"fault {name} must be a non-negative number of seconds, got {value!r}")
        try:
            recording = Faults.from_dict(data)
        except (TypeError, ValueError) as exc:
            raise FaultsError(str(exc)) from None
        return cls(
            recording=recording,
            die_after_seconds=sim["die_after_seconds"],
            disk_full_after_seconds=sim["disk_full_after_seconds"],
            finish_delay_seconds=float(sim["finish_delay_seconds"] or 0.0),
            finish_callback_delay_seconds=float(sim["finish_callback_delay_seconds"] or 0.0),
        )

    def to_dict(self) -> dict[str, Any]:
        return {**self.recording.to_dict(), **{name: getattr(self, name) for name in _SIM_FAULTS}}

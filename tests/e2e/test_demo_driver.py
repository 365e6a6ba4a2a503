"""The demo's Dagster driver waits for a change of the order's datasets between sensor ticks
instead of sleeping a fixed interval (axon_dagster/demo/cloud.py)."""

from __future__ import annotations

import itertools
import time

from axon_dagster.demo.cloud import wait_for_change


def test_the_driver_wakes_as_soon_as_the_datasets_change_and_not_before():
    answers = itertools.chain(["staged? no"] * 3, itertools.repeat("STAGED"))
    started = time.monotonic()
    assert wait_for_change(lambda: next(answers), "staged? no", timeout=5.0, interval=0.01) is True
    assert time.monotonic() - started < 1.0  # the fourth probe, not the timeout

    started = time.monotonic()
    assert wait_for_change(lambda: "same", "same", timeout=0.2, interval=0.05) is False
    assert 0.2 <= time.monotonic() - started < 1.0


def test_a_change_during_the_tick_wakes_the_driver_at_once_and_a_failing_probe_is_no_change():
    calls = []
    assert wait_for_change(lambda: calls.append(1) or "GRANTED", "RECORDED", timeout=5.0, interval=1.0) is True
    assert calls == [1]

    def broken():
        raise ConnectionError("control plane restarting")

    assert wait_for_change(broken, "x", timeout=0.1, interval=0.02) is False

"""The rate plot's numbers come from the recording: per-topic counts per second, a stall at zero."""

import base64

from axon_dagster.api.rate_plot import rate_plot_markdown, rate_plot_svg, rate_series, render_svg
from axon_dagster.demo.sim.synthetic import DEFAULT_TOPICS, Faults, write_recording


def test_rates_per_second_per_topic_show_the_stall(tmp_path):
    path = tmp_path / "t1.lance"
    write_recording(path, task_id="t1", robot_id="r1", start_ns=10**18, duration_s=8, faults=Faults(gap_seconds=2.0, gap_at_fraction=0.5))
    series = rate_series(path)
    assert series.bucket_seconds == 1.0 and set(series.rates_hz) == set(DEFAULT_TOPICS)
    for topic, spec in DEFAULT_TOPICS.items():
        rates = series.rates_hz[topic]
        assert rates[4] == rates[5] == 0, (topic, rates)  # the 2 s stall from t = 4 s
        busy = [r for i, r in enumerate(rates[:-1]) if i not in (4, 5)]
        assert all(abs(r - spec.rate_hz) <= 0.05 * spec.rate_hz + 1 for r in busy), (topic, rates)
    svg = render_svg(series)
    assert svg.count('class="rate-line"') == len(DEFAULT_TOPICS)
    assert base64.b64decode(rate_plot_markdown(path).split("base64,")[1][:-1]).decode() == rate_plot_svg(path)


def test_an_unreadable_recording_gives_a_plot_that_says_why(tmp_path):
    svg = rate_plot_svg(tmp_path / "missing.lance")
    assert "rate-plot-error" in svg and "cannot read recording" in svg

"""The rate plot's numbers come from the recording, computed once where it is: per-topic counts per
second, a stall at zero; what is stored with the report is bounded and checked when read back."""

import base64
import json

import pytest

from axon_dagster.api.rate_plot import rate_plot_markdown, rate_plot_svg, render_svg
from axon_dagster.demo.sim.synthetic import DEFAULT_TOPICS, Faults, TopicSpec, write_recording
from axon_dagster.domain.rate_series import MAX_BUCKETS, MalformedRateSeries, RateSeries
from axon_dagster.inspection.rate_series import RateSeriesError, rate_series


def test_rates_per_second_per_topic_show_the_stall(tmp_path):
    path = tmp_path / "t1.lance"
    write_recording(path, task_id="t1", robot_id="r1", start_ns=10**18, duration_s=8, faults=Faults(gap_seconds=2.0, gap_at_fraction=0.5))
    series = rate_series(path)
    assert series.bucket_seconds == 1.0 and 0 <= series.start_ns - 10**18 < 10**6 and set(series.rates_hz) == set(DEFAULT_TOPICS)
    for topic, spec in DEFAULT_TOPICS.items():
        rates = series.rates_hz[topic]
        assert rates[4] == rates[5] == 0, (topic, rates)  # the 2 s stall from t = 4 s
        busy = [r for i, r in enumerate(rates[:-1]) if i not in (4, 5)]
        assert all(abs(r - spec.rate_hz) <= 0.05 * spec.rate_hz + 1 for r in busy), (topic, rates)
    # What the data flow stores is what the plot is drawn from, unchanged through JSON.
    stored = json.loads(json.dumps(series.to_dict()))
    assert RateSeries.from_dict(stored) == series
    svg = render_svg(series)
    assert svg.count('class="rate-line"') == len(DEFAULT_TOPICS)
    assert rate_plot_svg(stored) == rate_plot_svg(series) == svg
    assert base64.b64decode(rate_plot_markdown(stored).split("base64,")[1][:-1]).decode() == svg


def test_a_long_recording_stores_a_bounded_series_that_keeps_its_counts(tmp_path):
    # 3 h of two topics (10 Hz and 2 Hz): 10800 one-second buckets at full resolution.
    topics = {"/fast": TopicSpec(10.0, "std_msgs/msg/Empty", 0), "/slow": TopicSpec(2.0, "std_msgs/msg/Empty", 0)}
    path = tmp_path / "long.lance"
    write_recording(path, task_id="long", robot_id="r1", start_ns=10**18, duration_s=3 * 3600, topics=topics,
                    faults=Faults(gap_seconds=600.0, gap_at_fraction=0.5))
    series = rate_series(path)
    assert series.buckets <= MAX_BUCKETS and series.buckets >= MAX_BUCKETS - 1
    assert 0.99 * 3 * 3600 / MAX_BUCKETS <= series.bucket_seconds <= 3 * 3600 / (MAX_BUCKETS - 1)
    size = len(json.dumps(series.to_dict()))
    assert size <= 2 * 6 * MAX_BUCKETS + 200, size  # ~4 KB per topic at most, as documented
    import lance

    counts = lance.dataset(str(path)).to_table(columns=["topic"])["topic"].value_counts().to_pylist()
    for c in counts:  # rates * bucket width give back the message counts (3 significant digits)
        total = sum(series.rates_hz[c["values"]]) * series.bucket_seconds
        assert abs(total - c["counts"]) <= 0.01 * c["counts"], (c, total)
    # The 10 min stall in the middle is still visible as buckets at 0.
    middle = series.rates_hz["/fast"][len(series.rates_hz["/fast"]) // 2 - 10: len(series.rates_hz["/fast"]) // 2 + 10]
    assert middle.count(0.0) >= 10, middle


def test_an_unreadable_recording_raises_a_clear_error(tmp_path):
    with pytest.raises(RateSeriesError, match="cannot read recording"):
        rate_series(tmp_path / "missing.lance")


GOOD = {"bucket_seconds": 1.0, "start_ns": 5, "rates_hz": {"/a": [1.0, 2.0], "/b": [0, 3]}}


@pytest.mark.parametrize(
    ("stored", "words"),
    [
        ([1, 2], "expected an object"),
        ({**GOOD, "extra": 1}, "unknown field"),
        ({**GOOD, "bucket_seconds": 0}, "bucket_seconds"),
        ({**GOOD, "bucket_seconds": "1"}, "bucket_seconds"),
        ({**GOOD, "start_ns": -1}, "start_ns"),
        ({**GOOD, "rates_hz": [1]}, "rates_hz"),
        ({**GOOD, "rates_hz": {"/a": [1.0, -2.0]}}, "non-negative"),
        ({**GOOD, "rates_hz": {"/a": [1.0, "x"]}}, "non-negative"),
        ({**GOOD, "rates_hz": {"/a": [1.0], "/b": [1.0, 2.0]}}, "same number of buckets"),
        ({**GOOD, "rates_hz": {"/a": [1.0] * (MAX_BUCKETS + 1)}}, "same number of buckets"),
        ({**GOOD, "rates_hz": {"/a": []}}, "same number of buckets"),
    ],
)
def test_a_malformed_stored_series_is_named_and_plots_as_no_series(stored, words):
    with pytest.raises(MalformedRateSeries, match=words):
        RateSeries.from_dict(stored)
    svg = rate_plot_svg(stored)
    assert "rate-plot-error" in svg and "no rate series" in svg and words.split()[0] in svg and "rate-line" not in svg


def test_a_report_without_a_series_plots_as_none_recorded():
    svg = rate_plot_svg(None)
    assert "rate-plot-none" in svg and "no rate series recorded" in svg and "rate-line" not in svg
    assert render_svg(RateSeries.from_dict(GOOD)).count('class="rate-line"') == 2

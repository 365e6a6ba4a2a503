"""Per-topic message rate over time, read from a Lance recording and drawn as inline SVG.

The reviewer sees at a glance what the QC report summarises: a stall is a dip to zero on every
line, drops are a sagging line, a missing topic has no line at all. Only the ``topic`` and
``log_time_ns`` columns are read (never the payloads), one batch at a time.
"""

from __future__ import annotations

import html
import os
from collections import defaultdict
from dataclasses import dataclass, field

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
MAX_BUCKETS = 3600  # an hour at one-second resolution; longer recordings use wider buckets


class RatePlotError(Exception):
    """The recording could not be read for the plot."""


@dataclass(frozen=True)
class RateSeries:
    bucket_seconds: float
    buckets: int
    start_ns: int
    rates_hz: dict[str, list[float]] = field(default_factory=dict)  # topic -> messages/s per bucket


def rate_series(dataset_path: str | os.PathLike, *, bucket_seconds: float = 1.0) -> RateSeries:
    """Messages per second per topic, in buckets of ``bucket_seconds`` from the first message."""
    import lance
    import pyarrow as pa
    import pyarrow.compute as pc

    if not bucket_seconds > 0:
        raise ValueError(f"bucket_seconds must be positive, got {bucket_seconds!r}")
    try:
        ds = lance.dataset(str(dataset_path))
        start = pc.min_max(ds.to_table(columns=["log_time_ns"])["log_time_ns"])
    except Exception as exc:  # unreadable, missing, truncated
        raise RatePlotError(f"cannot read recording {dataset_path}: {exc}") from exc
    lo, hi = start["min"].as_py(), start["max"].as_py()
    if lo is None:
        return RateSeries(bucket_seconds, 0, 0, {})
    span_s = (hi - lo) / 1e9
    if span_s / bucket_seconds > MAX_BUCKETS:
        bucket_seconds = span_s / MAX_BUCKETS
    width_ns = int(bucket_seconds * 1e9)
    buckets = int((hi - lo) // width_ns) + 1
    counts: dict[str, list[int]] = defaultdict(lambda: [0] * buckets)
    try:
        for batch in ds.to_batches(columns=["topic", "log_time_ns"]):
            idx = pc.divide(pc.subtract(batch.column("log_time_ns"), lo), width_ns)
            grouped = (
                pa.table({"topic": batch.column("topic"), "bucket": idx}).group_by(["topic", "bucket"]).aggregate([([], "count_all")])
            )
            for topic, bucket, n in zip(
                grouped.column("topic").to_pylist(), grouped.column("bucket").to_pylist(), grouped.column("count_all").to_pylist()
            ):
                counts[topic][max(0, min(buckets - 1, bucket))] += n
    except Exception as exc:
        raise RatePlotError(f"cannot read recording {dataset_path}: {exc}") from exc
    rates = {t: [c / bucket_seconds for c in counts[t]] for t in sorted(counts)}
    return RateSeries(bucket_seconds, buckets, lo, rates)


def render_svg(series: RateSeries, *, width: int = 640, height: int = 220, title: str = "message rate per topic (Hz)") -> str:
    """An inline ``<svg>``: one polyline per topic, time on x, rate on y, with a legend."""
    left, right, top, bottom = 48, 170, 20, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    esc = html.escape
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="rate-plot" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" aria-label="{esc(title)}">',
        f"<title>{esc(title)}</title>",
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fff" stroke="#999"/>',
    ]
    if not series.rates_hz:
        parts.append(f'<text x="{left + 10}" y="{top + plot_h / 2}" font-size="13">no messages in this recording</text></svg>')
        return "".join(parts)
    peak = max(max(v) for v in series.rates_hz.values()) or 1.0
    duration = series.buckets * series.bucket_seconds

    def x(i: float) -> float:
        return left + plot_w * (i / max(series.buckets - 1, 1))

    def y(v: float) -> float:
        return top + plot_h * (1 - v / peak)

    for frac in (0.0, 0.5, 1.0):
        value = peak * frac
        parts.append(f'<text x="{left - 4}" y="{y(value) + 4:.1f}" font-size="10" text-anchor="end">{value:.0f}</text>')
    parts.append(f'<text x="{left}" y="{height - 8}" font-size="10">0 s</text>')
    parts.append(f'<text x="{left + plot_w}" y="{height - 8}" font-size="10" text-anchor="end">{duration:.0f} s</text>')
    for n, (topic, values) in enumerate(series.rates_hz.items()):
        color = PALETTE[n % len(PALETTE)]
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values))
        parts.append(
            f'<polyline class="rate-line" data-topic="{esc(topic)}" fill="none" stroke="{color}" stroke-width="1.5" points="{points}"/>'
        )
        ly = top + 12 + 16 * n
        mean = sum(values) / len(values)
        parts.append(f'<line x1="{left + plot_w + 10}" y1="{ly - 4}" x2="{left + plot_w + 24}" y2="{ly - 4}" stroke="{color}" stroke-width="2"/>')
        parts.append(f'<text x="{left + plot_w + 28}" y="{ly}" font-size="11">{esc(topic)} ({mean:.0f} Hz)</text>')
    parts.append("</svg>")
    return "".join(parts)


def rate_plot_svg(dataset_path: str | os.PathLike) -> str:
    """The plot for a recording, or a short SVG saying why there is none (never raises)."""
    try:
        return render_svg(rate_series(dataset_path))
    except RatePlotError as exc:
        return (
            '<svg xmlns="http://www.w3.org/2000/svg" class="rate-plot rate-plot-error" width="640" height="40">'
            f'<text x="8" y="24" font-size="12" fill="#b00">plot unavailable: {html.escape(str(exc))[:300]}</text></svg>'
        )


def rate_plot_markdown(dataset_path: str | os.PathLike, alt: str = "message rate per topic") -> str:
    """The plot as Markdown with an inline SVG data URI, for Dagster metadata
    (``dg.MetadataValue.md(rate_plot_markdown(path))`` on the QC asset check)."""
    import base64

    encoded = base64.b64encode(rate_plot_svg(dataset_path).encode()).decode()
    return f"![{alt}](data:image/svg+xml;base64,{encoded})"

"""The per-topic message-rate plot, drawn as inline SVG from the series stored with a dataset's
inspection report (``inspection_report["rate_series"]``, :mod:`axon_dagster.domain.rate_series`).

The reviewer sees at a glance what the QC report summarises: a stall is a dip to zero on every
line, drops are a sagging line, a missing topic has no line at all. Nothing here reads a file: the
data flow computed the series where the recording was (the API runs on another machine).
"""

from __future__ import annotations

import base64
import html
from typing import Any

from axon_dagster.domain.rate_series import MalformedRateSeries, RateSeries

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")


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


def rate_plot_svg(stored: RateSeries | Any) -> str:
    """The plot of a series — a :class:`RateSeries` or its stored form (``inspection_report["rate_series"]``,
    checked here) — or a short SVG saying why there is none (never raises)."""
    if stored is None:
        return _notice("no rate series recorded (inspected before rate series were stored)")
    try:
        series = stored if isinstance(stored, RateSeries) else RateSeries.from_dict(stored)
    except MalformedRateSeries as exc:
        return _notice(f"no rate series: the stored one is malformed ({exc})", error=True)
    return render_svg(series)


def rate_plot_markdown(stored: RateSeries | Any, alt: str = "message rate per topic") -> str:
    """The plot as Markdown with an inline SVG data URI, for Dagster metadata
    (``dg.MetadataValue.md(rate_plot_markdown(series))`` on the QC asset check)."""
    encoded = base64.b64encode(rate_plot_svg(stored).encode()).decode()
    return f"![{alt}](data:image/svg+xml;base64,{encoded})"


def _notice(text: str, *, error: bool = False) -> str:
    kind, color = ("rate-plot-error", "#b00") if error else ("rate-plot-none", "#555")
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="rate-plot {kind}" width="640" height="40">'
        f'<text x="8" y="24" font-size="12" fill="{color}">{html.escape(text[:300])}</text></svg>'
    )

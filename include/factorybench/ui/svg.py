"""Server-drawn inline SVG: a sparkline per metric on the Benchmarks page and the trend plot of
the trend page. No script and no style attribute (the pages' CSP allows neither): colours come
from classes in static/ui.css, tooltips from <title>, and a point links to its run with <a>.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from markupsafe import Markup, escape


@dataclass(frozen=True)
class Point:
    value: float | None
    valid: bool  # a successful run (failed and invalid runs are drawn hollow, off the line)
    verdict: str | None  # this metric's verdict for the run: regression | improvement | pass | ...
    label: str  # the run id, for the tooltip
    at: datetime | None = None
    href: str | None = None


@dataclass(frozen=True)
class Marker:
    """A vertical line at a point's index: an accepted change or a change point."""

    index: int
    kind: str  # "accepted" | "change"
    text: str


_BARE = ("1", "count", "ratio")  # units a number is clearer without


def fmt(value: float | None, unit: str = "") -> str:
    """Three significant digits, thousands separated; '-' for no value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    magnitude = abs(value)
    text = (f"{value:,.0f}" if magnitude >= 100 else f"{value:.3g}" if magnitude >= 0.001 or value == 0
            else f"{value:.2e}")
    return f"{text} {unit}" if unit and unit not in _BARE else text


def _scale(values: list[float], lo_px: float, hi_px: float):
    """value -> y pixel (hi_px at the minimum), with a little head room; flat series sit mid-way."""
    lo, hi = min(values), max(values)
    if hi - lo < 1e-12 * max(abs(hi), 1):
        return lambda v: (lo_px + hi_px) / 2
    pad = (hi - lo) * 0.08
    lo, hi = lo - pad, hi + pad
    return lambda v: hi_px - (v - lo) / (hi - lo) * (hi_px - lo_px)


def _cls(p: Point) -> str:
    if not p.valid:
        return "pt invalid"
    return f"pt {p.verdict}" if p.verdict in ("regression", "improvement", "insufficient_data") else "pt"


def sparkline(points: list[Point], width: int = 150, height: int = 34) -> Markup:
    """The values of valid runs as a line, regressions as red dots, the latest as a dot."""
    shown = [(i, p) for i, p in enumerate(points) if p.value is not None]
    if not shown:
        return Markup('<span class="muted">no data</span>')
    y = _scale([p.value for _, p in shown], 3, height - 3)
    n = max(len(points) - 1, 1)
    x = lambda i: 3 + i / n * (width - 6)  # noqa: E731
    line = " ".join(f"{x(i):.1f},{y(p.value):.1f}" for i, p in shown if p.valid)
    dots = [(i, p) for i, p in shown if p.verdict == "regression" or not p.valid or i == shown[-1][0]]
    parts = [f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">',
             f'<polyline class="line" points="{line}"/>' if line else ""]
    for i, p in dots:
        parts.append(f'<circle class="{_cls(p)}" cx="{x(i):.1f}" cy="{y(p.value):.1f}" r="2.6">'
                     f'<title>{escape(p.label)}: {escape(fmt(p.value))}{_verdict_note(p)}</title></circle>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _verdict_note(p: Point) -> str:
    if not p.valid:
        return " (failed or invalid run)"
    return f" ({escape(p.verdict)})" if p.verdict and p.verdict != "pass" else ""


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    span = hi - lo or abs(hi) or 1.0
    step = 10 ** math.floor(math.log10(span / count))
    for mult in (1, 2, 2.5, 5, 10):
        if span / (step * mult) <= count:
            step *= mult
            break
    first = math.ceil(lo / step) * step
    return [first + k * step for k in range(int((hi - first) / step) + 1)]


def trend(points: list[Point], markers: list[Marker], unit: str, width: int = 960, height: int = 330) -> Markup:
    """The whole series: valid runs joined by a line, failed/invalid runs hollow, regressions red,
    improvements green; accepted changes and change points as labelled vertical lines. Every
    point links to its run."""
    shown = [(i, p) for i, p in enumerate(points) if p.value is not None]
    if not shown:
        return Markup('<p class="muted">No values of this metric yet.</p>')
    left, right, top, bottom = 64, 44, 26, 40
    values = [p.value for _, p in shown]
    y = _scale(values, top, height - bottom)
    n = max(len(points) - 1, 1)
    x = lambda i: left + (i / n if len(points) > 1 else 0.5) * (width - left - right)  # noqa: E731
    out = [f'<svg class="trend" width="100%" viewBox="0 0 {width} {height}" preserveAspectRatio="xMidYMid meet" '
           f'role="img" aria-label="trend">']
    lo, hi = min(values), max(values)
    for t in (_ticks(lo, hi) if hi > lo else [lo]):
        ty = y(t)
        if top - 1 <= ty <= height - bottom + 1:
            out.append(f'<line class="grid" x1="{left}" x2="{width - right}" y1="{ty:.1f}" y2="{ty:.1f}"/>'
                       f'<text class="tick" x="{left - 6}" y="{ty + 4:.1f}" text-anchor="end">{escape(fmt(t))}</text>')
    out.append(f'<text class="axis" x="{left}" y="{top - 10}">{escape(unit)}</text>')
    step = math.ceil(len(points) / max((width - left - right) // 110, 1))
    for i in range(0, len(points), step):
        if points[i].at is not None:
            out.append(f'<text class="tick" x="{x(i):.1f}" y="{height - bottom + 18}" text-anchor="middle">'
                       f'{points[i].at:%m-%d %H:%M}</text>')
    for m in markers:
        mx = x(m.index) - (0.5 / n * (width - left - right) if m.kind == "change" else 0)
        ty = top + 10 + (12 if m.kind == "change" else 0)  # a change point's label goes under an accepted change's
        out.append(f'<line class="mark {m.kind}" x1="{mx:.1f}" x2="{mx:.1f}" y1="{top}" y2="{height - bottom}"/>'
                   f'<text class="mark-label {m.kind}" x="{mx + 4:.1f}" y="{ty}">{escape(m.text)}</text>')
    line = " ".join(f"{x(i):.1f},{y(p.value):.1f}" for i, p in shown if p.valid)
    if line:
        out.append(f'<polyline class="line" points="{line}"/>')
    for i, p in shown:
        when = f" {p.at:%Y-%m-%d %H:%M}" if p.at else ""
        dot = (f'<circle class="{_cls(p)}" cx="{x(i):.1f}" cy="{y(p.value):.1f}" r="4.5">'
               f'<title>{escape(p.label)}{when}: {escape(fmt(p.value, unit))}{_verdict_note(p)}</title></circle>')
        out.append(f'<a href="{escape(p.href)}" class="pt-link">{dot}</a>' if p.href else dot)
    out.append("</svg>")
    return Markup("".join(out))

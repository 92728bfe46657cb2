"""The plots, drawn server-side by matplotlib as inline SVG (no JavaScript; see docs/REPORTS.md).

Each function returns one `<svg>` element. Ids inside it carry the plot's name as a prefix, so
several SVGs in one page never share an id (clip paths and markers are referenced by id).
Figures use matplotlib's object API, never pyplot: no global state, safe in any worker thread.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib import rc_context
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

from factorybench.report.measures import LATENCIES, STATS, Knee, Timeline, ecdf, log_scale
from factorybench.results import metrics as catalog
from factorybench.results.query import AnnotationRow, SeriesPoint

# Okabe-Ito: distinguishable with every common colour-vision deficiency.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000", "#F0E442")
BAD, GOOD, GREY, ACCEPTED = "#C62828", "#1A7F37", "#9AA4AE", "#6A3D9A"
WIDTH = 12.0  # inches; every figure has this width so text is the same size in all of them
RC = {
    "svg.fonttype": "none", "svg.hashsalt": "factorybench", "font.family": "DejaVu Sans", "font.size": 9,
    "axes.titlesize": 10, "axes.titleweight": "bold", "axes.labelsize": 9, "axes.spines.top": False,
    "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.35, "grid.linewidth": 0.6,
    "legend.fontsize": 8, "legend.frameon": False, "lines.linewidth": 1.6, "xtick.labelsize": 8,
    "ytick.labelsize": 8,
}
_ID = re.compile(r'(\bid="|url\(#|href="#)([^")]+)')


def to_svg(fig: Figure, name: str) -> str:
    """The figure as an inline `<svg>` element with ids prefixed by `name`, sized by CSS."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    text = _ID.sub(lambda m: f"{m.group(1)}{name}-{m.group(2)}", text)
    text = re.sub(r'<svg ([^>]*?)width="[^"]*" height="[^"]*"', r'<svg \1', text, count=1)
    return text.replace("<svg ", f'<svg role="img" aria-label="{name}" ', 1)


def _figure(rows: int, cols: int, height: float, **kw) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(WIDTH, height), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False, **kw)
    return fig, axes


def _colors(n: int) -> list:
    if n <= len(PALETTE):
        return list(PALETTE[:n])
    from matplotlib import colormaps

    return [colormaps["viridis"](x) for x in np.linspace(0, 0.9, n)]


# --- latency -------------------------------------------------------------------------------

def cdf_svg(series: Sequence[tuple[str, Mapping[str, np.ndarray]]], name: str = "cdf") -> str:
    """Latency CDFs, one panel per latency (TTFT, ITL, TPOT, E2E), one line per series."""
    with rc_context(RC):
        fig, axes = _figure(1, 4, 3.1)
        colors = _colors(len(series))
        for ax, (short, title) in zip(axes[0], LATENCIES):
            drawn = False
            pooled = np.concatenate([v[short] for _, v in series] or [np.empty(0)])
            for (label, values), color in zip(series, colors):
                x, y = ecdf(values[short])
                if x.size:
                    ax.step(x, y, where="post", color=color, label=label)
                    drawn = True
            ax.set_title(f"{title} (n={pooled.size:,})" if pooled.size else title)
            ax.set_xlabel("ms")
            ax.set_ylim(0, 1.01)
            for q in (0.5, 0.9, 0.99):
                ax.axhline(q, color=GREY, lw=0.6, ls=":")
            if drawn and log_scale(pooled):
                ax.set_xscale("log")
            if not drawn:
                ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes, color=GREY)
        axes[0][0].set_ylabel("fraction of requests \u2264 x")
        if len(series) > 1:
            _legend(fig, axes.flat)
        return to_svg(fig, name)


def percentiles_svg(values: Mapping[str, Mapping[str, float | None]], name: str = "percentiles",
                    labels: Sequence[str] | None = None,
                    groups: Sequence[Mapping[str, Mapping[str, float | None]]] = ()) -> str:
    """Bars of p50..p99.9 per latency; with `groups` (e.g. run A and B), grouped bars."""
    sets = [values, *groups]
    names = list(labels or [""] * len(sets))
    with rc_context(RC):
        fig, axes = _figure(1, 4, 2.8)
        colors = _colors(len(sets)) if len(sets) > 1 else [PALETTE[0]]
        width = 0.8 / len(sets)
        x = np.arange(len(STATS))
        for ax, (short, title) in zip(axes[0], LATENCIES):
            top = 0.0
            for i, (vals, color) in enumerate(zip(sets, colors)):
                ys = np.array([np.nan if vals.get(short, {}).get(s) is None else vals[short][s] for s, _ in STATS])
                bars = ax.bar(x + (i - (len(sets) - 1) / 2) * width, np.nan_to_num(ys), width * 0.92, color=color,
                              label=names[i] or None)
                if len(sets) == 1:
                    ax.bar_label(bars, labels=[_short(v) for v in ys], fontsize=7, padding=1)
                top = max(top, np.nanmax(ys) if np.isfinite(ys).any() else 0.0)
            ax.set_xticks(x, [t for _, t in STATS])
            ax.set_title(title)
            ax.set_ylim(0, top * 1.15 or 1)
            ax.grid(axis="x", visible=False)
        axes[0][0].set_ylabel("ms")
        if len(sets) > 1:
            _legend(fig, axes.flat[:1])
        return to_svg(fig, name)


def _short(v: float) -> str:
    if not np.isfinite(v):
        return ""
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"


# --- sweeps --------------------------------------------------------------------------------

def sweep_svg(rows: list[dict[str, Any]], axis: tuple[str, str], slo: Mapping[str, float], knee: Knee | None,
              name: str = "sweep") -> str:
    """Throughput and p50/p99 latencies against the load, with the SLO lines and the knee."""
    key, xlabel = axis
    rows = sorted((r for r in rows if r.get(key) is not None), key=lambda r: r[key])
    x = np.array([r[key] for r in rows], dtype=float)

    def col(k: str) -> np.ndarray:
        return np.array([np.nan if r.get(k) is None else r[k] for r in rows], dtype=float)

    with rc_context(RC):
        fig, axes = _figure(1, 4, 3.2)
        ax = axes[0][0]
        ax.plot(x, col("request_rate"), "o-", color=PALETTE[0], label="request rate")
        if np.isfinite(col("goodput_rate")).any():
            ax.plot(x, col("goodput_rate"), "s--", color=PALETTE[2], ms=4, label="goodput (meets SLO)")
        ax.set_ylabel("req/s")
        ax.set_title("Throughput")
        tok = ax.twinx()
        tok.plot(x, col("output_tokens_per_s"), "^:", color=PALETTE[1], ms=4, label="output tok/s")
        tok.set_ylabel("output tok/s", color=PALETTE[1])
        tok.grid(False)
        tok.spines["right"].set_visible(True)
        extra = dict(zip(*reversed(tok.get_legend_handles_labels())))
        second = "tpot" if np.isfinite(col("tpot_p50_ms")).any() else "itl"
        for ax, short in zip(axes[0][1:], ("ttft", second, "e2e")):
            p50, p99 = col(f"{short}_p50_ms"), col(f"{short}_p99_ms")
            ax.plot(x, p50, "o-", color=PALETTE[0], label="p50")
            ax.plot(x, p99, "o-", color=PALETTE[5], label="p99")
            limit = slo.get(f"{short}_ms")
            if limit is not None:
                ax.axhline(limit, color=BAD, ls="--", lw=1.2, label="SLO (p99)")
            ax.set_title(dict(LATENCIES)[short])
            ax.set_ylabel("ms")
            finite = np.concatenate((p50[np.isfinite(p50)], p99[np.isfinite(p99)]))
            if finite.size and finite.min() > 0 and finite.max() / finite.min() > 30:
                ax.set_yscale("log")
        at = next((r[key] for r in rows if knee and r["index"] == knee.index), None)
        for ax in axes[0]:
            ax.set_xlabel(xlabel)
            if at is not None:
                ax.axvline(at, color="#333", ls="-.", lw=1, label="knee")
        _legend(fig, axes.flat, extra)
        return to_svg(fig, name)


# --- over time -----------------------------------------------------------------------------

def timeline_svg(tl: Timeline, name: str = "timeline") -> str:
    """Completions per second (errors in red) and requests in flight, over the run's wall time."""
    with rc_context(RC):
        fig, axes = _figure(2, 1, 4.2, sharex=True, height_ratios=(3, 2))
        top, low = axes[0][0], axes[1][0]
        end = tl.t[-1] if tl.t.size else 0.0
        for i, (start, label) in enumerate(tl.boundaries):
            stop = tl.boundaries[i + 1][0] if i + 1 < len(tl.boundaries) else end
            if i % 2:
                for ax in (top, low):
                    ax.axvspan(start, stop, color="#eef1f4", lw=0, zorder=0)
            if len(tl.boundaries) > 1 and (stop - start) > end / 40:
                top.text((start + stop) / 2, 1.0, label, transform=top.get_xaxis_transform(), ha="center",
                         va="bottom", fontsize=7, color="#555", clip_on=False)
        for w in tl.warmup_end:
            top.axvline(w, color=GREY, ls=":", lw=1)
        top.step(tl.starts, tl.ok_rate, where="post", color=PALETTE[0], label="successful req/s")
        if tl.error_rate.any():
            top.bar(tl.starts, tl.error_rate, width=tl.width, align="edge", color=BAD, alpha=0.8, label="errors/s")
        top.set_ylabel(f"req/s ({tl.width:g} s bins)")
        low.fill_between(tl.t, tl.in_flight, step="post", color=PALETTE[4], alpha=0.5, lw=0)
        low.step(tl.t, tl.in_flight, where="post", color=PALETTE[0], lw=1)
        low.set_ylabel("in flight")
        low.set_xlabel("seconds since the run started (steps end to end; dotted: end of warm-up)")
        low.set_xlim(0, end or 1)
        _legend(fig, [top])
        return to_svg(fig, name)


def trend_svg(history: Mapping[str, list[SeriesPoint]], annotations: Sequence[AnnotationRow], current: str,
              recipe_hash: str, baselines: Mapping[str, float], name: str = "trend") -> str:
    """Each primary metric over the recipe's runs: regressions, improvements, accepted changes,
    other recipe versions and this run marked; the dotted line is the baseline median."""
    metrics = [m for m, pts in history.items() if any(p.value is not None and p.at for p in pts)]
    cols = 3 if len(metrics) > 4 else max(len(metrics), 1)
    rows = max(1, -(-len(metrics) // cols))
    with rc_context(RC):
        fig, axes = _figure(rows, cols, 2.5 * rows + 0.4)
        for ax in axes.flat[len(metrics):]:
            ax.set_visible(False)
        for ax, metric in zip(axes.flat, metrics):
            pts = [p for p in history[metric] if p.value is not None and p.at]
            t = np.array([p.at for p in pts], dtype=object)
            v = np.array([p.value for p in pts], dtype=float)
            same = np.array([p.recipe_hash == recipe_hash for p in pts])
            valid = np.array([p.valid for p in pts])
            kinds = (
                (same & valid, dict(color=PALETTE[0], marker="o", s=16), "run"),
                (~same & valid, dict(color=GREY, marker="o", s=14), "other recipe hash"),
                (~valid, dict(color=GREY, marker="x", s=18), "failed/invalid run"),
            )
            ax.plot(t[same], v[same], color=PALETTE[0], lw=0.8, alpha=0.6)
            for sel, style, label in kinds:
                if sel.any():
                    ax.scatter(t[sel], v[sel], label=label, zorder=3, **style)
            for verdict, color, marker in (("regression", BAD, "v"), ("improvement", GOOD, "^")):
                sel = np.array([p.verdict == verdict for p in pts])
                if sel.any():
                    ax.scatter(t[sel], v[sel], s=60, color=color, marker=marker, zorder=4, label=verdict)
            mine = np.array([p.dag_run_id == current for p in pts])
            if mine.any():
                ax.scatter(t[mine], v[mine], s=110, facecolors="none", edgecolors="#000", lw=1.4, zorder=5,
                           label="this run")
            if metric in baselines:
                ax.axhline(baselines[metric], color=PALETTE[1], ls=":", lw=1.2, label="baseline median")
            for note in annotations:
                if note.at is not None and t.size and note.at >= min(t) and note.at <= max(t):
                    ax.axvline(note.at, color=ACCEPTED, ls="--", lw=1)
                    ax.annotate("accepted", (note.at, 1), xycoords=("data", "axes fraction"), xytext=(2, -9),
                                textcoords="offset points", fontsize=7, color=ACCEPTED)
            unit = catalog.define(metric).unit
            ax.set_title(metric)
            ax.set_ylabel(unit)
            locator = AutoDateLocator(maxticks=6)
            ax.xaxis.set_major_locator(locator)
            ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
            _pad(ax, v)
        _legend(fig, list(axes.flat)[:len(metrics)])
        return to_svg(fig, name)


def _legend(fig: Figure, axes: Iterable[Any], extra: Mapping[str, Any] | None = None) -> None:
    """One legend for the whole figure, below it: each label once, whichever panel drew it."""
    handles: dict[str, Any] = {}
    for ax in axes:
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    for label, h in (extra or {}).items():
        handles.setdefault(label, h)
    if handles:
        fig.legend(list(handles.values()), list(handles.keys()), loc="outside lower center",
                   ncols=min(len(handles), 8), fontsize=8)


def _pad(ax, v: np.ndarray) -> None:
    """Y limits with room for the markers; a flat series gets a band of +-5 % around it."""
    finite = v[np.isfinite(v)]
    if not finite.size:
        return
    lo, hi = float(finite.min()), float(finite.max())
    span = hi - lo or max(abs(hi) * 0.05, 1e-9)
    ax.set_ylim(lo - span * 0.2, hi + span * 0.25)


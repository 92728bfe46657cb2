"""Judging a run: gather the evidence of each metric, correct across metrics, decide.

The caller (the results layer) selects the comparable past runs (same recipe
hash or name, checks.comparable_by) and the band of the run's cluster; this
module only computes, so it is easy to test and to rerun on stored data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np

from factorybench.analysis.changepoint import ChangePoint, best_split, change_points, ttest_p
from factorybench.analysis.config import ChecksConfig, Direction, MetricSettings, ReferenceBand
from factorybench.analysis.evidence import ChangeEvidence, Evidence, Key, ReferenceCheck
from factorybench.analysis.stats import MAD_SCALE, Baseline, benjamini_hochberg, mann_whitney
from factorybench.analysis.verdict import MetricVerdict, RunVerdict, decide

Samples = Sequence[float] | np.ndarray


@dataclass(frozen=True)
class Point:
    """One past run's value of one metric; invalid runs are kept for their keys but never judged against."""

    key: Key
    value: float
    time: datetime | None = None
    valid: bool = True


@dataclass(frozen=True)
class History:
    """Past comparable runs of one metric, oldest first, without the run being judged.

    `accepted` holds the keys of runs annotated "accepted change": the first run
    of a level someone declared normal. Only runs at or after the latest one count,
    for the baseline and for change points alike.
    """

    points: Sequence[Point] = ()
    accepted: frozenset[Key] = frozenset()

    def __post_init__(self):
        object.__setattr__(self, "points", tuple(self.points))
        object.__setattr__(self, "accepted", frozenset(self.accepted))
        times = [p.time for p in self.points if p.time is not None]
        if any(a > b for a, b in zip(times, times[1:])):
            raise ValueError("history points must be ordered oldest first")

    def regime(self) -> list[Point]:
        """Valid, finite points at or after the latest accepted change."""
        start = max((i for i, p in enumerate(self.points) if p.key in self.accepted), default=0)
        return [p for p in self.points[start:] if p.valid and math.isfinite(p.value)]


def judge_metric(name: str, direction: Direction | None, current_value: float | None, history: History,
                 config: ChecksConfig, current_samples: Samples | None = None,
                 baseline_samples: Mapping[Key, Samples] | None = None,
                 reference: ReferenceBand | None = None) -> MetricVerdict:
    """The verdict of one metric of one run, without correction across metrics (see judge_run).

    `direction` is the catalogue's ("lower" is better for latencies); a
    checks.metrics override wins. `baseline_samples` maps past run keys to their
    raw per-request samples: only the baseline runs' samples are pooled.
    """
    s = config.settings(name, direction)
    ev = gather(name, s, current_value, history, config, current_samples, baseline_samples, reference)
    return decide(ev, s, config, name in config.primary)


def judge_run(current: Mapping[str, float | None], histories: Mapping[str, History],
              directions: Mapping[str, Direction], config: ChecksConfig,
              samples: Mapping[str, tuple[Samples, Mapping[Key, Samples]]] | None = None,
              references: Mapping[str, ReferenceBand] | None = None) -> RunVerdict:
    """Every metric of a run, with Benjamini-Hochberg across its metrics.

    Each method's p-values (point test, Mann-Whitney, change point) form one
    family, adjusted across the metrics that have one. `samples` maps a
    metric to (this run's samples, {past run key: samples}); `references` are the
    bands of this run's cluster (config.references_for(profile)).
    """
    samples, references = samples or {}, references or {}
    settings = {m: config.settings(m, directions.get(m)) for m in current}
    evs = [gather(m, settings[m], v, histories.get(m, History()), config, *samples.get(m, (None, None)),
                  references.get(m)) for m, v in current.items()]
    point = benjamini_hochberg([e.point_p for e in evs])
    mw = benjamini_hochberg([e.samples.p_value if e.samples else None for e in evs])
    cp = benjamini_hochberg([e.change.p_value if e.change else None for e in evs])
    evs = [replace(e, point_p_adjusted=point[i], samples=e.samples and replace(e.samples, p_adjusted=mw[i]),
                   change=e.change and replace(e.change, p_adjusted=cp[i])) for i, e in enumerate(evs)]
    return RunVerdict(tuple(decide(e, settings[e.metric], config, e.metric in config.primary) for e in evs))


def gather(name: str, s: MetricSettings, value: float | None, history: History, config: ChecksConfig,
           current_samples: Samples | None, baseline_samples: Mapping[Key, Samples] | None,
           reference: ReferenceBand | None) -> Evidence:
    """Runs every enabled method on one metric; p-values are left unadjusted."""
    if value is None or not math.isfinite(value):
        return Evidence(name, s.direction, None)
    value = float(value)
    regime = history.regime()
    ev = Evidence(name, s.direction, value)
    if reference is not None and "reference" in config.methods:
        ev = replace(ev, reference=ReferenceCheck.of(reference, value))
    base = regime[-config.window:]
    if len(base) >= 2:
        b = Baseline.of([p.value for p in base], [p.key for p in base], config.mad_floor)
        z, delta = b.z(value), value - b.median
        p = b.p_value(value)
        ev = replace(ev, baseline=b, z=z, point_p=p, point_p_adjusted=p, delta=delta,
                     delta_rel=delta / abs(b.median) if b.median else None)
        if "mannwhitney" in config.methods and current_samples is not None and baseline_samples:
            pooled = [np.asarray(baseline_samples[k], dtype=float) for k in b.keys if k in baseline_samples]
            if len(current_samples) and sum(p.size for p in pooled):
                ev = replace(ev, samples=mann_whitney(current_samples, np.concatenate(pooled)))
    cp = config.changepoint
    tail = regime[-(cp.window - 1):]
    series = np.array([p.value for p in tail] + [value])
    found: list[ChangePoint] = []
    if "changepoint" in config.methods and len(series) >= 2 * cp.min_segment:
        found = change_points(series, cp.window, cp.max_pvalue, cp.min_magnitude, cp.min_segment)
        ev = replace(ev, change=_change(series, [p.key for p in tail], found, cp.min_segment))
    if len(series) >= 3:
        ev = replace(ev, noise=_noise(series, [c.index for c in found]))
    return ev


def _change(series: np.ndarray, keys: list[Key], found: list[ChangePoint], min_segment: int) -> ChangeEvidence | None:
    """Net change from the first segment to the last one, or else the strongest candidate split.

    A change point always leaves min_segment points after it, so its index is a
    past run's key, never the run being judged.
    """
    if not found:
        cand = best_split(series, min_segment)
        if cand is None:
            return None
        return ChangeEvidence(keys[cand.index], False, cand.p_value, cand.p_value, cand.mean_before,
                              cand.mean_after, cand.magnitude)
    first, last = series[:found[0].index], series[found[-1].index:]
    before, after = float(first.mean()), float(last.mean())
    net = (after - before) / abs(before) if before else 0.0
    began = next((c for c in found if np.sign(c.magnitude) == np.sign(net)), found[0])
    p = ttest_p(first, last)
    return ChangeEvidence(keys[began.index], True, p, p, before, after, net, tuple(keys[c.index] for c in found))


def _noise(series: np.ndarray, cuts: list[int]) -> float | None:
    """Robust CV (1.4826 MAD / |median|) of the residuals around each segment's median.

    Residuals, so that a real step does not count as noise.
    """
    bounds = [0, *cuts, len(series)]
    residuals = np.concatenate([series[a:b] - np.median(series[a:b]) for a, b in zip(bounds, bounds[1:])])
    level = abs(float(np.median(series)))
    return MAD_SCALE * float(np.median(np.abs(residuals))) / level if level else None

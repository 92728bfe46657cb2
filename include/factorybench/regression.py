"""A run's metrics against the recipe's history: the bridge between the results and the analysis.

The analysis (factorybench.analysis) only computes; this module picks what it computes on, through
the read API: the comparable past runs (same recipe hash or name, per `checks.comparable_by`), the
accepted-change annotations, the baseline runs' raw samples for Mann-Whitney, and the cluster's
reference bands. The archive task judges a run before it is stored; `factorybench history`
re-judges a whole stored series the same way.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from factorybench.analysis import History, Point, RunVerdict, change_points, judge_run
from factorybench.analysis.config import ChecksConfig, Verdict
from factorybench.results import metrics as catalog
from factorybench.results.query import Results, SeriesPoint


@dataclass(frozen=True)
class Subject:
    """The run being judged, described by what comparability needs."""

    recipe: str
    recipe_hash: str
    workload_hash: str
    cluster: str
    checks: ChecksConfig
    at: datetime | None = None  # only runs before this count as history (None: all stored runs)
    exclude: str | None = None  # this run's DAG run id, when it is already stored


@dataclass
class Judgement:
    verdict: str  # pass | regression | improvement | insufficient_data
    failed: bool
    line: str
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "failed": self.failed, "line": self.line, **self.detail}


def overall(run: RunVerdict, checks: ChecksConfig) -> str:
    """The run's one-word verdict from its primary metrics: a regression anywhere wins, then
    insufficient data, then improvement."""
    primary = [v.verdict for v in run.metrics if v.primary]
    for word in (Verdict.REGRESSION, Verdict.INSUFFICIENT_DATA, Verdict.IMPROVEMENT):
        if word in primary:
            return word.value
    return Verdict.PASS.value


def directions(names) -> dict[str, str]:
    """Catalogue directions of the metrics that can be judged (direction 'none' is reported only)."""
    return {n: d.direction for n in names if (d := catalog.define(n)).direction != "none"}


class _Reader:
    """Reads what judging one run needs, caching each past run's samples table once."""

    def __init__(self, results: Results, subject: Subject):
        self.results, self.subject = results, subject

    def series(self, metric: str) -> list[SeriesPoint]:
        s, by = self.subject, self.subject.checks.comparable_by
        points = self.results.series(s.recipe, metric, recipe_hash=s.recipe_hash if by == "hash" else None,
                                     workload_hash=s.workload_hash if by == "workload" else None)
        return [p for p in points if p.dag_run_id != s.exclude and (s.at is None or p.at is None or p.at < s.at)]

    def accepted(self, points: list[SeriesPoint]) -> frozenset[str]:
        """Each accepted change marks the first comparable run at or after its time."""
        keys = set()
        for note in self.results.annotations(self.subject.recipe):
            first = next((p for p in points if p.dag_run_id == note.dag_run_id or
                          (p.at is not None and note.at is not None and p.at >= note.at)), None)
            if first is not None:
                keys.add(first.dag_run_id)
        return frozenset(keys)

    @functools.lru_cache(maxsize=256)
    def samples(self, run_id: int, column: str) -> np.ndarray:
        return self.results.sample_values(run_id, column)


def judge(results: Results, subject: Subject, current: dict[str, float | None],
          current_samples: dict[str, np.ndarray] | None = None) -> Judgement:
    """The verdict of one run's whole-run metrics. `current_samples` maps a sample column
    (ttft_ms, e2e_ms, ...) to this run's raw values, for Mann-Whitney."""
    checks = subject.checks
    dirs = directions(current)
    reader = _Reader(results, subject)
    histories, samples = {}, {}
    for metric in dirs:
        points = reader.series(metric)
        accepted = reader.accepted(points)
        histories[metric] = History([Point(p.dag_run_id, p.value, p.at, p.valid) for p in points
                                     if p.value is not None], accepted)
        column = catalog.sample_field(metric)
        if column and current_samples is not None and column in current_samples and "mannwhitney" in checks.methods:
            regime = histories[metric].regime()[-checks.window:]
            by_key = {p.dag_run_id: p.run_id for p in points}
            samples[metric] = (current_samples[column],
                               {pt.key: reader.samples(by_key[pt.key], column) for pt in regime})
    verdict = judge_run({m: current[m] for m in dirs}, histories, dirs, checks, samples,
                        checks.references_for(subject.cluster))
    word = overall(verdict, checks)
    failing = [v.message for v in verdict.failing(checks)]
    return Judgement(word, verdict.failed(checks), verdict.summary_line(checks),
                     {**verdict.to_dict(), "failing": failing})


def series_report(results: Results, recipe: str, metric: str, checks: ChecksConfig) -> dict[str, Any]:
    """A recipe's stored series with each run's stored verdict, and the change points over it
    (since the latest accepted change), for `factorybench history`."""
    points = results.series(recipe, metric)
    subject = Subject(recipe, "", "", "", checks)
    accepted = _Reader(results, subject).accepted(points)
    valid = [p for p in points if p.valid and p.value is not None]
    start = max((i for i, p in enumerate(valid) if p.dag_run_id in accepted), default=0)
    regime = valid[start:]
    cp = checks.changepoint
    found = change_points(np.array([p.value for p in regime]), cp.window, cp.max_pvalue, cp.min_magnitude,
                          cp.min_segment) if len(regime) >= 2 * cp.min_segment else []
    d = catalog.define(metric)
    return {
        "recipe": recipe, "metric": metric, "unit": d.unit, "direction": d.direction,
        "points": [p.to_dict() for p in points],
        "accepted_changes": sorted(accepted),
        "change_points": [{"run": regime[c.index].dag_run_id, "at": regime[c.index].to_dict()["at"], **c.to_dict()}
                          for c in found],
    }

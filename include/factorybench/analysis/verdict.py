"""The combination rule: evidence in, one verdict per metric out, and the run's verdict.

- regression (improvement) when any of these points the bad (good) way:
  1. reference: the value is outside the cluster's band;
  2. point test: |z| >= z_threshold, |delta| >= min_effect and the run's
     prediction-interval p (BH-adjusted) < alpha; when raw samples exist,
     Mann-Whitney must agree (BH-adjusted p < alpha, median shift >= min_effect
     the same way);
  3. change point: the series since the latest accepted change has significant
     change points, and its last segment differs from its first by >= min_effect
     (t-test p, BH-adjusted, <= changepoint.max_pvalue).
  A regression signal wins over an improvement signal.
- insufficient_data otherwise when the baseline has fewer than min_runs runs
  (and no band decides); or a bad shift >= min_effect was seen with
  p <= suspect_pvalue without passing the rule ("not_significant"); or the
  run-to-run spread exceeds max_noise ("too_noisy"), so a pass would mean little.
- pass otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

from factorybench.analysis.config import ChecksConfig, MetricSettings, Verdict
from factorybench.analysis.evidence import Evidence, clean


@dataclass(frozen=True)
class MetricVerdict:
    """One metric's verdict, why, and the evidence behind it."""

    metric: str
    verdict: Verdict
    primary: bool  # only primary metrics can fail the run
    decided_by: tuple[str, ...]  # methods that fired, or: min_runs, not_significant, too_noisy, no_value
    message: str  # one line for people: metric, baseline, delta, p-value, change-point run
    evidence: Evidence

    def short(self) -> str:
        """`ttft_p50_ms +10.2% since run 20`; a `*` marks a metric that is not primary."""
        ev, name = self.evidence, self.metric + ("" if self.primary else "*")
        if self.verdict == Verdict.INSUFFICIENT_DATA:
            return f"{name} ({self.decided_by[0]})"
        if "changepoint" in self.decided_by and ev.change:
            return f"{name} {ev.change.magnitude:+.1%} since run {ev.change.key}"
        if ev.delta_rel is not None:
            return f"{name} {ev.delta_rel:+.1%}"
        return name

    def to_dict(self) -> dict:
        return clean({"metric": self.metric, "verdict": self.verdict.value, "primary": self.primary,
                      "decided_by": self.decided_by, "message": self.message,
                      "evidence": self.evidence.to_dict()})


@dataclass(frozen=True)
class RunVerdict:
    """All metric verdicts of one run; only primary metrics can fail it."""

    metrics: tuple[MetricVerdict, ...]

    def __getitem__(self, metric: str) -> MetricVerdict:
        for v in self.metrics:
            if v.metric == metric:
                return v
        raise KeyError(metric)

    def failing(self, config: ChecksConfig) -> list[MetricVerdict]:
        """Primary metrics whose verdict is listed in config.fail_on."""
        return [v for v in self.metrics if v.primary and v.verdict.value in config.fail_on]

    def failed(self, config: ChecksConfig) -> bool:
        return bool(self.failing(config))

    def summary_line(self, config: ChecksConfig) -> str:
        """One line for the DAG run note, e.g. `FAILED: regression ttft_p50_ms +10.2% since run 20; 9 pass`."""
        parts = []
        for verdict in (Verdict.REGRESSION, Verdict.IMPROVEMENT):
            hits = [v.short() for v in self.metrics if v.verdict == verdict]
            if hits:
                parts.append(f"{verdict.value} {', '.join(hits)}")
        # Insufficient data is common (a new recipe): primary metrics by reason, the others as a count.
        unsure = [v for v in self.metrics if v.verdict == Verdict.INSUFFICIENT_DATA]
        for reason in dict.fromkeys(v.decided_by[0] for v in unsure if v.primary):
            names = [v.metric for v in unsure if v.primary and v.decided_by[0] == reason]
            parts.append(f"insufficient_data ({reason}) {', '.join(names)}")
        if others := sum(not v.primary for v in unsure):
            parts.append(f"insufficient_data on {others} reported-only metrics")
        parts.append(f"{sum(v.verdict == Verdict.PASS for v in self.metrics)} pass")
        starred = any(not v.primary and v.verdict in (Verdict.REGRESSION, Verdict.IMPROVEMENT) for v in self.metrics)
        primary = [v for v in self.metrics if v.primary]
        if self.failed(config):
            word = "FAILED"
        elif primary and all(v.verdict == Verdict.INSUFFICIENT_DATA for v in primary):
            word = "not judged"  # nothing passed either: say so rather than "passed"
        else:
            word = "passed"
        return f"{word}: {'; '.join(parts)}" + (" (* reported only)" if starred else "")

    def to_dict(self) -> dict:
        return {"metrics": [v.to_dict() for v in self.metrics]}


def decide(ev: Evidence, s: MetricSettings, config: ChecksConfig, primary: bool) -> MetricVerdict:
    """Applies the combination rule of this module's docstring to one metric's evidence."""
    def verdict(v: Verdict, by: tuple[str, ...], why: str) -> MetricVerdict:
        text = f"{ev.metric} {v.value}: {why}" + (f"; {_evidence_text(ev)}" if ev.value is not None else "")
        return MetricVerdict(ev.metric, v, primary, by, text, ev)

    if ev.value is None:
        return verdict(Verdict.INSUFFICIENT_DATA, ("no_value",), "no value measured")
    bad = 1 if s.direction == "lower" else -1  # the sign of a harmful change of the value
    signals: dict[str, int] = {}  # method -> +1 harmful, -1 helpful
    ref = ev.reference
    if ref and ref.position != "inside":
        signals["reference"] = bad if ref.position == "above" else -bad
    n = ev.baseline.n if ev.baseline else 0
    enough = n >= config.min_runs
    if enough:
        signals.update(_statistical(ev, s, config, bad))
    for sign, v in ((1, Verdict.REGRESSION), (-1, Verdict.IMPROVEMENT)):
        fired = tuple(m for m, h in signals.items() if h == sign)
        if fired:
            return verdict(v, fired, " and ".join(_fired_text(ev, m) for m in fired))
    if not enough:
        few = f"{n} baseline runs < min_runs {config.min_runs}"
        if ref:
            return verdict(Verdict.PASS, ("reference",), f"inside the reference band ({few}, no statistics)")
        return verdict(Verdict.INSUFFICIENT_DATA, ("min_runs",), few)
    suspect = _suspect(ev, s, config, bad)
    if suspect:
        return verdict(Verdict.INSUFFICIENT_DATA, ("not_significant",), suspect)
    if s.max_noise is not None and ev.noise is not None and ev.noise > s.max_noise:
        return verdict(Verdict.INSUFFICIENT_DATA, ("too_noisy",),
                       f"too noisy to judge: run-to-run spread {ev.noise:.1%} > max_noise {s.max_noise:.1%}")
    return verdict(Verdict.PASS, (), "no significant change")


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def _big(rel: float | None, min_effect: float) -> bool:
    """At least min_effect; a baseline of 0 has no relative change, so any change counts."""
    return rel is None or abs(rel) >= min_effect


def _statistical(ev: Evidence, s: MetricSettings, config: ChecksConfig, bad: int) -> dict[str, int]:
    """Signals of the point test (z-score, with Mann-Whitney when samples exist) and of change points."""
    out: dict[str, int] = {}
    mw = ev.samples
    mw_ok = (mw is not None and mw.p_adjusted < config.alpha and abs(mw.median_shift) >= s.min_effect
             and (ev.delta is None or _sign(mw.median_shift) == _sign(ev.delta)))
    if "zscore" in config.methods:
        if _point_ok(ev, s, config) and (mw is None or mw_ok):
            out["zscore"] = _sign(ev.delta) * bad
            if mw is not None:
                out["mannwhitney"] = out["zscore"]
    elif mw_ok:
        out["mannwhitney"] = _sign(mw.median_shift) * bad
    c, cp = ev.change, config.changepoint
    if (c and c.significant and c.p_adjusted <= cp.max_pvalue
            and abs(c.magnitude) >= max(s.min_effect, cp.min_magnitude)):
        out["changepoint"] = _sign(c.magnitude) * bad
    return out


def _point_ok(ev: Evidence, s: MetricSettings, config: ChecksConfig) -> bool:
    """This run is off its baseline: far in robust units, significant, and big enough to matter."""
    return (ev.z is not None and ev.point_p_adjusted is not None and bool(ev.delta)
            and abs(ev.z) >= s.z_threshold and ev.point_p_adjusted < config.alpha
            and _big(ev.delta_rel, s.min_effect))


def _suspect(ev: Evidence, s: MetricSettings, config: ChecksConfig, bad: int) -> str | None:
    """A harmful shift of at least min_effect that did not pass the rule but is too strong to call a pass.

    The point test (or Mann-Whitney, or the change-point test, or the best
    candidate split, whose p-value is corrected for the positions searched) has
    p <= suspect_pvalue, or |z| >= z_threshold with the samples disagreeing.
    """
    seen = []  # (p, text)
    if (ev.delta and ev.point_p_adjusted is not None and _sign(ev.delta) == bad
            and _big(ev.delta_rel, s.min_effect)):
        mw, shift = ev.samples, f"shift of {_pct(ev.delta_rel)}"
        if mw is not None and _point_ok(ev, s, config):
            seen.append((mw.p_adjusted, f"{shift} (z={ev.z:+.1f}, p_adj={ev.point_p_adjusted:.2g}) not confirmed "
                                        f"by the samples (Mann-Whitney p_adj={mw.p_adjusted:.2g}, "
                                        f"median shift {mw.median_shift:+.1%})"))
        elif ev.point_p_adjusted <= config.suspect_pvalue:
            seen.append((ev.point_p_adjusted, f"{shift} not significant "
                                              f"(z={ev.z:+.1f}, p_adj={ev.point_p_adjusted:.2g})"))
    c = ev.change
    if (c and _sign(c.magnitude) == bad and abs(c.magnitude) >= s.min_effect
            and c.p_adjusted <= config.suspect_pvalue):
        seen.append((c.p_adjusted, f"shift of {c.magnitude:+.1%} since run {c.key} not significant "
                                   f"(p_adj={c.p_adjusted:.2g})"))
    return min(seen, key=lambda t: t[0])[1] if seen else None


def _pct(rel: float | None) -> str:
    return "n/a" if rel is None else f"{rel:+.1%}"


def _fired_text(ev: Evidence, method: str) -> str:
    if method == "reference" and ev.reference:
        r = ev.reference
        unit = f" {r.unit}" if r.unit else ""
        return f"{ev.value:.4g}{unit} {r.position} the reference band {r.low:.4g}..{r.high:.4g}"
    if method == "zscore":
        return f"{_pct(ev.delta_rel)} off the baseline (z={ev.z:+.1f})"
    if method == "mannwhitney" and ev.samples:
        return f"samples shifted {ev.samples.median_shift:+.1%} (p_adj={ev.samples.p_adjusted:.2g})"
    if method == "changepoint" and ev.change:
        return f"{ev.change.magnitude:+.1%} since run {ev.change.key} (p_adj={ev.change.p_adjusted:.2g})"
    return method


def _evidence_text(ev: Evidence) -> str:
    """The evidence on one line: value, baseline, delta, p-values, change point, band, noise."""
    parts = [f"value {ev.value:.4g}"]
    if b := ev.baseline:
        parts.append(f"baseline median {b.median:.4g} (MAD {b.mad:.3g}, {b.n} runs {b.keys[0]}..{b.keys[-1]}), "
                     f"delta {_pct(ev.delta_rel)}, z={ev.z:+.1f}, p={ev.point_p:.2g}")
    if m := ev.samples:
        parts.append(f"Mann-Whitney p={m.p_value:.2g} (adj {m.p_adjusted:.2g}), median shift {m.median_shift:+.1%}, "
                     f"Cliff's delta {m.cliffs_delta:+.2f}, n={m.n_current}/{m.n_baseline}")
    if c := ev.change:
        what = "change" if c.significant else "candidate change (not significant)"
        parts.append(f"{what} at run {c.key}: {c.mean_before:.4g} -> {c.mean_after:.4g} ({c.magnitude:+.1%}, "
                     f"p={c.p_value:.2g})")
    if r := ev.reference:
        parts.append(f"band {r.low:.4g}..{r.high:.4g}{' ' + r.unit if r.unit else ''}: {r.position}")
    if ev.noise is not None:
        parts.append(f"spread {ev.noise:.1%}")
    return "; ".join(parts)

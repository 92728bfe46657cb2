"""Verdicts per metric and per run: the combination rule on synthetic nightly series."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import numpy as np
import pytest
from scipy import stats

from factorybench.analysis import ChecksConfig, ReferenceBand, Verdict, judge_metric, judge_run
from factorybench.analysis.judge import History, Point

from .synth import make_history, make_series

CFG = ChecksConfig()


def judge_last(x: np.ndarray, direction: str = "lower", cfg: ChecksConfig = CFG, **kw):
    """Judges the last run of x against the runs before it."""
    return judge_metric("ttft_p50_ms", direction, float(x[-1]), make_history(x[:-1], **kw), cfg)


@pytest.mark.parametrize("direction", ["lower", "higher"])
@pytest.mark.parametrize("n", [30, 50])
def test_stationary_series_rarely_regress(direction, n):
    """5 % noise, 100 seeds: at most 1 % regressions (and at most 1 % spurious improvements)."""
    verdicts = [judge_last(make_series(seed, n, 0.05), direction).verdict for seed in range(100)]
    assert verdicts.count(Verdict.REGRESSION) <= 1
    assert verdicts.count(Verdict.IMPROVEMENT) <= 1


def test_step_is_a_regression_that_began_at_its_run():
    """A 10 % step at run 20 of 30 (2 % noise): regression in all seeds, change at run 20 +- 1."""
    for seed in range(20):
        v = judge_last(make_series(seed, 30, 0.02, step_at=20, step=0.10))
        assert v.verdict == Verdict.REGRESSION and "changepoint" in v.decided_by, (seed, v.message)
        assert any(abs(k - 20) <= 1 for k in v.evidence.change.keys), (seed, v.message)
        assert v.evidence.change.magnitude == pytest.approx(0.10, abs=0.03)
        assert "since run" in v.message and "p_adj=" in v.message


def test_step_in_5pct_noise_is_flagged_in_most_seeds_never_as_improvement():
    outcomes = [judge_last(make_series(seed, 30, 0.05, step_at=20, step=0.10)) for seed in range(20)]
    flagged = [v for v in outcomes if v.verdict == Verdict.REGRESSION]
    assert len(flagged) >= 12
    assert sum(abs(v.evidence.change.key - 20) <= 1 for v in flagged) >= 0.75 * len(flagged)
    assert all(v.verdict != Verdict.IMPROVEMENT for v in outcomes)


def test_step_hidden_in_noise_is_never_silently_passed():
    """A 10 % step in 20 % noise: insufficient evidence, with what was seen, or found with its p-value."""
    for seed in range(20):
        v = judge_last(make_series(seed, 30, 0.20, step_at=20, step=0.10))
        assert v.verdict != Verdict.PASS, (seed, v.message)
        if v.verdict == Verdict.INSUFFICIENT_DATA:
            assert v.decided_by[0] in ("too_noisy", "not_significant")
            assert "%" in v.message and "p=" in v.message
        else:
            assert v.evidence.change.p_adjusted <= CFG.changepoint.max_pvalue


def test_a_shift_seen_but_not_significant_says_so():
    base = [100, 102, 98, 101, 99, 100, 103, 97, 100, 101]
    v = judge_metric("ttft_p50_ms", "lower", 107.0, make_history(base), CFG)
    assert v.verdict == Verdict.INSUFFICIENT_DATA and v.decided_by == ("not_significant",)
    assert "shift of +7.0% not significant" in v.message and "p_adj=" in v.message
    assert 1e-3 < v.evidence.point_p < 0.05
    # the same shift in the good direction is simply a pass
    assert judge_metric("ttft_p50_ms", "lower", 93.0, make_history(base), CFG).verdict == Verdict.PASS


@pytest.mark.parametrize("direction, step, expected", [
    ("higher", 0.10, Verdict.IMPROVEMENT), ("higher", -0.10, Verdict.REGRESSION),
    ("lower", -0.10, Verdict.IMPROVEMENT), ("lower", 0.10, Verdict.REGRESSION),
])
def test_direction_decides_regression_or_improvement(direction, step, expected):
    x = make_series(5, 30, 0.02, step_at=20, step=step)
    assert judge_last(x, direction).verdict == expected


def test_override_direction_flips_the_verdict():
    cfg = ChecksConfig.model_validate({"metrics": {"ttft_p50_ms": {"direction": "higher"}}})
    x = make_series(5, 30, 0.02, step_at=20, step=0.10)
    assert judge_last(x, "lower", cfg).verdict == Verdict.IMPROVEMENT


def test_jump_at_the_last_run_is_caught_by_the_point_test():
    x = make_series(6, 30, 0.02)
    x[-1] *= 1.3
    v = judge_last(x)
    assert v.verdict == Verdict.REGRESSION and v.decided_by == ("zscore",)
    assert v.evidence.z > 4 and v.evidence.point_p < 1e-3 and v.evidence.delta_rel == pytest.approx(0.3, abs=0.05)


def test_accepted_change_resets_the_baseline():
    x = make_series(7, 40, 0.02, step_at=20, step=0.10)
    assert judge_last(x).verdict == Verdict.REGRESSION
    for accepted in (20, 25):
        v = judge_last(x, accepted=[accepted])
        assert v.verdict == Verdict.PASS, v.message
        assert v.evidence.baseline.keys[0] >= accepted
    # a later regression after the accepted one is still found
    x[32:] *= 1.10
    v = judge_last(x, accepted=[20])
    assert v.verdict == Verdict.REGRESSION and abs(v.evidence.change.key - 32) <= 1


def test_too_few_runs_is_insufficient_data():
    v = judge_last(make_series(8, 4, 0.02))
    assert v.verdict == Verdict.INSUFFICIENT_DATA and v.decided_by == ("min_runs",)
    assert "3 baseline runs < min_runs 5" in v.message
    # invalid runs do not count, and neither do runs before an accepted change
    assert judge_last(make_series(8, 12, 0.02), invalid=range(5)).verdict == Verdict.PASS
    assert judge_last(make_series(8, 12, 0.02), invalid=range(7)).decided_by == ("min_runs",)
    assert judge_last(make_series(8, 12, 0.02), accepted=[8]).decided_by == ("min_runs",)


def test_reference_band_decides_without_history():
    band = ReferenceBand.model_validate([50, -0.2, 0.2, "ms"])
    empty = History()
    high = judge_metric("ttft_p50_ms", "lower", 65.0, empty, CFG, reference=band)
    assert high.verdict == Verdict.REGRESSION and high.decided_by == ("reference",)
    assert "above the reference band 40..60" in high.message
    assert judge_metric("ttft_p50_ms", "lower", 35.0, empty, CFG, reference=band).verdict == Verdict.IMPROVEMENT
    inside = judge_metric("ttft_p50_ms", "lower", 55.0, empty, CFG, reference=band)
    assert inside.verdict == Verdict.PASS and inside.decided_by == ("reference",)
    rate = judge_metric("request_rate", "higher", 85.0, empty, CFG, reference=ReferenceBand.model_validate([100, -0.1, 0.1]))
    assert rate.verdict == Verdict.REGRESSION


def test_reference_violation_beats_a_quiet_history():
    x = make_series(9, 20, 0.02) / 2  # a stable 50 ms
    v = judge_metric("ttft_p50_ms", "lower", 50.5, make_history(x), CFG,
                     reference=ReferenceBand.model_validate([40, -0.1, 0.1, "ms"]))
    assert v.verdict == Verdict.REGRESSION and v.decided_by == ("reference",)


def samples_case(shift: float, seed: int = 10):
    """10 stable runs of 1,000 samples each (10,000 pooled) and a current run of 10,000 samples."""
    rng = np.random.default_rng(seed)
    past = {k: rng.lognormal(np.log(50), 0.3, 1000) for k in range(10)}
    medians = [float(np.median(s)) for s in past.values()]
    current = rng.lognormal(np.log(50 * (1 + shift)), 0.3, 10_000)
    return make_history(medians), past, current


@pytest.mark.parametrize("shift, expected", [(0.003, Verdict.PASS), (0.10, Verdict.REGRESSION)])
def test_tiny_shift_on_many_samples_is_not_a_regression(shift, expected):
    """asv's lesson: 0.3 % on 10,000 samples a side is significant (p < 1e-10) but does not matter."""
    rng = np.random.default_rng(12)
    base = rng.normal(50, 1, 10_000)
    current = rng.normal(50 * (1 + shift), 1, 10_000)
    cfg = ChecksConfig(methods=["mannwhitney"])
    v = judge_metric("ttft_p50_ms", "lower", float(np.median(current)), make_history([50.0] * 10), cfg,
                     current, {k: base[k::10] for k in range(10)})  # 10 runs, 10,000 samples pooled
    mw = v.evidence.samples
    assert mw.p_value == pytest.approx(stats.mannwhitneyu(current, base).pvalue) and mw.p_value < 1e-10
    assert (mw.n_current, mw.n_baseline) == (10_000, 10_000)
    assert mw.median_shift == pytest.approx(shift, abs=0.002)
    assert v.verdict == expected


def test_point_test_needs_the_samples_to_agree():
    """A run 10 % off its baseline whose samples did not move is reported, not called a regression."""
    hist, past, current = samples_case(0.0)
    x = float(np.median(current)) * 1.10
    v = judge_metric("ttft_p50_ms", "lower", x, hist, CFG, current, past)
    assert v.verdict == Verdict.INSUFFICIENT_DATA and v.decided_by == ("not_significant",)
    assert "not confirmed by the samples" in v.message
    assert judge_metric("ttft_p50_ms", "lower", x, hist, CFG).verdict == Verdict.REGRESSION


def test_benjamini_hochberg_across_metrics():
    """A p of 4e-4 is a regression alone, but not among 20 metrics where the rest are quiet."""
    base = [100, 102, 98, 101, 99, 100, 103, 97, 100, 101]
    b = np.array(base, dtype=float)
    t = stats.t.isf(2e-4, len(b) - 1)  # two-sided p = 4e-4
    value = b.mean() + t * b.std(ddof=1) * np.sqrt(1 + 1 / len(b))
    alone = judge_metric("m0", "lower", value, make_history(base), CFG)
    assert alone.evidence.point_p == pytest.approx(4e-4) and alone.verdict == Verdict.REGRESSION

    names = [f"m{i}" for i in range(20)]
    current = {"m0": value, **{m: 100.0 + (i % 3 - 1) for i, m in enumerate(names[1:])}}
    hists = {m: make_history(base) for m in names}
    run = judge_run(current, hists, dict.fromkeys(names, "lower"), CFG)
    m0 = run["m0"]
    assert m0.evidence.point_p_adjusted == pytest.approx(4e-4 * 20)
    assert m0.verdict == Verdict.INSUFFICIENT_DATA and m0.decided_by == ("not_significant",)
    # with 2 metrics the adjustment is mild and the regression stands
    two = judge_run({"m0": value, "m1": 100.0}, hists, {"m0": "lower", "m1": "lower"}, CFG)
    assert two["m0"].verdict == Verdict.REGRESSION


def test_only_primary_metrics_fail_the_run():
    x = make_series(13, 30, 0.02, step_at=20, step=0.10)
    quiet = make_series(14, 30, 0.02)
    hists = {"ttft_p50_ms": make_history(x[:-1]), "gpu_util": make_history(x[:-1]),
             "request_rate": make_history(quiet[:-1])}
    dirs = {"ttft_p50_ms": "lower", "gpu_util": "lower", "request_rate": "higher"}

    reported = judge_run({"gpu_util": x[-1], "request_rate": quiet[-1]}, hists, dirs, CFG)
    assert reported["gpu_util"].verdict == Verdict.REGRESSION and not reported["gpu_util"].primary
    assert not reported.failed(CFG)
    assert reported.summary_line(CFG).startswith("passed: regression gpu_util* +")

    failing = judge_run({"ttft_p50_ms": x[-1], "request_rate": quiet[-1]}, hists, dirs, CFG)
    assert failing.failed(CFG) and [v.metric for v in failing.failing(CFG)] == ["ttft_p50_ms"]
    line = failing.summary_line(CFG)
    assert line.startswith("FAILED: regression ttft_p50_ms +") and "since run 2" in line and line.endswith("1 pass")


def test_fail_on_insufficient_data():
    hists = {"ttft_p50_ms": make_history([50.0, 51.0])}
    run = judge_run({"ttft_p50_ms": 50.5, "itl_p50_ms": None}, hists, {"ttft_p50_ms": "lower", "itl_p50_ms": "lower"}, CFG)
    assert [v.decided_by for v in run.metrics] == [("min_runs",), ("no_value",)]
    assert not run.failed(CFG)
    assert run.failed(ChecksConfig(fail_on=["regression", "insufficient_data"]))
    with pytest.raises(KeyError):
        run["e2e_p50_ms"]


def test_unknown_direction_is_an_error_naming_the_metric():
    with pytest.raises(ValueError, match="mystery"):
        judge_run({"mystery": 1.0}, {}, {}, CFG)


def test_history_must_be_in_order():
    t0 = datetime(2026, 1, 1)
    with pytest.raises(ValueError, match="oldest first"):
        History([Point(1, 1.0, t0 + timedelta(days=1)), Point(2, 1.0, t0)])


def test_verdicts_are_json_ready():
    x = make_series(15, 30, 0.02, step_at=20, step=0.10)
    hist, past, current = samples_case(0.10)
    run = judge_run(
        {"ttft_p50_ms": x[-1], "itl_p50_ms": float(np.median(current)), "zero": 0.0},
        {"ttft_p50_ms": make_history(x[:-1]), "itl_p50_ms": hist, "zero": make_history([0.0] * 10)},
        {"ttft_p50_ms": "lower", "itl_p50_ms": "lower", "zero": "lower"}, CFG,
        samples={"itl_p50_ms": (current, past)},
        references={"ttft_p50_ms": ReferenceBand.model_validate([100, -0.5, 0.5, "ms"])})
    data = run.to_dict()
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    ttft = data["metrics"][0]
    assert ttft["verdict"] == "regression" and ttft["evidence"]["change"]["significant"] is True
    assert ttft["evidence"]["reference"]["position"] == "inside"
    assert data["metrics"][1]["evidence"]["samples"]["n_current"] == 10_000
    assert ttft["evidence"]["baseline"]["keys"] == list(range(19, 29))

"""Robust baseline, Mann-Whitney effect sizes, Benjamini-Hochberg."""

from __future__ import annotations

import numpy as np
import pytest

from factorybench.analysis.stats import Baseline, benjamini_hochberg, mann_whitney


def test_baseline_is_robust_to_one_odd_run():
    b = Baseline.of([100, 101, 99, 100, 102, 98, 100, 250], list("abcdefgh"), mad_floor=0.0)
    assert b.median == 100 and b.mad == 1.0 and b.scale == pytest.approx(1.4826)
    assert b.z(106) == pytest.approx(6 / 1.4826)
    assert b.keys == tuple("abcdefgh") and b.n == 8


def test_constant_baseline_uses_the_relative_floor():
    b = Baseline.of([50.0] * 6, range(6), mad_floor=0.01)
    assert b.mad == 0 and b.scale == 0.5
    assert b.z(51.0) == pytest.approx(2.0)
    zero = Baseline.of([0.0] * 6, range(6), mad_floor=0.01)
    assert zero.z(0.0) == 0 and zero.z(1.0) == float("inf")
    assert zero.p_value(0.0) == 1.0 and zero.p_value(1.0) == 0.0


def test_prediction_p_value_matches_the_t_interval():
    b = Baseline.of([10, 12, 11, 9, 13], range(5), mad_floor=0.0)  # mean 11, s = 1.58
    # t = (15 - 11) / (1.5811 * sqrt(1.2)) = 2.309, df 4 -> two-sided p = 0.0822
    assert b.p_value(15) == pytest.approx(0.0822, abs=5e-4)
    assert b.p_value(11) == pytest.approx(1.0)


def test_mann_whitney_reports_size_as_well_as_p():
    rng = np.random.default_rng(0)
    base = rng.normal(100, 10, 10_000)
    tiny = mann_whitney(base * 1.003 + rng.normal(0, 0.01, base.size), rng.normal(100, 10, 10_000))
    assert abs(tiny.median_shift) < 0.01 and abs(tiny.cliffs_delta) < 0.05
    big = mann_whitney(rng.normal(110, 10, 500), base)
    assert big.p_value < 1e-20 and big.median_shift == pytest.approx(0.10, abs=0.02)
    assert 0.4 < big.cliffs_delta < 0.6  # P(X > Y) - P(X < Y) for a one-sigma shift is about 0.52
    assert (big.n_current, big.n_baseline, big.p_adjusted) == (500, 10_000, big.p_value)
    with pytest.raises(ValueError):
        mann_whitney([], base)


def test_benjamini_hochberg_by_hand():
    # sorted 0.005, 0.01, 0.03, 0.04 -> *4/rank 0.02, 0.02, 0.04, 0.04 (already monotone)
    assert benjamini_hochberg([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    # monotone step-up: 0.049*3/2 = 0.0735 is lowered to the next rank's 0.05
    assert benjamini_hochberg([0.049, 0.05, 0.001]) == pytest.approx([0.05, 0.05, 0.003])
    assert benjamini_hochberg([None, 0.5, None, 0.9]) == [None, pytest.approx(0.9), None, pytest.approx(0.9)]
    assert benjamini_hochberg([0.8, 0.9, 1.0]) == pytest.approx([1.0, 1.0, 1.0])
    assert benjamini_hochberg([]) == [] and benjamini_hochberg([None]) == [None]

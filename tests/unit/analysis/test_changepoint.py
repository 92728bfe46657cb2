"""E-divisive change points: few false alarms, the step where it is, no spikes, no edges."""

from __future__ import annotations

import json

import numpy as np
import pytest

from factorybench.analysis.changepoint import best_split, change_points

from .synth import make_series


@pytest.mark.parametrize("n", [30, 50, 100])
def test_stationary_series_rarely_get_a_change_point(n):
    """5 % noise, 100 seeds: at most 1 % of the series get any change point at all."""
    alarms = sum(bool(change_points(make_series(seed, n, 0.05))) for seed in range(100))
    assert alarms <= 1


def test_step_is_placed_at_its_run():
    """A 10 % step at run 20 of 30 in 2 % noise: one change point, at 20 +- 1, in 19 of 20 seeds."""
    exact = 0
    for seed in range(20):
        cps = change_points(make_series(seed, 30, 0.02, step_at=20, step=0.10))
        assert any(abs(c.index - 20) <= 1 for c in cps), seed
        exact += len(cps) == 1 and abs(cps[0].index - 20) <= 1
    assert exact >= 19


def test_step_in_5pct_noise_is_usually_found_with_its_evidence():
    """The same step is only 2 sigma at 5 % noise: most seeds still find it, near run 20."""
    near = 0
    for seed in range(20):
        cps = change_points(make_series(seed, 30, 0.05, step_at=20, step=0.10))
        hit = [c for c in cps if abs(c.index - 20) <= 1]
        if hit:
            near += 1
            c = hit[0]
            assert c.p_value <= 0.001 and c.mean_after > c.mean_before and 0.03 < c.magnitude < 0.2
    assert near >= 13


def test_steps_in_a_long_series_are_found_across_windows():
    x = make_series(1, 150, 0.02)
    x[60:] *= 1.10
    x[110:] *= 0.85
    cps = change_points(x, window=50)
    assert [c.index for c in cps] == pytest.approx([60, 110], abs=1)
    assert cps[0].magnitude > 0 > cps[1].magnitude


@pytest.mark.parametrize("where, width", [(25, 1), (25, 2), (49, 1), (48, 2), (47, 1), (0, 1), (0, 2), (2, 1)])
@pytest.mark.parametrize("factor", [1.5, 3.0, 0.5])
def test_spikes_and_edges_are_not_change_points(where, width, factor):
    """A spike of one or two runs, anywhere, including the first and last runs of the series."""
    for seed in range(5):
        x = make_series(seed, 50, 0.02)
        x[where:where + width] *= factor
        assert change_points(x, min_segment=3) == [], seed


def test_three_runs_at_a_new_level_are_enough():
    x = make_series(3, 50, 0.01)
    x[47:] *= 1.3
    assert [c.index for c in change_points(x, min_segment=3)] == [47]


def test_min_magnitude_drops_small_but_significant_changes():
    x = make_series(2, 40, 0.002, step_at=20, step=0.02)
    assert [c.index for c in change_points(x)] == [20]
    assert change_points(x, min_magnitude=0.05) == []


def test_best_split_corrects_its_p_value_for_the_search():
    x = make_series(4, 30, 0.05)
    cand = best_split(x)
    assert cand is not None and 3 <= cand.index <= 27
    assert cand.p_value > 0.01  # nominal p of the best of 25 positions, times 25
    assert best_split(x[:5]) is None


def test_short_and_constant_series():
    assert change_points([1.0, 2.0, 3.0]) == []
    assert change_points([5.0] * 20) == []
    cps = change_points([5.0] * 10 + [6.0] * 10)
    assert [(c.index, c.p_value, c.magnitude) for c in cps] == [(10, 0.0, pytest.approx(0.2))]


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="finite"):
        change_points([1.0, float("nan"), 2.0] * 5)
    with pytest.raises(ValueError, match="one-dimensional"):
        change_points(np.ones((4, 4)))
    with pytest.raises(ValueError, match="min_segment"):
        change_points(np.ones(20), window=5, min_segment=3)


def test_change_point_is_json_ready():
    cp = change_points([5.0] * 10 + [6.0] * 10)[0]
    assert json.loads(json.dumps(cp.to_dict()))["magnitude"] == pytest.approx(0.2)
    zero = change_points([0.0] * 10 + [1.0] * 10)[0]
    assert zero.to_dict()["magnitude"] is None

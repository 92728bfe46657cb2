"""Energy from a power series with a known integral and from a counter with a known increase."""

from __future__ import annotations

import math

import pytest

from factorybench.monitoring import energy


def test_power_series_with_a_known_integral():
    # 300 W + 100 W * sin(2 pi t / 60) over one full minute at 1 s steps: 18 000 J (the sine cancels)
    points = [(1000.0 + t, 300 + 100 * math.sin(2 * math.pi * t / 60)) for t in range(61)]
    assert energy.integrate(points) == pytest.approx(18_000, abs=1e-6)
    # a linear ramp 100 W -> 400 W over 30 s: trapezoids are exact, 7500 J
    ramp = [(t / 2, 100 + 10 * t / 2) for t in range(61)]
    assert energy.integrate(ramp) == pytest.approx(7500)


def test_counter_with_a_known_increase_and_a_reset():
    mj = [(0, 5_000_000.0), (5, 5_600_000.0), (10, 6_200_000.0), (15, 300_000.0), (20, 900_000.0)]
    # 600 000 + 600 000 + 300 000 (reset: counted from zero) + 600 000 mJ
    assert energy.counter_increase(mj) == 2_100_000
    found = energy.choose([mj, [(0, 0.0), (20, 1_000_000.0)]], [], (None, None))
    assert found.source == "dcgm_energy_counter" and found.joules == pytest.approx(3100.0)
    assert found.detail["gpus"] == 2


def test_sources_in_order_of_preference():
    power = [[(0.0, 200.0), (10.0, 200.0)]]
    assert energy.choose([], power, (5.0, 9.0)).source == "dcgm_power_integral"
    assert energy.choose([[(0, 7.0), (10, 7.0)]], power, (None, None)).joules == pytest.approx(2000)  # flat counter
    assert energy.choose([], [], (1000.0, 1600.0)).to_dict()["joules"] == 600
    assert energy.choose([], [], (1000.0, 1600.0)).source == "slurm_sacct"
    nothing = energy.choose([], [], (0.0, 0.0))  # SLURM without AcctGatherEnergyType reports 0
    assert nothing.joules is None and nothing.source is None


def test_sacct_output():
    assert energy.parse_sacct("123456\n") == 123456
    assert energy.parse_sacct("\n") is None and energy.parse_sacct("Unknown\n") is None

"""The numbers behind the plots: CDF thinning, the timeline, the sweep's knee, number formats."""

from __future__ import annotations

import copy

import numpy as np
import pyarrow as pa
import pytest

from factorybench.load.stats import Distribution
from factorybench.report import measures
from factorybench.report.page import fmt
from factorybench.report.synthetic import synthetic_run


def test_ecdf_is_thinned_but_keeps_the_tail():
    values = np.random.default_rng(1).lognormal(4, 0.5, 50_000)
    x, y = measures.ecdf(values, max_points=300)
    assert len(x) <= 301 and np.all(np.diff(x) >= 0) and np.all(np.diff(y) > 0)
    assert x[-1] == values.max() and y[-1] == 1.0
    assert x[np.searchsorted(y, 0.99)] == pytest.approx(np.quantile(values, 0.99))


def test_timeline_lays_steps_end_to_end():
    """Each step's clock starts at 0; the second step starts where the first one ended."""
    table = pa.table({"step": [0, 0, 1, 1], "sent_s": [0.0, 0.5, 0.0, 1.0], "done_s": [1.0, 2.0, 1.5, 3.0],
                      "error": [None, "http_5xx", None, None], "warmup": [True, False, False, False]})
    tl = measures.timeline(table, {0: "a", 1: "b"}, bins=10)
    assert tl.boundaries == [(0.0, "a"), (2.0, "b")]
    assert tl.t[-1] == 5.0 and tl.warmup_end == [1.0]
    at = {x: tl.in_flight[np.searchsorted(tl.t, x, side="right") - 1] for x in (0.0, 1.6, 2.6, 4.9)}
    assert at == {0.0: 1, 1.6: 1, 2.6: 1, 4.9: 1}
    assert tl.ok_rate.sum() * tl.width == 3 and tl.error_rate.sum() * tl.width == 1


def _with_p99(load: dict, ttft: list[float], slo: dict | None) -> dict:
    load = copy.deepcopy(load)
    load["config"]["slo"] = slo or {}
    for step, p99 in zip(load["steps"], ttft):
        step["summary"]["ttft_ms"] = Distribution(count=10, p50=p99 / 2, p99=p99).model_dump()
        step["summary"]["tpot_ms"] = Distribution(count=10, p50=10, p99=12).model_dump()
        step["summary"]["e2e_ms"] = Distribution(count=10, p50=p99 * 2, p99=p99 * 3).model_dump()
        step["summary"]["error_rate"] = 0.0
        step["summary"]["valid"] = True
    return load


@pytest.fixture(scope="module")
def sweep():
    return synthetic_run(700, sweep=True)[0]


def test_knee_with_an_slo_is_the_highest_load_meeting_every_p99(sweep):
    rows = measures.step_rows(sweep)
    assert measures.sweep_axis(rows) == ("request_rate", "achieved request rate (req/s)")  # closed + open steps
    by_rate = sorted(rows, key=lambda r: r["request_rate"])
    p99 = {r["index"]: 100.0 + 50 * rank for rank, r in enumerate(by_rate)}  # grows with the achieved rate
    load = _with_p99(sweep, [p99[r["index"]] for r in rows], {"ttft_ms": 260.0})
    knee = measures.knee(load)
    assert knee.rule == "slo" and knee.index == by_rate[3]["index"]  # p99 250 passes, 300 fails
    assert measures.knee(_with_p99(sweep, [999.0] * len(rows), {"ttft_ms": 260.0})) is None


def test_knee_without_an_slo_is_the_highest_power(sweep):
    rows = measures.step_rows(sweep)
    load = _with_p99(sweep, [100.0] * len(rows), None)
    knee = measures.knee(load)
    best = max(rows, key=lambda r: r["request_rate"])  # same latency everywhere: the most throughput wins
    assert knee.rule == "power" and knee.index == best["index"]


def test_single_step_runs_have_no_knee():
    load, _ = synthetic_run(50)
    assert measures.knee(load) is None


@pytest.mark.parametrize("value, unit, text", [
    (None, "", "\u2013"), (267.61, "ms", "267.6"), (1234.5, "ms", "1,234"), (14.164, "ms", "14.16"),
    (0.0123, "ms", "0.0123"), (9965, "count", "9,965"), (7, "", "7"), (0.0031, "ratio", "0.31%"),
    (float("nan"), "", "\u2013"), (True, "", "yes")])
def test_number_formats(value, unit, text):
    assert fmt(value, unit) == text

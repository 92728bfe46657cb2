"""Counters, gauges and histograms of a run of scrapes, checked against hand-computed values."""

from __future__ import annotations

import pytest

from factorybench.monitoring import series
from factorybench.monitoring.names import LLAMACPP, VLLM, watched
from factorybench.monitoring.server import derive


def scrape(t: float, text: str) -> series.Scrape:
    return series.parse(text, t)


def test_parse_keeps_names_and_labels_and_drops_created():
    s = scrape(1.0, 'vllm:generation_tokens_total{model_name="m"} 12\n'
                    'vllm:generation_tokens_created{model_name="m"} 1.7e9\nllamacpp:requests_processing 3\n')
    assert s.samples == {("vllm:generation_tokens_total", (("model_name", "m"),)): 12.0,
                         ("llamacpp:requests_processing", ()): 3.0}
    assert s.total("vllm:generation_tokens_total") == 12 and s.total("absent") is None


def test_keep_lines_takes_exact_names_only():
    text = ("# HELP x\nvllm:num_requests_running{a=\"1\"} 2\nvllm:num_requests_running_extra 9\n"
            "vllm:num_requests_waiting 1\npython_gc_objects_collected_total 5\n")
    kept = series.keep_lines(text, ["vllm:num_requests_running", "vllm:num_requests_waiting"])
    assert kept.splitlines() == ['vllm:num_requests_running{a="1"} 2', "vllm:num_requests_waiting 1"]


def test_increase_sums_label_sets_survives_a_restart_and_counts_late_series_from_zero():
    scrapes = [scrape(0, 'c_total{e="0"} 100\n'),
               scrape(1, 'c_total{e="0"} 130\nc_total{e="1"} 5\n'),  # e=1 created on first use
               scrape(2, 'c_total{e="0"} 10\nc_total{e="1"} 7\n'),  # e=0 restarted: 10 new since
               scrape(3, 'c_total{e="0"} 15\nc_total{e="1"} 7\n')]
    assert series.increase(scrapes, "c_total") == (30 + 10 + 5) + (5 + 2)
    assert series.increase(scrapes, "absent") is None


def test_rate_is_taken_over_the_stretch_where_the_counter_moved():
    scrapes = [scrape(t, f"g_total {v}\n") for t, v in [(0, 0), (1, 0), (2, 50), (3, 100), (4, 100), (5, 100)]]
    assert series.active(scrapes, "g_total") == (1, 3)
    assert series.rate(scrapes, "g_total") == pytest.approx(100 / 2)
    assert series.rate(scrapes[:2], "g_total") is None


def test_gauge_peak_and_mean_use_the_first_name_present():
    scrapes = [scrape(t, f"vllm:gpu_cache_usage_perc {v}\n") for t, v in [(0, 0.1), (1, 0.5), (2, 0.3)]]
    peak, mean = series.gauge(scrapes, ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"))
    assert peak == 0.5 and mean == pytest.approx(0.3)


def hist(t: float, counts: dict[str, float]) -> series.Scrape:
    return scrape(t, "".join(f'h_bucket{{le="{le}"}} {n}\n' for le, n in counts.items()))


def test_quantiles_interpolate_inside_buckets_like_histogram_quantile():
    before = hist(0, {"0.1": 5, "0.2": 5, "0.4": 5, "+Inf": 5})  # five observations before the run
    after = hist(1, {"0.1": 15, "0.2": 35, "0.4": 45, "+Inf": 45})  # 10 in (0,.1], 20 in (.1,.2], 10 in (.2,.4]
    cumulative = series.buckets([before, after], "h")
    assert cumulative == [(0.1, 10), (0.2, 30), (0.4, 40), (float("inf"), 40)]
    assert series.quantile(0.25, cumulative) == pytest.approx(0.1)  # rank 10 closes the first bucket
    assert series.quantile(0.5, cumulative) == pytest.approx(0.1 + 0.1 * (20 - 10) / 20)
    assert series.quantile(0.9, cumulative) == pytest.approx(0.2 + 0.2 * (36 - 30) / 10)
    assert series.quantile(0.5, [(0.1, 0), (float("inf"), 0)]) is None
    assert series.quantile(0.99, [(0.1, 1), (float("inf"), 10)]) == 0.1  # in +Inf: the highest finite bound


def test_vllm_figures_from_two_scrapes():
    first = ('vllm:generation_tokens_total{model_name="m"} 10\nvllm:prompt_tokens_total{model_name="m"} 40\n'
             'vllm:num_requests_running{model_name="m"} 0\nvllm:num_requests_waiting{model_name="m"} 0\n'
             'vllm:time_to_first_token_seconds_bucket{le="0.1",model_name="m"} 1\n'
             'vllm:time_to_first_token_seconds_bucket{le="+Inf",model_name="m"} 1\n')
    busy = first.replace(" 10\n", " 60\n").replace("running{model_name=\"m\"} 0", "running{model_name=\"m\"} 4")
    last = (busy.replace(" 60\n", " 110\n").replace(" 40\n", " 140\n")
            .replace('le="0.1",model_name="m"} 1', 'le="0.1",model_name="m"} 5')
            .replace('le="+Inf",model_name="m"} 1', 'le="+Inf",model_name="m"} 5')
            .replace("running{model_name=\"m\"} 4", "running{model_name=\"m\"} 0"))
    figures = derive([scrape(0, first), scrape(2, busy), scrape(4, last)], VLLM)
    assert figures["server_generation_tokens"] == 100 and figures["server_prompt_tokens"] == 100
    assert figures["server_output_tokens_per_s"] == pytest.approx(100 / 4)
    assert figures["server_running_peak"] == 4 and figures["server_running_mean"] == pytest.approx(4 / 3)
    assert figures["server_ttft_p50_ms"] == pytest.approx(50.0)  # 4 observations in (0, 0.1]
    assert "server_requests" not in figures  # not exposed here


def test_llamacpp_roles_are_its_b11669_names():
    assert LLAMACPP.generation_tokens == "llamacpp:tokens_predicted_total"
    assert LLAMACPP.running == "llamacpp:requests_processing" and LLAMACPP.waiting == "llamacpp:requests_deferred"
    assert LLAMACPP.ttft is None  # llama.cpp exposes no latency histograms
    assert set(watched(LLAMACPP)) == {"llamacpp:tokens_predicted_total", "llamacpp:prompt_tokens_total",
                                      "llamacpp:requests_processing", "llamacpp:requests_deferred",
                                      "llamacpp:kv_cache_usage_ratio"}

"""vLLM-named Prometheus metrics of one simulator app.

The hot path only adds to plain ints and bucket lists (one bisect per observation, no
locks: everything runs on one event loop); prometheus_client builds the text exposition
from them at scrape time, through a collector on a per-app CollectorRegistry so that
several apps in one process (tests) never share series.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                    HistogramMetricFamily, Metric)

from factorybench.sim.model import Scheduler

# vLLM's own bucket boundaries (v0.10 era), so dashboards built for vLLM read ours alike.
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0,
                2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
               5.0, 7.5, 10.0, 20.0, 40.0, 80.0)
REQUEST_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0,
                   50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Histogram:
    """Non-cumulative bucket counts; cumulated only when scraped."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]):
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, value: float, n: int = 1) -> None:
        """Record `n` observations of `value` (a chunk of n tokens gives n ITL samples)."""
        self.counts[bisect_left(self.bounds, value)] += n
        self.total += value * n

    def buckets(self) -> list[tuple[str, int]]:
        out, acc = [], 0
        for bound, count in zip(self.bounds, self.counts):
            acc += count
            out.append((repr(float(bound)), acc))
        out.append(("+Inf", acc + self.counts[-1]))
        return out


class SimMetrics:
    """Counters and histograms of one app; gauges are read from the scheduler when scraped."""

    def __init__(self, model_name: str, scheduler: Scheduler):
        self.model_name = model_name
        self.scheduler = scheduler
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.preemptions = 0  # the simulator reserves KV up front, so it never preempts
        self.finished: dict[str, int] = {"stop": 0, "length": 0, "abort": 0}
        self.ttft = Histogram(TTFT_BUCKETS)
        self.itl = Histogram(ITL_BUCKETS)
        self.e2e = Histogram(REQUEST_BUCKETS)
        self.queue = Histogram(REQUEST_BUCKETS)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)  # type: ignore[arg-type]  # duck-typed Collector

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def collect(self) -> Iterator[Metric]:
        label = ["model_name"]
        value = [self.model_name]
        sched = self.scheduler

        def gauge(name: str, doc: str, v: float) -> GaugeMetricFamily:
            g = GaugeMetricFamily(name, doc, labels=label)
            g.add_metric(value, v)
            return g

        def counter(name: str, doc: str, v: float) -> CounterMetricFamily:
            c = CounterMetricFamily(name, doc, labels=label)
            c.add_metric(value, v)
            return c

        def hist(name: str, doc: str, h: Histogram) -> HistogramMetricFamily:
            m = HistogramMetricFamily(name, doc, labels=label)
            m.add_metric(value, h.buckets(), h.total)
            return m

        yield gauge("vllm:num_requests_running", "Requests running on the engine.", sched.running)
        yield gauge("vllm:num_requests_waiting", "Requests waiting to be scheduled.", sched.waiting)
        yield gauge("vllm:kv_cache_usage_perc", "KV-cache usage, 1 means 100 percent.",
                    sched.kv_usage)
        yield counter("vllm:prompt_tokens", "Prefill tokens processed.", self.prompt_tokens)
        yield counter("vllm:generation_tokens", "Generation tokens processed.",
                      self.generation_tokens)
        yield counter("vllm:num_preemptions", "Cumulative preemptions.", self.preemptions)
        success = CounterMetricFamily("vllm:request_success", "Finished requests by reason.",
                                      labels=["model_name", "finished_reason"])
        for reason, n in self.finished.items():
            success.add_metric([self.model_name, reason], n)
        yield success
        yield hist("vllm:time_to_first_token_seconds", "Time to first token.", self.ttft)
        yield hist("vllm:inter_token_latency_seconds", "Inter-token latency.", self.itl)
        yield hist("vllm:e2e_request_latency_seconds", "End-to-end request latency.", self.e2e)
        yield hist("vllm:request_queue_time_seconds", "Time spent waiting to be scheduled.",
                   self.queue)

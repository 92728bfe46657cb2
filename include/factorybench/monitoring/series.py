"""Scrapes of a Prometheus text exposition, and what can be derived from a run of them.

Counters are read as increases (a drop is a restart: the new value is the increase since),
gauges as peak and mean, histograms as quantiles of their bucket increases, interpolated
linearly inside a bucket as Prometheus' histogram_quantile() does. Label sets are summed:
the run's figure is the server's, over every engine and model it reports.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

Key = tuple[str, tuple[tuple[str, str], ...]]  # (sample name, sorted labels)


@dataclass
class Scrape:
    t: float  # unix seconds, the middle of the request
    samples: dict[Key, float] = field(default_factory=dict)

    def total(self, name: str) -> float | None:
        """Sum over every label set of one sample name; None when the server did not expose it."""
        values = [v for (n, _), v in self.samples.items() if n == name]
        return sum(values) if values else None


def keep_lines(text: str, names: Iterable[str]) -> str:
    """Only the sample lines of `names` (cheap: runs beside the load, which must not be disturbed)."""
    wanted = set(names)
    return "\n".join(line for line in text.splitlines()
                     if line and line[0] != "#" and line.split("{", 1)[0].split(" ", 1)[0] in wanted)


def parse(text: str, t: float) -> Scrape:
    """prometheus_client's own text parser; `_created` samples are timestamps, not values."""
    from prometheus_client.parser import text_string_to_metric_families

    samples: dict[Key, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if not s.name.endswith("_created"):
                samples[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
    return Scrape(t, samples)


def increase(scrapes: Sequence[Scrape], name: str) -> float | None:
    """A counter's increase over the scrapes, per label set, summed; None if it never appeared."""
    keys = {k for s in scrapes for k in s.samples if k[0] == name}
    return sum(_series_increase(scrapes, key) for key in keys) if keys else None


def _series_increase(scrapes: Sequence[Scrape], key: Key) -> float:
    """A drop means the counter restarted (the new value is the increase since). A series that first
    appears after the first scrape started from zero in between (vLLM creates labelled counters on
    first use)."""
    prev, total = scrapes[0].samples.get(key), 0.0
    for s in scrapes[1:]:
        value = s.samples.get(key)
        if value is None:
            continue
        base = prev or 0.0
        total += value - base if value >= base else value
        prev = value
    return total


def active(scrapes: Sequence[Scrape], counter: str) -> tuple[int, int] | None:
    """Indexes (i0, i1) bracketing the counter's movement: the last scrape before it first moved and
    the first after it last moved. The rate over them is as exact as the scrape interval allows."""
    values = [s.total(counter) for s in scrapes]
    moves = [i for i in range(1, len(values)) if values[i] is not None and values[i - 1] is not None
             and values[i] != values[i - 1]]
    return (moves[0] - 1, moves[-1]) if moves else None


def rate(scrapes: Sequence[Scrape], counter: str) -> float | None:
    span = active(scrapes, counter)
    if span is None:
        return None
    i0, i1 = span
    seconds = scrapes[i1].t - scrapes[i0].t
    grown = increase(scrapes[i0:i1 + 1], counter)
    return grown / seconds if grown is not None and seconds > 0 else None


def gauge(scrapes: Sequence[Scrape], names: Sequence[str]) -> tuple[float, float] | None:
    """(peak, mean) of a gauge's total; the first of `names` the server exposes is used."""
    for name in names:
        values = [v for s in scrapes if (v := s.total(name)) is not None]
        if values:
            return max(values), sum(values) / len(values)
    return None


def buckets(scrapes: Sequence[Scrape], histogram: str) -> list[tuple[float, float]]:
    """Cumulative bucket increases (upper bound, count) over the scrapes, all label sets summed."""
    name = f"{histogram}_bucket"
    by_le: dict[float, float] = {}
    for key in {k for s in scrapes for k in s.samples if k[0] == name}:
        le = float(dict(key[1])["le"])
        by_le[le] = by_le.get(le, 0.0) + _series_increase(scrapes, key)
    return sorted(by_le.items())


def quantile(q: float, cumulative: Sequence[tuple[float, float]]) -> float | None:
    """histogram_quantile(): None without observations; the +Inf bucket answers the highest finite bound."""
    if not cumulative or cumulative[-1][1] <= 0:
        return None
    rank = q * cumulative[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in cumulative:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound


def rows(scrapes: Sequence[Scrape], run_id: str, step_at) -> list[dict]:
    """Long-form time series, one row per sample: what the archive keeps (series.parquet)."""
    return [{"t": s.t, "run_id": run_id, "step": step_at(s.t), "metric": name,
             "labels": json.dumps(dict(labels), sort_keys=True), "value": value}
            for s in scrapes for (name, labels), value in sorted(s.samples.items())]

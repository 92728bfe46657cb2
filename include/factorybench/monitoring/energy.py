"""Energy of a run window, from whichever source the site has, best first:

1. `dcgm_energy_counter`: DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION, a counter in mJ since boot;
   joules = its increase over the window / 1000, summed over the job's GPUs;
2. `dcgm_power_integral`: DCGM_FI_DEV_POWER_USAGE (W) integrated over the window (trapezoids),
   summed over GPUs;
3. `slurm_sacct`: SLURM's ConsumedEnergyRaw (J), read at the window's start and end. It is per
   node (valid for exclusive jobs), 0 where no AcctGatherEnergyType is configured, and many sites
   update it for a running job only now and then; 0 or no change means "not available".
Points are (unix seconds, value) lists, one per series.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

Points = Sequence[tuple[float, float]]


def counter_increase(points: Points) -> float:
    """Increase of a counter over its points; a drop is a reset (the new value counts from zero)."""
    total = 0.0
    for (_, a), (_, b) in zip(points, points[1:]):
        total += b - a if b >= a else b
    return total


def integrate(points: Points) -> float:
    """Trapezoidal integral of a gauge over time (W and s give J)."""
    return sum((t1 - t0) * (v0 + v1) / 2 for (t0, v0), (t1, v1) in zip(points, points[1:]))


def parse_sacct(text: str) -> float | None:
    """`sacct -n -P -X -j ID -o ConsumedEnergyRaw` output: joules, None when empty or not a number."""
    values = []
    for line in text.split():
        try:
            values.append(float(line))
        except ValueError:
            continue
    return sum(values) if values else None


@dataclass(frozen=True)
class Energy:
    joules: float | None
    source: str | None  # dcgm_energy_counter | dcgm_power_integral | slurm_sacct | None
    detail: dict

    def to_dict(self) -> dict:
        return {"joules": self.joules, "source": self.source, **self.detail}


def choose(counter: Sequence[Points], power: Sequence[Points], sacct: tuple[float | None, float | None]) -> Energy:
    """The best source that has data; `sacct` is (reading at start, reading at end)."""
    tried: dict = {}
    if counter:
        mj = sum(counter_increase(p) for p in counter)
        tried["dcgm_energy_counter_mj"] = mj
        if mj > 0:
            return Energy(mj / 1000.0, "dcgm_energy_counter", {"gpus": len(counter), **tried})
    if power:
        joules = sum(integrate(p) for p in power)
        tried["dcgm_power_integral_j"] = joules
        if joules > 0:
            return Energy(joules, "dcgm_power_integral", {"gpus": len(power), **tried})
    start, end = sacct
    tried["slurm_sacct_j"] = [start, end]
    if start is not None and end is not None and end > start > 0:
        return Energy(end - start, "slurm_sacct", tried)
    return Energy(None, None, tried)

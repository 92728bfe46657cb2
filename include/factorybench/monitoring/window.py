"""The run window (a Watcher): when the load ran, on which job and node, and SLURM's energy readings.

Node, GPU and energy figures are asked of Prometheus later, when the run is judged (the
exporters have been scraped past the window's end by then); this watcher only records what that
query needs. SLURM's ConsumedEnergyRaw is read at both ends through the transport's shell on the
login node (the ssh transport), when the cluster profile says the site accounts energy.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable

from factorybench.monitoring.energy import parse_sacct
from factorybench.watch import Observed

log = logging.getLogger("factorybench.monitoring")


class WindowWatcher:
    name = "window"

    def __init__(self, job_id: str, nodes: list[str], transport: Any = None, slurm_energy: bool = False):
        self.job_id, self.nodes = job_id, nodes
        self.runner = getattr(transport, "runner", None) if slurm_energy else None
        self.start: float | None = None
        self.end: float | None = None
        self.sacct: list[float | None] = [None, None]
        self.notes: list[str] = []
        if slurm_energy and self.runner is None:
            self.notes.append(f"SLURM energy needs a shell on the login node; the "
                              f"{type(transport).__name__} transport has none")

    async def run(self, abort: Callable[[str], None]) -> None:
        self.start = time.time()
        try:
            self.sacct[0] = await self._energy()
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.end = time.time()
            self.sacct[1] = await asyncio.ensure_future(self._energy())
            raise

    async def _energy(self) -> float | None:
        if self.runner is None or not self.job_id.isdigit():
            return None
        try:
            rc, out, err = await self.runner.run(f"sacct -n -P -X -j {self.job_id} -o ConsumedEnergyRaw", timeout=30)
        except Exception as exc:  # an observer: never the run's failure
            self.notes.append(f"sacct failed: {type(exc).__name__}: {exc}"[:300])
            return None
        if rc != 0:
            self.notes.append(f"sacct exit {rc}: {err.strip()[:200]}")
            return None
        return parse_sacct(out)

    def observed(self) -> Observed:
        return Observed({"window.json": {"start": self.start, "end": self.end or time.time(), "job_id": self.job_id,
                                         "nodes": self.nodes, "slurm_energy_j": self.sacct, "notes": self.notes}})

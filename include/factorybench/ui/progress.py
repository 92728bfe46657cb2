"""Live progress for a run's Benchmark tab, without a Pushgateway.

A watcher beside the load (factorybench.watch) writes the load's latest figures into the run's
spool every `interval_s`: `live/progress.json` with requests done, errors, the current rate and
the latency percentiles of the last interval. `Results.live(dag_id, run_id)` reads it back for
the UI; when the run is archived the spool is cleared and the archive takes over.

The figures come from the load engine's progress hook, which sees requests finished in this
process only: with `client.where: slurm` or `client.workers > 1` there is no live view.
"""

from __future__ import annotations

import time
from typing import Any

from factorybench.monitoring.live import LiveWatcher
from factorybench.results.archive import Spool
from factorybench.results.query import LIVE_PROGRESS
from factorybench.watch import Observed

INTERVAL_S = 2.0


class SpoolProgressWatcher(LiveWatcher):
    """LiveWatcher's counting and percentiles, written to the spool instead of a Pushgateway."""

    name = "live_progress"

    def __init__(self, spool: Spool, recipe: str, run_id: str, interval_s: float = INTERVAL_S):
        super().__init__("", recipe, run_id, interval_s)
        self.spool = spool

    def _push(self, values: dict[str, float]) -> None:
        try:
            self.spool.put(LIVE_PROGRESS, {**values, "updated_at": time.time()})
            self.pushes += 1
        except Exception as exc:  # an observer: the run goes on without its live view
            self._failed(exc)

    def _end(self) -> None:
        self._push(self.snapshot(active=False))

    def observed(self) -> Observed:
        return Observed()


def watchers(plan: Any, archive_url: str) -> list[SpoolProgressWatcher]:
    """The live-progress watcher of a run whose requests finish in this process (else none)."""
    client = plan.recipe_model().client
    if client.where == "slurm" or client.workers > 1:
        return []
    return [SpoolProgressWatcher(Spool(archive_url, plan.dag_id, plan.run_id), plan.recipe["name"], plan.run_id)]

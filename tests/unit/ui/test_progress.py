"""The live view's data path without a Pushgateway: the load engine's progress hook -> the watcher
-> `live/progress.json` in the run's spool -> `Results.live`; and which runs get a live view."""

from __future__ import annotations

import asyncio

from factorybench.load.progress import Progress
from factorybench.load.samples import ErrorClass, Sample
from factorybench.results.archive import Spool
from factorybench.results.query import Results
from factorybench.ui.progress import SpoolProgressWatcher, watchers


def sample(i: int, ttft: float, error: bool = False) -> Sample:
    if error:
        return Sample(index=i, planned_s=i, sent_s=i, done_s=i + 0.1, status=503, error=ErrorClass.HTTP_5XX)
    return Sample(index=i, planned_s=i, sent_s=i, done_s=i + 0.2, ttft_ms=ttft, e2e_ms=ttft * 4, output_tokens=8,
                  status=200)


async def test_the_loads_figures_reach_results_live_while_it_runs(tmp_path):
    results = Results(f"sqlite:///{tmp_path}/results.db")
    root = str(tmp_path / "archive")
    assert results.live("factorybench_smoke", "r1", root) is None
    watcher = SpoolProgressWatcher(Spool(root, "factorybench_smoke", "r1"), "smoke", "r1", interval_s=0.05)
    task = asyncio.create_task(watcher.run(lambda reason: None))
    await asyncio.sleep(0)  # the watcher subscribes to the progress hook
    progress = Progress(None, "test", 0, 0.0)
    for i in range(99):
        progress.record(sample(i, 10.0 + i))
    progress.record(sample(99, 0, error=True))
    live = None
    for _ in range(100):
        await asyncio.sleep(0.02)
        live = results.live("factorybench_smoke", "r1", root)
        if live and live["requests_done"] == 100:
            break
    assert live["requests_done"] == 100 and live["errors"] == 1 and live["active"] == 1.0
    assert live["ttft_p50_ms"] == 59.0 and 106 < live["ttft_p99_ms"] <= 108 and live["request_rate"] > 0
    assert live["e2e_p50_ms"] == 4 * 59.0 and live["updated_at"] > 0
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    final = results.live("factorybench_smoke", "r1", root)
    assert final["active"] == 0.0 and final["requests_done"] == 100  # the load ended; archiving takes over
    Spool(root, "factorybench_smoke", "r1").clear()  # what archive_run does
    assert results.live("factorybench_smoke", "r1", root) is None


class _Plan:
    def __init__(self, where: str, workers: int):
        from factorybench.recipe import load_recipe
        from factorybench.settings import recipes_dir

        recipe = load_recipe(recipes_dir() / "smoke.yaml")
        client = recipe.client.model_copy(update={"where": where, "workers": workers})
        self._recipe = recipe.model_copy(update={"client": client})
        self.recipe, self.dag_id, self.run_id = {"name": recipe.name}, recipe.dag_id, "r"

    def recipe_model(self):
        return self._recipe


def test_only_loads_in_the_task_process_get_a_live_view(tmp_path):
    assert [w.name for w in watchers(_Plan("local", 1), str(tmp_path))] == ["live_progress"]
    assert watchers(_Plan("slurm", 1), str(tmp_path)) == []  # its requests finish in a SLURM job
    assert watchers(_Plan("local", 4), str(tmp_path)) == []  # and here in worker processes

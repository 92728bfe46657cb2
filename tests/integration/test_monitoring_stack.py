"""The monitoring layer against real components on 127.0.0.1: Debian's Prometheus 2.42, Pushgateway 1.5.1
and node-exporter 1.5.0 (scripts/monitoring/ensure.sh, started by scripts/monitoring/stack.sh with the
shipped deploy/prometheus/prometheus.yml), the serving simulator, and the native dev cluster.
Everything that waits polls; the first scrape comes about 9 s after Prometheus starts."""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from factorybench.monitoring import prom, push
from factorybench.results.metrics import value_of

REPO = Path(__file__).resolve().parents[2]
STACK = REPO / "scripts" / "monitoring" / "stack.sh"
pytestmark = pytest.mark.timeout(300)


def wait_for(what: str, check: Callable[[], Any], timeout_s: float = 60, every_s: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[dict[str, str]]:
    here = tmp_path_factory.mktemp("monitoring")
    out = subprocess.run([str(STACK), "up", str(here)], capture_output=True, text=True)
    assert out.returncode == 0, f"stack.sh up failed (run scripts/monitoring/ensure.sh): {out.stderr}"
    env = dict(line.split("=", 1) for line in (here / "stack.env").read_text().splitlines())
    yield env
    subprocess.run([str(STACK), "down", str(here)], check=True)


def scraped(prometheus: prom.Prometheus, expr: str) -> list:
    return prometheus.query(expr)


def register(sd_dir: str, name: str, groups: list[dict]) -> None:
    """What a job's script does: an atomic file_sd target file."""
    tmp = Path(sd_dir) / f".{name}.tmp"
    tmp.write_text(json.dumps(groups))
    tmp.rename(Path(sd_dir) / f"{name}.json")


def test_round_trip_push_scrape_query(stack):
    """factorybench pushes a run; Prometheus scrapes the Pushgateway and a file_sd-registered
    node-exporter; factorybench queries Prometheus over the window; the values agree."""
    p = prom.Prometheus(stack["PROMETHEUS_URL"])
    register(stack["FILE_SD_DIR"], "fb-rt", [{"targets": [stack["NODE_EXPORTER_ADDRESS"]],
                                             "labels": {"exporter": "node", "slurm_job_id": "rt-1", "recipe": "rt"}}])
    wait_for("the node-exporter scraped through file_sd", lambda: p.query('up{slurm_job_id="rt-1"} == 1'), 60)
    window_start = time.time()
    metrics = [value_of("output_tokens_per_s", 1234.5), value_of("ttft_p99_ms", 87.25),
               value_of("server_generation_tokens", 4096), value_of("energy_j", 5400.0)]
    steps = [(0, [value_of("output_tokens_per_s", 1000.0)]), (1, [value_of("output_tokens_per_s", 1469.0)])]
    judged = {"status": "success", "verdict": "regression",
              "verdicts": {"metrics": [{"metric": "ttft_p99_ms", "verdict": "regression"},
                                       {"metric": "output_tokens_per_s", "verdict": "pass"}]}}
    registry = push.run_registry("run-1", "success", metrics, steps, judged, window_start, "dcgm_power_integral")
    push.push_run(stack["PUSHGATEWAY_URL"], "rt", "run-1", registry)

    def value(expr: str) -> dict[tuple, float]:
        return {tuple(sorted((k, v) for k, v in labels.items() if k in ("job", "step", "metric", "run_id"))): val
                for labels, val in p.query(expr)}

    got = wait_for("the pushed run in Prometheus",
                   lambda: value('fb_output_tokens_per_s{job="factorybench_run",recipe="rt"}'), 60)
    assert got == {(("job", "factorybench_run"), ("run_id", "run-1"), ("step", "0")): 1000.0,
                   (("job", "factorybench_run"), ("run_id", "run-1"), ("step", "1")): 1469.0,
                   (("job", "factorybench_run"), ("run_id", "run-1"), ("step", "all")): 1234.5}
    assert list(value('fb_ttft_p99_ms{recipe="rt",job="factorybench_latest"}').values()) == [87.25]
    assert list(value('fb_energy_j{recipe="rt",job="factorybench_run"}').values()) == [5400.0]
    assert value('fb_verdict{recipe="rt",job="factorybench_run"}') == {
        (("job", "factorybench_run"), ("metric", "ttft_p99_ms"), ("run_id", "run-1")): -1.0,
        (("job", "factorybench_run"), ("metric", "output_tokens_per_s"), ("run_id", "run-1")): 0.0}
    assert list(value('fb_run_verdict{recipe="rt",job="factorybench_run"}').values()) == [-1.0]
    assert p.query('fb_energy_source_info{recipe="rt",job="factorybench_latest"}')[0][0]["source"] == \
        "dcgm_power_integral"

    # A second run replaces the recipe's `latest` group and adds its own run group beside the first.
    push.push_run(stack["PUSHGATEWAY_URL"], "rt", "run-2",
                  push.run_registry("run-2", "invalid", [value_of("output_tokens_per_s", 99.0)], [], {}, time.time()))
    wait_for("run-2 as the latest", lambda: value('fb_output_tokens_per_s{job="factorybench_latest",recipe="rt"}')
             == {(("job", "factorybench_latest"), ("run_id", "run-2"), ("step", "all")): 99.0}, 60)
    assert len(value('fb_run_valid{job="factorybench_run",recipe="rt"}')) == 2
    assert math.isnan(p.query('fb_run_verdict{job="factorybench_latest",recipe="rt"}')[0][1])  # no verdict

    # The node-exporter, found through file_sd, queried back over a window with the job's selector.
    wait_for("three more node-exporter scrapes", lambda: time.time() > window_start + 3 and p.query(
        f'count_over_time(node_memory_MemTotal_bytes{{slurm_job_id="rt-1"}}[{time.time() - window_start:.0f}s]) >= 3'),
        60)
    window_end = time.time()
    figures, detail = prom.cluster_figures(p, 'slurm_job_id="rt-1"', window_start, window_end)
    exporter = subprocess.run(["curl", "-sf", stack["NODE_EXPORTER_URL"] + "/metrics"], capture_output=True,
                              text=True, check=True).stdout
    mem_total = next(float(line.split()[1]) for line in exporter.splitlines()
                     if line.startswith("node_memory_MemTotal_bytes "))
    (labels, queried_total), = p.query('node_memory_MemTotal_bytes{slurm_job_id="rt-1"}', window_end)
    assert queried_total == mem_total and labels["exporter"] == "node" and labels["recipe"] == "rt"
    assert 0 < figures["node_memory_used_peak_bytes"] < mem_total
    assert 0 <= figures["node_cpu_busy_mean"] <= 1
    assert detail["series"]["node_cpu"] > 0 and detail["energy"]["source"] is None  # no GPU here
    assert "gpu_util_mean" not in figures and "energy_j" not in figures


def test_prometheus_errors_are_explained(stack):
    with pytest.raises(prom.PrometheusError, match="bad_data"):
        prom.Prometheus(stack["PROMETHEUS_URL"]).query("rate(")
    with pytest.raises(prom.PrometheusError, match="Connection refused|URLError"):
        prom.Prometheus("http://127.0.0.1:9").query("up")


@pytest.fixture
def sim() -> Iterator[str]:
    proc = subprocess.Popen([sys.executable, "-m", "factorybench.sim", "--port", "0", "--ttft-ms", "20",
                             "--itl-ms", "4", "--tokens-per-chunk", "3"], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert "listening on" in line, line
    yield line.rsplit(" ", 1)[-1].strip()
    proc.terminate()
    proc.wait(10)


def load_config(url: str, model: str = "sim-model", dataset: dict | None = None, settings: dict | None = None,
                **profile):
    from factorybench.load import LoadConfig, ProfileConfig

    dataset = dataset or {"output_tokens": {"kind": "uniform", "min": 8, "max": 40}, "pool_size": 64}
    return LoadConfig(target=url, model=model, profile=ProfileConfig(**profile), dataset=dataset, **(settings or {}))


async def measured(url: str, config, gateway: str | None, extra=None):
    from factorybench.load import arun_load
    from factorybench.monitoring.live import LiveWatcher
    from factorybench.monitoring.names import VLLM
    from factorybench.monitoring.server import ServerMetricsWatcher, StepClock
    from factorybench.watch import measure

    server = ServerMetricsWatcher(url + "/metrics", VLLM, 0.25, "run-sim", StepClock())
    watchers = [server] + ([LiveWatcher(gateway, "sim", "run-sim", 0.5, server)] if gateway else [])
    measured_load = arun_load(config)
    if extra is not None:  # something else loads the same server meanwhile
        async def both():
            result, _ = await asyncio.gather(measured_load, extra)
            return result
        return await measure(both(), watchers)
    return await measure(measured_load, watchers)


def test_server_counters_agree_with_the_clients_token_counts(sim, stack):
    """A two-step sweep with warm-up: the sim's generation counter over the watch equals the output
    tokens of every request the client sent (warm-up included), exactly; live progress reached
    Prometheus through the Pushgateway while the load ran, and its group is gone afterwards."""
    from factorybench.monitoring.reconcile import TokenCheck
    from factorybench.monitoring.server import read_series

    config = load_config(sim, kind="sweep", streams=6, max_requests=60, sweep_points=2, warmup_requests=5)
    started = time.time()
    result, observed = asyncio.run(measured(sim, config, stack["PUSHGATEWAY_URL"]))
    seen = observed["server_metrics"]
    figures = {m.name: m.value for m in seen.metrics}
    client = sum(s.output_tokens for s in result.samples)
    assert len(result.samples) == 4 * 60 and all(s.output_tokens_source.value == "usage" for s in result.samples)
    assert any(s.warmup for s in result.samples)
    assert figures["server_generation_tokens"] == client
    assert figures["server_requests"] == len(result.samples)
    assert TokenCheck(figures["server_generation_tokens"], client, 0.0).agree
    assert figures["server_running_peak"] <= 6 and figures["server_ttft_p50_ms"] >= 20
    assert figures["server_output_tokens_per_s"] > 0
    summary = seen.files["summary.json"]
    assert summary["error_count"] == 0 and sorted(summary["steps"]) == ["0", "1", "2", "3"]
    rows = read_series(seen.files["series.parquet"])
    assert {r["run_id"] for r in rows} == {"run-sim"}
    assert {r["step"] for r in rows} >= {0, 1, 2, 3}  # every step of the sweep has scrapes labelled with it
    first = min(r["t"] for r in rows)
    assert first < float(summary["steps"]["0"])  # the baseline scrape precedes the first request
    gen = sorted((r["t"], r["value"]) for r in rows if r["metric"] == "vllm:generation_tokens_total")
    assert gen[-1][1] - gen[0][1] == client
    assert "vllm:generation_tokens_total" in seen.files["last.prom"]

    live = observed["live"].files["pushes.json"]
    assert live["pushes"] >= 2 and live["requests_seen"] == len(result.samples) and not live["failures"]
    p = prom.Prometheus(stack["PROMETHEUS_URL"])
    history = wait_for("live progress in Prometheus", lambda: p.query_range(
        'fb_live_requests_done{job="factorybench_live",run_id="run-sim"}', started, time.time(), 0.5), 30)
    assert max(v for s in history for _, v in s.points) > 0
    pushed = subprocess.run(["curl", "-sf", stack["PUSHGATEWAY_URL"] + "/metrics"], capture_output=True,
                            text=True, check=True).stdout
    assert 'job="factorybench_live"' not in pushed  # deleted when the load ended


def test_another_client_on_the_server_makes_the_check_fail(sim):
    """Requests the measured client did not send show up as a conclusive disagreement."""
    from factorybench.load import arun_load
    from factorybench.monitoring.reconcile import TokenCheck, outcome

    intruder = arun_load(load_config(sim, kind="concurrent", streams=2, max_requests=10))
    result, observed = asyncio.run(measured(sim, load_config(sim, kind="concurrent", streams=4, max_requests=40),
                                            None, intruder))
    server = {m.name: m.value for m in observed["server_metrics"].metrics}["server_generation_tokens"]
    client = sum(s.output_tokens for s in result.samples)
    check = TokenCheck(server, client, 0.0)
    assert server > client and check.conclusive and check.agree is False
    status, message = outcome(check, "success", "")
    assert status == "invalid" and f"the client received {client}" in message


@pytest.mark.cluster
@pytest.mark.airflow
def test_exporters_beside_the_service_on_the_dev_cluster(native_cluster, stack, tmp_path):
    """A real service job starts node-exporter next to the simulator and registers both in the file_sd
    directory a real Prometheus reads, labelled with job id, recipe and node; the job's selector finds
    their series; scancel removes the targets and stops the exporter."""
    import os
    import socket

    from factorybench.airflow.connections import atransport_for
    from factorybench.recipe import load_clusters, load_recipe
    from factorybench.slurm.script import build_job_spec
    from factorybench.slurm.transport import cancel_and_wait

    workdir = native_cluster["FB_SLURM_WORKDIR"]
    dev = load_clusters(REPO / "config" / "clusters.yaml", env={**os.environ, "FB_SLURM_WORKDIR": workdir})["dev"]
    node_exporter = dev.monitoring.node_exporter.model_copy(update={"port": "auto"})
    profile = dev.model_copy(update={"transport": "ssh", "monitoring": dev.monitoring.model_copy(update={
        "file_sd_dir": stack["FILE_SD_DIR"], "node_exporter": node_exporter})})
    smoke = load_recipe(REPO / "recipes" / "smoke.yaml")
    recipe = smoke.model_copy(update={"monitoring": smoke.monitoring.model_copy(update={"exporters": ["node"]})})
    spec = build_job_spec(recipe, profile, "montest01", "h")
    assert "prometheus-node-exporter --web.listen-address=" in spec.script

    async def run() -> tuple[str, dict]:
        t = await atransport_for(profile)
        job_id = await t.submit(spec)
        try:
            seen = await asyncio.to_thread(observe, job_id)
        finally:
            await cancel_and_wait(t, job_id, 0.5)
            await t.close()
        return job_id, seen

    def observe(job_id: str) -> dict:
        p = prom.Prometheus(stack["PROMETHEUS_URL"])
        up = wait_for("both targets up", lambda: len(found := p.query(f'up{{slurm_job_id="{job_id}"}} == 1')) == 2
                      and found, 90)
        registered = json.loads((Path(stack["FILE_SD_DIR"]) / f"fb-{job_id}.json").read_text())
        start = time.time()
        wait_for("node-exporter samples", lambda: time.time() > start + 3, 10)
        figures, _ = prom.cluster_figures(p, profile.monitoring.selector.replace("{job_id}", job_id), start - 3,
                                          time.time())
        return {"up": up, "registered": registered, "figures": figures}

    job_id, seen = asyncio.run(run())
    labels = {lab["exporter"]: lab for lab, _ in seen["up"]}
    assert set(labels) == {"node", "service"}
    host = socket.gethostname()
    for exporter, lab in labels.items():
        assert (lab["slurm_job_id"], lab["recipe"], lab["node"], lab["run_tag"]) == (job_id, "smoke", host, "montest01")
    assert labels["node"]["instance"] == f"{host}:{10000 + int(job_id) % 10000}"
    assert {g["labels"]["exporter"] for g in seen["registered"]} == {"node", "service"}
    assert 0 < seen["figures"]["node_memory_used_peak_bytes"]
    # The job is gone: its target file too, its exporter stopped, and Prometheus no longer scrapes it.
    assert not (Path(stack["FILE_SD_DIR"]) / f"fb-{job_id}.json").exists()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", 10000 + int(job_id) % 10000), timeout=2).close()

    def targets() -> list:
        doc = json.loads(subprocess.run(["curl", "-sf", stack["PROMETHEUS_URL"] + "/api/v1/targets"],
                                        capture_output=True, text=True, check=True).stdout)
        return [t for t in doc["data"]["activeTargets"] if t["labels"].get("slurm_job_id") == job_id]

    wait_for("Prometheus to drop the job's targets", lambda: not targets(), 30)


@pytest.mark.cluster
def test_real_llamacpp_counters_agree_with_the_clients_token_counts(forky_cluster, tmp_path):
    """The real llama.cpp server (Debian forky's llama-server, build 11669, the real Gemma-3-270M GGUF that
    scripts/services/ensure.sh installs), run in the forky chroot: its llamacpp:tokens_predicted_total over
    the watch equals the output tokens of every request the client sent, warm-up included."""
    import socket
    import urllib.request

    from factorybench.load import GuardConfig, arun_load
    from factorybench.monitoring.names import LLAMACPP
    from factorybench.monitoring.server import ServerMetricsWatcher, StepClock
    from factorybench.watch import measure

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    chroot = REPO / ".cache" / "chroots" / "forky"
    log = (tmp_path / "llama-server.log").open("w")
    server = subprocess.Popen(["chroot", str(chroot), str(REPO / "scripts" / "services" / "bin" / "fb-llama-server"),
                               "-m", "gemma-3-270m-q4_k_m.gguf", "--alias", "gemma-3-270m", "--chat-template", "chatml",
                               "--host", "127.0.0.1", "--port", str(port), "-c", "2048", "--parallel", "4",
                               "-t", "2", "--metrics", "--no-webui"], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        assert server.poll() is None, (tmp_path / "llama-server.log").read_text()[-2000:]
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    try:
        wait_for("llama-server to load the model", healthy, 120, 0.5)
        # As recipes/llamacpp-gemma.yaml: the server takes both of the machine's cores.
        config = load_config(url, "gemma-3-270m", {"prompt_tokens": {"mean": 32}, "output_tokens": {"mean": 8}},
                             {"ignore_eos": True, "guard": GuardConfig(max_loop_lag_p99_ms=250, max_lateness_p99_ms=250,
                                                                       max_cpu_fraction=0.95)},
                             kind="concurrent", streams=4, max_requests=12, warmup_requests=2)
        watcher = ServerMetricsWatcher(url + "/metrics", LLAMACPP, 0.5, "run-llamacpp", StepClock())
        result, observed = asyncio.run(measure(arun_load(config), [watcher]))
    finally:
        server.terminate()
        server.wait(30)
        log.close()
    figures = {m.name: m.value for m in observed["server_metrics"].metrics}
    assert result.summary.errors == 0 and len(result.samples) == 12
    assert all(s.output_tokens_source.value == "usage" for s in result.samples)
    client = sum(s.output_tokens for s in result.samples)
    assert client == 12 * 8  # ignore_eos: every answer is max_tokens long, as the server reported it
    assert figures["server_generation_tokens"] == client
    assert figures["server_running_peak"] <= 4 and figures["server_output_tokens_per_s"] > 0
    assert "server_ttft_p50_ms" not in figures  # llama.cpp has no latency histograms

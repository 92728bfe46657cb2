"""Real services end to end: each service recipe's DAG with dag.test(), against real servers with
real weights started as SLURM jobs of the dev clusters (docs/SERVICES.md), plus recall@k of the
vector-search protocols against real pgvector and Chroma indexes.

scripts/services/ensure.sh installs every server and model first (make test calls it). Loads are
short: the dev machine has 2 cores, and llama.cpp decodes Gemma-3-270M at ~14 tokens/s per stream.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from devstack import free_port

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.cluster, pytest.mark.airflow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def dagbag(native_cluster, forky_cluster, airflow_db):
    from airflow.models.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


def squeue_names(chroot: str | None = None) -> list[str]:
    argv = ["squeue", "-h", "-o", "%j"]
    if chroot:
        argv = ["chroot", chroot, *argv]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.split()


def run_recipe(dagbag, name: str, chroot: str | None = None):
    """Run the recipe's DAG: it must succeed with no failed request and leave no job behind.
    Returns the run's results (factorybench.results.query.Results.run) and its load summary."""
    from factorybench.results.query import Results

    run = dagbag.dags[f"factorybench_{name.replace('-', '_')}"].test()
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert str(run.state) == "success", states
    row = Results().runs(name, limit=1)[0]
    assert row.status == "success" and row.dag_run_id == run.run_id, row.message
    assert row.metrics["requests"] >= 1 and row.metrics["errors"] == 0
    assert not [n for n in squeue_names(chroot) if n.startswith(f"fb-{name}-")], "the run left a job behind"
    summary = json.loads((Path(row.archive_url) / "load" / "summary.json").read_text())["summary"]
    assert summary["valid"] and not summary["aborted"], summary["invalid_reasons"]
    assert all(check["passed"] for check in summary["sanity"]), summary["sanity"]
    return Results().run(row.id), summary


def test_llamacpp_gemma_on_forky(dagbag, forky_cluster):
    detail, summary = run_recipe(dagbag, "llamacpp-gemma", chroot=forky_cluster["FB_SLURM_CHROOT"])
    assert (detail.run.cluster, detail.run.transport) == ("forky", "rest")
    assert detail.provenance["service_version"] == "b11669-Debian"
    # ignore_eos: every answer is exactly max_tokens (8) long, as the server itself counted it.
    assert {c["name"] for c in summary["sanity"]} == {"prompt_tokens", "output_tokens", "model"}
    assert summary["output_tokens_per_s"] * summary["duration_s"] == pytest.approx(8 * summary["requests"])
    log = (Path(detail.run.archive_url) / "service.err").read_text()
    assert "gemma-3-270m-q4_k_m.gguf" in log and "listening on http://127.0.0.1:" in log


def test_infinity_embeddings(dagbag, native_cluster):
    detail, summary = run_recipe(dagbag, "infinity-minilm")
    assert detail.provenance["service_version"] == "0.0.78"
    # 16 texts per request: embeddings/s is 16 times the request rate.
    assert summary["embeddings_per_s"] == pytest.approx(16 * summary["request_rate"])


def test_redis_kv(dagbag, native_cluster):
    _, summary = run_recipe(dagbag, "redis-kv")
    assert summary["ops_per_s"] > 0 and set(summary["ops"]) == {"get", "set"}


def test_postgres_sql(dagbag, native_cluster):
    _, summary = run_recipe(dagbag, "postgres-sql")
    assert summary["ops_per_s"] > 0


@pytest.mark.parametrize("name", ["pgvector-vectors", "chroma-vectors"])
def test_vector_search(dagbag, native_cluster, name):
    _, summary = run_recipe(dagbag, name)
    assert summary["insert_vectors_per_s"] > 0 and summary["query_rate"] > 0
    assert 0 < summary["recall_at_k"] <= 1


# --- recall@k against real indexes ------------------------------------------------------------


@pytest.fixture
def launch():
    """Start a service launcher of scripts/services/bin on a free port; stop it (SIGTERM) after the
    test. Its scratch directory is world-traversable: PostgreSQL runs as the postgres user."""
    import socket
    import tempfile
    import time

    started: list[subprocess.Popen] = []
    workdir = Path(tempfile.mkdtemp(prefix="fb-services-"))
    workdir.chmod(0o1777)

    def start(argv: list[str], ready: str | None = None) -> int:
        port = free_port()
        proc = subprocess.Popen([str(REPO / "scripts" / "services" / "bin" / argv[0]), *argv[1:],
                                 "--host", "127.0.0.1", "--port", str(port)], cwd=workdir,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started.append(proc)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"{argv[0]} exited with {proc.returncode}"
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    if ready is None or _http_ok(f"http://127.0.0.1:{port}{ready}"):
                        return port
            except OSError:
                pass
            time.sleep(0.25)
        raise AssertionError(f"{argv[0]} did not listen on {port} within 120 s")

    yield start
    for proc in started:
        proc.terminate()
        proc.wait(timeout=60)
    assert not list(workdir.iterdir()), "a launcher left its scratch directory behind"
    workdir.rmdir()


def _http_ok(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def _recall(target: str, protocol: str, index: dict) -> tuple[float, float]:
    from factorybench.load import LoadConfig, run_load

    config = LoadConfig.model_validate({
        "target": target, "protocol": protocol,
        "vector": {"count": 2000, "dim": 32, "k": 10, "insert_batch": 500, "queries": 50, "index": index},
        "profile": {"kind": "concurrent", "streams": 2, "max_requests": 50}})
    summary = run_load(config).summary
    assert summary.requests == 50 and summary.errors == 0
    return summary.recall_at_k, summary.recall_min


LOW_EF = {"kind": "hnsw", "m": 4, "ef_construction": 8, "ef_search": 10}


def test_pgvector_recall_exact_is_one_and_low_ef_hnsw_is_not(launch):
    port = launch(["fb-postgres", "--pgvector"])
    target = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    assert _recall(target, "vector-pgvector", {"kind": "exact"}) == (1.0, 1.0)
    mean, worst = _recall(target, "vector-pgvector", LOW_EF)
    assert worst <= mean < 1.0 and mean > 0.1, (mean, worst)


def test_chroma_recall_low_ef_hnsw_is_below_one(launch):
    port = launch(["fb-chroma"], ready="/api/v2/heartbeat")
    mean, worst = _recall(f"http://127.0.0.1:{port}", "vector-chroma", LOW_EF)
    assert worst <= mean < 1.0 and mean > 0.1, (mean, worst)


def test_tcp_readiness_waits_for_a_listener_and_names_the_port_when_none_comes():
    """readiness.kind tcp (Redis, PostgreSQL): ready at the first accepted connection."""
    import asyncio

    from factorybench.endpoint import Endpoint, wait_ready
    from factorybench.errors import EndpointError
    from factorybench.recipe.schema import Readiness

    async def scenario() -> float:
        port = free_port()
        endpoint = Endpoint("vm", "127.0.0.1", port)
        with pytest.raises(EndpointError, match=f"tcp://127.0.0.1:{port} not ready"):
            await wait_ready(endpoint, Readiness(kind="tcp", deadline_s=0.3, interval_s=0.1))

        async def listen_later():
            await asyncio.sleep(0.3)
            return await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port)

        later = asyncio.create_task(listen_later())
        waited = await wait_ready(endpoint, Readiness(kind="tcp", deadline_s=10, interval_s=0.05))
        (await later).close()
        return waited

    assert 0.25 < asyncio.run(scenario()) < 5

"""factorybench and GuideLLM 0.8.1 on the same real llama.cpp server, in one run, each checked
against the server's own counters.

The server is Debian forky's llama-server with the real Gemma-3-270M Q4_K_M GGUF, started in the
forky chroot with 4 slots and 2 threads. `scripts/services/ensure.sh all` installs both, and
GuideLLM's venv. Both tools send the same prompts, from one JSONL file written from factorybench's
seeded synthetic set, at the same concurrency. Both send ignore_eos, so every answer is exactly
--output-tokens long. The script reads /metrics around each tool's run. The llamacpp: counters are
compared with the `timings` the server reports with each request on a first probe of a few requests:
token counts and decode time are exact sums of them; prompt_seconds_total is not (it is much smaller
when prompts are processed together), so only the first are used to check the tools. The server's
decode time per gap, sum(predicted_ms) / (sum(predicted_n) - requests), is its view of TPOT.

    devcluster/cluster.sh up forky && scripts/services/ensure.sh all
    .venv/bin/python benchmarks/guidellm_llamacpp.py [--streams 4] [--requests 24] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from common import table

from factorybench.load import LoadConfig, run_load
from factorybench.load.config import DatasetConfig, Lengths
from factorybench.load.dataset import load_dataset

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".cache"
CHROOT = CACHE / "chroots" / "forky"
GUIDELLM = CACHE / "venvs" / "guidellm" / "bin"
GGUF = "gemma-3-270m-q4_k_m.gguf"
TOKENIZER = CACHE / "models" / "gemma-3-270m-tokenizer"
MODEL = "gemma-3-270m"
COUNTERS = ("prompt_tokens_total", "prompt_tokens_cached_total", "prompt_seconds_total", "tokens_predicted_total",
            "tokens_predicted_seconds_total")


@contextmanager
def llama_server(port: int, slots: int) -> Iterator[str]:
    """llama-server in the forky chroot (where the recipe's jobs run it), stopped with its group."""
    argv = ["chroot", str(CHROOT), str(REPO / "scripts" / "services" / "bin" / "fb-llama-server"), "-m", GGUF,
            "--alias", MODEL, "--chat-template", "chatml", "--host", "127.0.0.1", "--port", str(port),
            "-c", str(1024 * slots), "--parallel", str(slots), "-t", "2", "--metrics", "--no-webui"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while not _get(url + "/health"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"llama-server did not start (exit {proc.poll()})")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


def _get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.read().decode()
    except OSError:
        return None


def counters(url: str) -> dict[str, float]:
    """The server's llamacpp: counters (Prometheus text)."""
    out = {}
    for line in (_get(url + "/metrics") or "").splitlines():
        name, _, value = line.partition(" ")
        if name.startswith("llamacpp:") and name[9:] in COUNTERS:
            out[name[9:]] = float(value)
    return out


def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after[k] - before[k] for k in COUNTERS}


def body(prompt: str, max_tokens: int, stream: bool) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
            "ignore_eos": True, "stream": stream}


async def _timings_probe(url: str, prompts: list[str], max_tokens: int) -> list[dict]:
    import aiohttp

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        async def one(prompt: str) -> dict:
            async with session.post(url + "/v1/chat/completions", json=body(prompt, max_tokens, False)) as resp:
                return (await resp.json())["timings"]
        return list(await asyncio.gather(*(one(p) for p in prompts)))


def check_timings(url: str, prompts: list[str], max_tokens: int) -> list[list[object]]:
    """The counters move by exactly the sums of the per-request timings."""
    before = counters(url)
    timings = asyncio.run(_timings_probe(url, prompts, max_tokens))
    d = delta(before, counters(url))
    pairs = [("prompt_n", sum(t["prompt_n"] for t in timings), d["prompt_tokens_total"]),
             ("predicted_n", sum(t["predicted_n"] for t in timings), d["tokens_predicted_total"]),
             ("prompt_ms", sum(t["prompt_ms"] for t in timings), d["prompt_seconds_total"] * 1000),
             ("predicted_ms", sum(t["predicted_ms"] for t in timings), d["tokens_predicted_seconds_total"] * 1000)]
    return [[name, len(timings), got, counter] for name, got, counter in pairs]


def write_prompts(path: Path, n: int, prompt_tokens: int, output_tokens: int) -> None:
    """factorybench's seeded synthetic prompts, as JSONL both tools read."""
    items = load_dataset(DatasetConfig(prompt_tokens=Lengths(mean=prompt_tokens),
                                       output_tokens=Lengths(mean=output_tokens), pool_size=n)).items
    path.write_text("".join(json.dumps({"prompt": it.prompt, "output_tokens": it.output_tokens,
                                        "output_tokens_count": it.output_tokens}) + "\n" for it in items))


def ensure_tokenizer() -> None:
    """GuideLLM needs a Hugging Face tokenizer: Gemma's own, read from the GGUF once."""
    if (TOKENIZER / "tokenizer.json").exists():
        return
    code = ("import sys; from transformers import AutoTokenizer; "
            "AutoTokenizer.from_pretrained(sys.argv[1], gguf_file=sys.argv[2]).save_pretrained(sys.argv[3])")
    subprocess.run([str(GUIDELLM / "python"), "-c", code, str(CACHE / "models"), GGUF, str(TOKENIZER)], check=True,
                   env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def guidellm(url: str, prompts: Path, streams: int, requests: int) -> dict:
    backend = {"kind": "openai_http", "target": url, "model": MODEL, "request_format": "/v1/chat/completions",
               "validate_backend": False, "extras": {"body": {"ignore_eos": True}}}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        subprocess.run([str(GUIDELLM / "guidellm"), "run", "--backend", json.dumps(backend),
                        "--profile", json.dumps({"kind": "concurrent", "streams": [streams]}),
                        "--constraint", f"kind=max_requests,count={requests}",
                        "--tokenizer", f"kind=huggingface_auto,model={TOKENIZER}",
                        "--data", f"kind=json_file,path={prompts}",
                        "--output", f"kind=json,path={out}", "--disable-progress", "--disable-console"],
                       check=True, cwd=tmp, env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.DEVNULL)
        b = json.loads(out.read_text())["benchmarks"][0]
    m = b["metrics"]
    ok = m["request_totals"]["successful"]
    return {"tool": "GuideLLM 0.8.1", "ok": ok, "errors": m["request_totals"]["errored"], "rate": ok / b["duration"],
            "out_tps": m["output_token_count"]["successful"]["total_sum"] / b["duration"],
            "ttft": m["time_to_first_token_ms"]["successful"]["median"],
            # GuideLLM's inter_token_latency is (E2E - TTFT) / (n - 1) per request: vLLM's TPOT. Its
            # time_per_output_token is E2E / n. It reports no per-gap ITL.
            "itl": "-",
            "tpot": m["inter_token_latency_ms"]["successful"]["median"],
            "tpot_mean": m["inter_token_latency_ms"]["successful"]["mean"],
            "prompt_sum": m["prompt_token_count"]["successful"]["total_sum"],
            "out_sum": m["output_token_count"]["successful"]["total_sum"]}


def factorybench(url: str, prompts: Path, streams: int, requests: int) -> dict:
    config = LoadConfig.model_validate({
        "target": url, "model": MODEL, "ignore_eos": True,
        "dataset": {"kind": "jsonl", "path": str(prompts)},
        "profile": {"kind": "concurrent", "streams": streams, "max_requests": requests},
        # The server takes both cores: the client's loop waits for CPU, which the guard would flag.
        "guard": {"max_loop_lag_p99_ms": 1000, "max_lateness_p99_ms": 1000, "max_cpu_fraction": 1.0}})
    result = run_load(config)
    s, ok = result.summary, [x for x in result.samples if x.error is None]
    return {"tool": "factorybench", "ok": s.requests, "errors": s.errors, "rate": s.request_rate,
            "out_tps": s.output_tokens_per_s, "ttft": s.ttft_p50_ms, "itl": s.itl_p50_ms, "tpot": s.tpot_p50_ms,
            "tpot_mean": s.tpot_ms.mean,
            "prompt_sum": sum(x.prompt_tokens or 0 for x in ok), "out_sum": sum(x.output_tokens or 0 for x in ok)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--streams", type=int, default=4)
    ap.add_argument("--requests", type=int, default=24)
    ap.add_argument("--prompt-tokens", type=int, default=32)
    ap.add_argument("--output-tokens", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=2, help="each tool runs this often, alternating")
    ap.add_argument("--port", type=int, default=18480)
    args = ap.parse_args()
    for need in (CHROOT / "usr" / "bin" / "llama-server", CACHE / "models" / GGUF, GUIDELLM / "guidellm"):
        if not need.exists():
            raise SystemExit(f"{need} is missing: run devcluster/cluster.sh up forky && scripts/services/ensure.sh all")
    ensure_tokenizer()
    rows, server_rows = [], []
    with tempfile.TemporaryDirectory() as tmp, llama_server(args.port, args.streams) as url:
        prompts = Path(tmp) / "prompts.jsonl"
        write_prompts(prompts, args.requests, args.prompt_tokens, args.output_tokens)
        first = [json.loads(line)["prompt"] for line in prompts.read_text().splitlines()[:args.streams]]
        print(table(["timings field", "requests", "sum over responses", "counter delta"],
                    check_timings(url, first, args.output_tokens)), flush=True)
        for _ in range(args.rounds):
            for tool in (guidellm, factorybench):
                before, load = counters(url), Path("/proc/loadavg").read_text().split()[0]
                r = tool(url, prompts, args.streams, args.requests)
                d = delta(before, counters(url))
                rows.append([r["tool"], args.streams, r["ok"], r["errors"], r["rate"], r["out_tps"], r["ttft"],
                             r["itl"], r["tpot"], load])
                server_prompt = d["prompt_tokens_total"] + d["prompt_tokens_cached_total"]
                per_gap = d["tokens_predicted_seconds_total"] * 1000 / (d["tokens_predicted_total"] - r["ok"])
                server_rows.append([r["tool"], r["prompt_sum"], server_prompt, r["out_sum"],
                                    d["tokens_predicted_total"], r["tpot_mean"], per_gap])
                print(rows[-1], server_rows[-1], flush=True)
    print(table(["tool", "streams", "ok", "errors", "req/s", "output tok/s", "TTFT p50 ms", "ITL p50 ms (per gap)",
                 "TPOT p50 ms", "load avg"], rows))
    print(table(["tool", "prompt tokens (tool)", "prompt tokens (server)", "output tokens (tool)",
                 "output tokens (server)", "TPOT mean ms (tool)", "decode ms per gap (server)"], server_rows))


if __name__ == "__main__":
    main()

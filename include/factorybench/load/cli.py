"""`python -m factorybench.load`: run, merge, and the worker / SLURM-task entry points.

    run         one load run (flags, or --config FILE.json|yaml with flags overriding it; the
                vector, kv, sql and sanity sections come from --config, see docs/LOAD.md)
    slurm-task  one task of `srun -n N`: every step in lockstep; rank 0 plans the steps, merges into --dir
    merge DIR   recompute the summaries of a distributed run (every step) from every task's raw samples
    worker DIR  internal: one local worker process of `run --workers W`
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from factorybench.load.config import LoadConfig
from factorybench.load.distributed import merge, run_planned_task, run_slurm_task
from factorybench.load.engine import Share
from factorybench.load.result import LoadResult
from factorybench.load.runner import run_load
from factorybench.load.stats import Summary

# flag -> dotted LoadConfig path
_FLAGS: dict[str, tuple[str, type]] = {
    "target": ("target", str), "protocol": ("protocol", str), "model": ("model", str),
    "workers": ("workers", int), "timeout_s": ("timeout_s", float), "progress_s": ("progress_s", float),
    "profile": ("profile.kind", str), "streams": ("profile.streams", int), "rate": ("profile.rate", float),
    "burstiness": ("profile.burstiness", float), "max_concurrency": ("profile.max_concurrency", int),
    "duration_s": ("profile.duration_s", float), "max_requests": ("profile.max_requests", int),
    "warmup_requests": ("profile.warmup_requests", int), "warmup_s": ("profile.warmup_s", float),
    "sweep_points": ("profile.sweep_points", int), "rate_lo": ("profile.rate_lo", float),
    "rate_hi": ("profile.rate_hi", float), "max_probes": ("profile.max_probes", int),
    "rel_tolerance": ("profile.rel_tolerance", float), "seed": ("profile.seed", int),
    "prompt_tokens": ("dataset.prompt_tokens.mean", float), "output_tokens": ("dataset.output_tokens.mean", float),
    "slo_ttft_ms": ("slo.ttft_ms", float), "slo_tpot_ms": ("slo.tpot_ms", float), "slo_e2e_ms": ("slo.e2e_ms", float),
    "http_method": ("http.method", str), "http_path": ("http.path", str), "http_body": ("http.body", str),
    "batch_size": ("embeddings.batch_size", int),
}


def _set(tree: dict, dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for key in parents:
        tree = tree.setdefault(key, {})
    tree[leaf] = value


def build_config(args: argparse.Namespace) -> LoadConfig:
    data: dict = {}
    if args.config:
        data = yaml.safe_load(Path(args.config).read_text()) or {}  # YAML is a superset of JSON
    for flag, (dotted, _) in _FLAGS.items():
        if getattr(args, flag) is not None:
            _set(data, dotted, getattr(args, flag))
    if args.dataset:
        kind = args.dataset if args.dataset in ("synthetic", "bundled") else "jsonl"
        _set(data, "dataset.kind", kind)
        if kind == "jsonl":
            _set(data, "dataset.path", args.dataset)
    if args.no_stream:
        data["stream"] = False
    if args.ignore_eos:
        data["ignore_eos"] = True
    if args.extra_body:
        data["extra_body"] = {**data.get("extra_body", {}), **json.loads(args.extra_body)}
    return LoadConfig.model_validate(data)


def report(result: LoadResult) -> str:
    """A few human lines; the JSON files hold everything."""
    lines = []
    for r in result.steps:
        s = r.summary
        lines.append(f"{r.step.label:>24}: {s.requests} ok, {s.errors} errors, {s.request_rate:.2f} req/s, "
                     + (_workload(s) or f"{s.output_tokens_per_s:.1f} out tok/s, TTFT p50 {_ms(s.ttft_p50_ms)} "
                        f"p99 {_ms(s.ttft_p99_ms)}, ITL p50 {_ms(s.itl_p50_ms)}, TPOT p50 {_ms(s.tpot_p50_ms)}")
                     + ("" if s.valid else f"  INVALID: {'; '.join(s.invalid_reasons)}"))
    s = result.summary
    for c in s.sanity:
        verdict = "ok" if c.passed else ("WARNING" if c.warn_only else "FAILED")
        lines.append(f"sanity {c.name}: {verdict}: {c.observed}; expected {c.expected}"
                     + (f" ({c.message})" if c.message and not c.passed else ""))
    if s.stale_connection_retries:
        lines.append(f"connection churn: {s.stale_connection_retries} requests resent on a fresh connection after "
                     f"the server closed a kept-alive one; {s.connections_opened} connections opened")
    if s.aborted:
        lines.append(f"ABORTED: {s.abort_reason} ({s.aborted_requests} in-flight requests cut)")
    if result.capacity:
        c = result.capacity
        lines.append(f"capacity: {c.rate} req/s (bracket [{c.last_pass}, {c.first_fail}], "
                     f"{len(c.probes)} probes, converged={c.converged})")
    return "\n".join(lines)


def _workload(s: Summary) -> str:
    """The figures of the non-LLM protocols: items per second, latency, recall."""
    parts = []
    for name, value, unit in (("embeddings", s.embeddings_per_s, "/s"), ("inserted", s.insert_vectors_per_s,
                              " vectors/s"), ("queries", s.query_rate, "/s"), ("ops", s.ops_per_s, "/s")):
        if value is not None:
            parts.append(f"{name} {value:.1f}{unit}")
    if not parts:
        return ""
    if s.recall_at_k is not None:
        parts.append(f"recall@k {s.recall_at_k:.4f} (min {s.recall_min:.2f})")
    return ", ".join(parts + [f"latency p50 {_ms(s.e2e_ms.p50)} p99 {_ms(s.e2e_ms.p99)}"])


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f} ms"


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m factorybench.load", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    for name in ("run", "slurm-task"):
        p = sub.add_parser(name)
        p.add_argument("--config", help="LoadConfig as JSON or YAML; flags override it")
        for flag, (_, typ) in _FLAGS.items():
            p.add_argument("--" + flag.replace("_", "-"), dest=flag, type=typ)
        p.add_argument("--dataset", help="synthetic, bundled, or a JSONL file path")
        p.add_argument("--no-stream", action="store_true", help="Ask for whole responses")
        p.add_argument("--ignore-eos", action="store_true", help="Ask for exactly max_tokens (vLLM, llama.cpp)")
        p.add_argument("--extra-body", help="JSON merged into every request body")
        p.add_argument("--format", choices=("parquet", "jsonl"), default="parquet", help="Raw samples format")
        p.add_argument("--json", action="store_true", help="Print summary.json content instead of the table")
        if name == "run":
            p.add_argument("--out", help="Directory for summary.json and raw samples")
        else:
            p.add_argument("--dir", required=True, help="Shared directory (all tasks must see it)")
    m = sub.add_parser("merge")
    m.add_argument("dir")
    m.add_argument("--json", action="store_true")
    w = sub.add_parser("worker")
    w.add_argument("dir")
    w.add_argument("--rank", type=int, required=True)
    w.add_argument("--size", type=int, required=True)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "worker":
        run_planned_task(Path(args.dir), Share(args.rank, args.size))
        return 0
    if args.command == "merge":
        result: LoadResult | None = merge(Path(args.dir))
    elif args.command == "slurm-task":
        result = run_slurm_task(build_config(args), Path(args.dir), fmt=args.format)
    else:
        result = run_load(build_config(args))
        if args.out:
            result.save(args.out, args.format)
    if result is not None:
        print(result.summary.model_dump_json(indent=2) if args.json else report(result))
    return 0 if result is None or result.summary.valid else 3


if __name__ == "__main__":
    sys.exit(main())

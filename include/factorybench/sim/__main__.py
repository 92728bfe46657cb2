"""CLI: `python -m factorybench.sim --port 8000 --ttft-ms 50 --itl-ms 10 ...`.

Every SimConfig field is a flag; `--config FILE` (YAML or JSON) supplies defaults that
flags override. Prints `factorybench-sim listening on http://HOST:PORT` once bound (the
line a SLURM job's readiness check or a test waits for) and exits 0 on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any

from factorybench.sim.config import SimConfig, load_config_file
from factorybench.sim.server import serve

# Older or descriptive names accepted as extra flags for the same field.
_ALIASES = {"ttft_ms": ["--ttft-overhead-ms"]}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m factorybench.sim",
                                description="factorybench serving simulator (OpenAI + Ollama APIs)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port to bind; 0 picks a free one")
    p.add_argument("--config", help="YAML or JSON file of SimConfig fields")
    p.add_argument("--loop", choices=["auto", "uvloop", "asyncio"], default="auto",
                   help="event loop (auto: uvloop when installed)")
    for name, field in SimConfig.model_fields.items():
        flags = ["--" + name.replace("_", "-"), *_ALIASES.get(name, [])]
        kind = field.annotation if field.annotation in (int, float, str) else str
        helptext = f"{field.description} (default {field.default})"
        p.add_argument(*flags, dest=name, type=kind, default=None, help=helptext)
    return p


def config_from_args(args: argparse.Namespace) -> SimConfig:
    values: dict[str, Any] = load_config_file(args.config) if args.config else {}
    for name in SimConfig.model_fields:
        v = getattr(args, name)
        if v is not None:
            values[name] = v
    return SimConfig.model_validate(values)


def _new_loop(choice: str) -> asyncio.AbstractEventLoop:
    if choice != "asyncio":
        try:
            import uvloop
            return uvloop.new_event_loop()
        except ImportError:
            if choice == "uvloop":
                raise
    return asyncio.new_event_loop()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
    except (ValueError, OSError) as e:
        print(f"factorybench-sim: invalid configuration: {e}", file=sys.stderr)
        return 2

    def announce(url: str) -> None:
        print(f"factorybench-sim listening on {url}", flush=True)

    loop = _new_loop(args.loop)
    asyncio.set_event_loop(loop)
    task = loop.create_task(serve(config, args.host, args.port, on_listening=announce))
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        loop.run_until_complete(task)
    except asyncio.CancelledError:
        pass  # a signal: serve() has cleaned up
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

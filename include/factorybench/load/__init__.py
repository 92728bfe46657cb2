"""The load engine: measures LLM servers and other HTTP services without the client distorting results.

    from factorybench.load import LoadConfig, run_load
    result = run_load(LoadConfig(target="http://127.0.0.1:8000", model="m"))
    print(result.summary.ttft_p50_ms); result.save("out/")

Names are imported on first use: recipes import `factorybench.load.config` while Airflow parses
DAGs, and that must not pull in numpy, pyarrow or aiohttp.
"""

from importlib import import_module

_EXPORTS = {
    "DatasetConfig": "config", "GuardConfig": "config", "HttpTemplate": "config", "Lengths": "config",
    "LoadConfig": "config", "ProfileConfig": "config", "Protocol": "config", "SLOConfig": "config",
    "LoadResult": "result", "StepResult": "result", "arun_load": "runner", "run_load": "runner",
    "ErrorClass": "samples", "Sample": "samples", "TokenSource": "samples", "Distribution": "stats",
    "SanityCheck": "stats", "Summary": "stats", "Stop": "engine", "target_url": "config",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"factorybench.load.{_EXPORTS[name]}"), name)

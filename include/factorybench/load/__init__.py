"""The load engine: measures LLM servers and other HTTP services without the client distorting results.

    from factorybench.load import LoadConfig, run_load
    result = run_load(LoadConfig(target="http://127.0.0.1:8000", model="m"))
    print(result.summary.ttft_p50_ms); result.save("out/")
"""

from factorybench.load.config import (DatasetConfig, GuardConfig, HttpTemplate, Lengths, LoadConfig, ProfileConfig,
                                      Protocol, SLOConfig)
from factorybench.load.result import LoadResult, StepResult
from factorybench.load.runner import arun_load, run_load
from factorybench.load.samples import ErrorClass, Sample, TokenSource
from factorybench.load.stats import Distribution, Summary

__all__ = [
    "DatasetConfig", "Distribution", "ErrorClass", "GuardConfig", "HttpTemplate", "Lengths", "LoadConfig",
    "LoadResult", "ProfileConfig", "Protocol", "SLOConfig", "Sample", "StepResult", "Summary", "TokenSource",
    "arun_load", "run_load",
]

"""What a load run returns and how it is stored: summary.json next to the raw samples."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from factorybench.load.config import LoadConfig
from factorybench.load.profiles import CapacityResult, Step
from factorybench.load.samples import Sample, SampleFormat, load_samples, save_samples
from factorybench.load.stats import Summary


class StepResult(BaseModel):
    """One step of the profile with its own aggregates."""

    index: int = Field(..., description="Step number, matching Sample.step")
    step: Step = Field(..., description="The load that was offered")
    summary: Summary = Field(..., description="Aggregates of this step's non-warm-up samples")


class LoadResult(BaseModel):
    """A whole run: the config, one summary per step, an overall summary and the raw samples."""

    config: LoadConfig = Field(..., description="The run's configuration")
    summary: Summary = Field(..., description="The only step's summary, or all steps together for sweeps")
    steps: list[StepResult] = Field(default_factory=list, description="Per-step results, in order")
    capacity: CapacityResult | None = Field(None, description="Capacity search outcome (profile capacity)")
    samples: list[Sample] = Field(default_factory=list, exclude=True,
                                  description="Raw samples; stored beside summary.json, not inside it")

    def save(self, directory: str | Path, fmt: SampleFormat = "parquet") -> Path:
        """Writes summary.json and samples.parquet (or samples.jsonl); returns the directory."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        (out / "summary.json").write_text(self.model_dump_json(indent=2))
        save_samples(self.samples, out / f"samples.{fmt}")
        return out

    @classmethod
    def load(cls, directory: str | Path) -> LoadResult:
        d = Path(directory)
        result = cls.model_validate_json((d / "summary.json").read_text())
        for name in ("samples.parquet", "samples.jsonl"):
            if (d / name).exists():
                result.samples = load_samples(d / name)
                break
        return result

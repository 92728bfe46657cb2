"""A run's plan: the effective recipe, its cluster profile and job spec, and where the run came from.

Everything in it is JSON-able, because it travels between Airflow tasks through XCom; it holds
no secret. Kept apart from `pipeline` so the operators can import it while Airflow parses DAGs.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

from factorybench.recipe.cluster import ClusterProfile
from factorybench.recipe.schema import Recipe
from factorybench.slurm.spec import JobSpec


@dataclass(frozen=True)
class Plan:
    recipe_path: str
    recipe_text: str  # the file as written; `recipe` is the effective recipe after run overrides
    recipe: dict[str, Any]
    recipe_hash: str
    workload_hash: str  # what comparable runs share (recipe.loader.workload_hash)
    overrides: dict[str, Any]
    cluster_name: str
    cluster: dict[str, Any]
    spec: dict[str, Any]
    dag_id: str
    run_id: str
    run_tag: str
    provenance: dict[str, Any] = field(default_factory=dict)  # trigger, ci_ref, versions, commit

    def recipe_model(self) -> Recipe:
        return Recipe.model_validate(self.recipe)

    def cluster_model(self) -> ClusterProfile:
        return ClusterProfile.model_validate(self.cluster)

    def spec_model(self) -> JobSpec:
        return JobSpec.from_dict(self.spec)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Plan":
        return cls(**d)


def run_tag(run_id: str) -> str:
    """Short, SLURM-safe and unique per run: names the jobs so each run's jobs are findable."""
    return hashlib.sha1(run_id.encode()).hexdigest()[:10]

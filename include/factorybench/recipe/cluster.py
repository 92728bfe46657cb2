"""Cluster profiles: the operator-owned half of a run (where and how to reach SLURM).

Recipes say *what* to benchmark and name a profile; `config/clusters.yaml` says how
to reach each cluster. Profiles may use `${VAR}` and `${VAR:-default}` so one file
serves the dev cluster on any machine. Variables are expanded in the parsed YAML's string
values, never in its text, so a value can hold any character without changing the structure.
"""

from __future__ import annotations

import os
import re
from typing import Any, Literal, Mapping

from pydantic import Field, field_validator

from factorybench.recipe.schema import EnvName, Strict, Word, matching
from factorybench.slurm import spec as patterns
from factorybench.slurm.spec import ValuePattern

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

# Pending reasons that, in practice, never clear on their own (ReFrame's list, plus QOS/assoc limits).
DEFAULT_BLOCKED_REASONS = (
    "ReqNodeNotAvail", "PartitionDown", "PartitionInactive", "PartitionNodeLimit",
    "PartitionConfig", "PartitionTimeLimit", "QOSMaxSubmitJobPerUserLimit", "InvalidQOS",
    "InvalidAccount", "AssocMaxJobsLimit", "BadConstraints", "NodeDown", "DependencyNeverSatisfied",
)


class PendingPolicy(Strict):
    max_pending_s: float | None = Field(3600, gt=0, description="cancel a job pending longer than this")
    blocked_reasons: list[str] = Field(default_factory=lambda: list(DEFAULT_BLOCKED_REASONS))
    grace_s: float = Field(30, ge=0, description="how long a blocked reason may persist before cancel")


class RestSettings(Strict):
    conn_id: str = "slurm_rest"
    version: matching(ValuePattern(r"v0\.0\.\d{1,3}", "a slurmrestd version such as v0.0.43")) | None = Field(
        None, description="None = auto-detect")
    user: Word | None = Field(None, description="X-SLURM-USER-NAME; defaults to the connection login")
    token_command: str | None = Field(
        None, description="prints SLURM_JWT=...; run on the login node (ssh_conn_id) or locally")
    token_lifespan_s: int = Field(1800, ge=60)
    token_refresh_margin_s: float = Field(60, ge=0, description="fetch a new token this long before the "
                                                                "cached one expires")


_URL = ValuePattern(r"https?://[A-Za-z0-9.\-]+(?::\d{1,5})?(?:/[A-Za-z0-9_.\-/]*)?",
                    "an http(s) URL such as http://prometheus.example:9090")


class ExporterProfile(Strict):
    """How a job starts one exporter next to the service (factorybench.monitoring.exporters)."""

    command: list[str] = Field(..., min_length=1, description="argv, shell-quoted; {port} and {node} "
                                                              "are the exporter's port and the node's name")
    image: matching(patterns.PATH, 4096) | None = Field(None, description="Apptainer image to run it in")
    port: int | Literal["auto"] = Field(..., description="'auto' = a port derived from the job id")


class MonitoringProfile(Strict):
    """Where the monitoring stack is, as seen from Airflow (URLs) and from the jobs (file_sd_dir)."""

    prometheus_url: matching(_URL, 2048) | None = Field(None, description="Prometheus HTTP API for node/GPU/energy")
    pushgateway_url: matching(_URL, 2048) | None = Field(None, description="Pushgateway for summaries and live progress")
    loki_url: matching(_URL, 2048) | None = Field(None, description="Loki, for the service job's stdout/stderr")
    file_sd_dir: matching(patterns.PATH, 4096) | None = Field(
        None, description="directory shared with Prometheus' file_sd, where jobs register their exporters")
    selector: str = Field('slurm_job_id="{job_id}"', min_length=1,
                          description="PromQL label matchers for the job's exporters; {job_id}, {node}")
    node_exporter: ExporterProfile = Field(default_factory=lambda: ExporterProfile(
        command=["prometheus-node-exporter", "--web.listen-address={node}:{port}"], port=9100))
    dcgm_exporter: ExporterProfile = Field(default_factory=lambda: ExporterProfile(
        command=["dcgm-exporter", "--address", "{node}:{port}"], port=9400))
    live_interval_s: float = Field(5.0, ge=0.5, le=300, description="how often live progress is pushed")
    slurm_energy: bool = Field(False, description="the site accounts energy (sacct ConsumedEnergyRaw)")
    timeout_s: float = Field(5.0, gt=0, le=120, description="for every monitoring HTTP call")


class ClusterProfile(Strict):
    transport: Literal["ssh", "rest", "local"]
    description: str = ""
    ssh_conn_id: str | None = "slurm_ssh"
    rest: RestSettings = Field(default_factory=RestSettings)
    workdir: matching(patterns.PATH, 4096) = Field(
        ..., description="existing directory on the cluster for scripts and output")
    node_address: str = Field("{node}", description="how Airflow reaches a compute node; {node} = its name")
    shebang: Literal["#!/bin/bash", "#!/bin/bash -l"] = "#!/bin/bash"
    env: dict[EnvName, str] = Field(default_factory=lambda: {"PATH": "/usr/local/bin:/usr/bin:/bin"})
    poll_interval_s: float = Field(2.0, gt=0, le=300)
    pending: PendingPolicy = Field(default_factory=PendingPolicy)
    monitoring: MonitoringProfile = Field(default_factory=MonitoringProfile)
    max_concurrent_jobs: int | None = Field(
        None, ge=1, le=10000, description="at most this many of this cluster's runs hold a SLURM job at once "
                                          "(the Airflow pool pool_name(profile)); None: no pool")

    @field_validator("env")
    @classmethod
    def _path(cls, v):
        if "PATH" not in v:
            raise ValueError("must set PATH: slurmctld rejects jobs with an empty environment")
        return v

    @field_validator("node_address")
    @classmethod
    def _addr(cls, v):
        if not re.fullmatch(r"[A-Za-z0-9.:\-]*(?:\{node\}[A-Za-z0-9.:\-]*)?", v) or not v:
            raise ValueError("must be a plain host name or address, or one with {node} in it")
        return v

    def address_of(self, node: str) -> str:
        return self.node_address.replace("{node}", node)


def expand_vars(text: str, env: Mapping[str, str] | None = None) -> str:
    """`${VAR}` and `${VAR:-default}` in one string; an unset VAR without default is an error
    (KeyError naming it), not ''."""
    env = os.environ if env is None else env

    def sub(m: re.Match) -> str:
        name, default = m.group(1), m.group(2)
        if name in env and env[name] != "":
            return env[name]
        if default is not None:
            return default
        raise KeyError(name)

    return _VAR.sub(sub, text)


def expand_tree(node: Any, env: Mapping[str, str] | None = None, path: str = "") -> tuple[Any, list[tuple[str, str]]]:
    """Expand variables in every string value of a parsed YAML tree (keys are left alone).
    Returns the new tree and (key path, problem) for each variable that is unset."""
    if isinstance(node, str):
        try:
            return expand_vars(node, env), []
        except KeyError as exc:
            return node, [(path, f"environment variable {exc.args[0]} is not set and has no default")]
    if isinstance(node, dict):
        out, problems = {}, []
        for key, value in node.items():
            out[key], found = expand_tree(value, env, f"{path}.{key}" if path else str(key))
            problems += found
        return out, problems
    if isinstance(node, list):
        items = [expand_tree(v, env, f"{path}.{i}") for i, v in enumerate(node)]
        return [v for v, _ in items], [p for _, found in items for p in found]
    return node, []


def pool_name(profile: str) -> str:
    """The Airflow pool of a cluster profile's runs (docs/SCALE.md)."""
    return f"factorybench_{profile}"


def pools(profiles: Mapping[str, ClusterProfile]) -> dict[str, dict[str, Any]]:
    """`airflow pools import` JSON for every profile with max_concurrent_jobs. Deferred tasks count:
    a sensor waiting for its job holds the job, so it holds the slot."""
    return {pool_name(name): {"slots": p.max_concurrent_jobs, "include_deferred": True,
                              "description": f"factorybench: runs holding a SLURM job on {name} ({p.description})"[:200]}
            for name, p in sorted(profiles.items()) if p.max_concurrent_jobs}

"""Cluster profiles: the operator-owned half of a run (where and how to reach SLURM).

Recipes say *what* to benchmark and name a profile; `config/clusters.yaml` says how
to reach each cluster. Profiles may use `${VAR}` and `${VAR:-default}` so one file
serves the dev cluster on any machine.
"""

from __future__ import annotations

import os
import re
from typing import Literal

from pydantic import Field, field_validator

from factorybench.recipe.schema import Strict

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
    version: str | None = Field(None, pattern=r"^v0\.0\.\d+$", description="None = auto-detect")
    user: str | None = Field(None, description="X-SLURM-USER-NAME; defaults to the connection login")
    token_command: str | None = Field(
        None, description="prints SLURM_JWT=...; run on the login node (ssh_conn_id) or locally")
    token_lifespan_s: int = Field(1800, ge=60)


class ClusterProfile(Strict):
    transport: Literal["ssh", "rest", "local"]
    description: str = ""
    ssh_conn_id: str | None = "slurm_ssh"
    rest: RestSettings = Field(default_factory=RestSettings)
    workdir: str = Field(..., description="existing directory on the cluster for scripts and output")
    node_address: str = Field("{node}", description="how Airflow reaches a compute node; {node} = its name")
    shebang: Literal["#!/bin/bash", "#!/bin/bash -l"] = "#!/bin/bash"
    env: dict[str, str] = Field(default_factory=lambda: {"PATH": "/usr/local/bin:/usr/bin:/bin"})
    poll_interval_s: float = Field(2.0, gt=0, le=300)
    pending: PendingPolicy = Field(default_factory=PendingPolicy)

    @field_validator("env")
    @classmethod
    def _path(cls, v):
        if "PATH" not in v:
            raise ValueError("must set PATH: slurmctld rejects jobs with an empty environment")
        return v

    @field_validator("node_address")
    @classmethod
    def _addr(cls, v):
        if "{node}" not in v and not re.match(r"^[A-Za-z0-9.:\-]+$", v):
            raise ValueError("must contain {node} or be a plain host name or address")
        return v

    def address_of(self, node: str) -> str:
        return self.node_address.replace("{node}", node)


def expand_vars(text: str, env: dict[str, str] | None = None) -> str:
    """`${VAR}` and `${VAR:-default}`; an unset VAR without default is an error, not ''."""
    env = os.environ if env is None else env

    def sub(m: re.Match) -> str:
        name, default = m.group(1), m.group(2)
        if name in env and env[name] != "":
            return env[name]
        if default is not None:
            return default
        raise KeyError(name)

    return _VAR.sub(sub, text)

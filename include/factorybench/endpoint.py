"""SLURM job → service endpoint: find where the service listens, then wait until it answers.

While probing, the job is re-checked every few probes: a service that crashed during
start-up fails the run at once with SLURM's state, instead of after the whole deadline.
"""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

import aiohttp

from factorybench.errors import EndpointError, JobError
from factorybench.recipe.cluster import ClusterProfile
from factorybench.recipe.schema import Readiness, Recipe
from factorybench.slurm.job import JobInfo
from factorybench.slurm.script import service_port


@dataclass(frozen=True)
class Endpoint:
    node: str
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def to_dict(self) -> dict:
        return {"node": self.node, "host": self.host, "port": self.port, "url": self.url}


def discover(info: JobInfo, recipe: Recipe, cluster: ClusterProfile) -> Endpoint:
    """The first node of the job, mapped through the profile's node_address and resolved."""
    if not info.nodes:
        raise EndpointError(f"{info.describe()}: SLURM reports no node for the job")
    node = info.nodes[0]
    name = cluster.address_of(node)
    try:
        infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise EndpointError(f"node {node}: cannot resolve {name!r} ({exc.strerror}); "
                            "set node_address in the cluster profile") from None
    host = infos[0][4][0]
    return Endpoint(node=node, host=host, port=service_port(recipe, info.job_id))


async def wait_ready(endpoint: Endpoint, readiness: Readiness,
                     job_status: Callable[[], Awaitable[JobInfo]] | None = None,
                     check_job_every: int = 5) -> float:
    """Probe until `expect_status`; return seconds taken. Raises EndpointError or JobError."""
    url = endpoint.url + readiness.path
    start = time.monotonic()
    deadline = start + readiness.deadline_s
    last = "no answer yet"
    probes = 0
    timeout = aiohttp.ClientTimeout(total=max(1.0, min(10.0, readiness.interval_s * 5)))
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while True:
            probes += 1
            try:
                async with session.get(url) as resp:
                    if resp.status == readiness.expect_status:
                        return time.monotonic() - start
                    last = f"HTTP {resp.status}"
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            if job_status is not None and probes % check_job_every == 0:
                info = await job_status()
                if info.terminal:
                    raise JobError(f"service ended before it was ready: {info.describe()}",
                                   info.job_id, info.state.value, info.reason)
            if time.monotonic() + readiness.interval_s > deadline:
                raise EndpointError(f"{url} not ready after {readiness.deadline_s:.0f}s (last: {last})")
            await asyncio.sleep(readiness.interval_s)

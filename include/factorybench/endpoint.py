"""SLURM job → service endpoint: find where the service listens, then wait until it answers.

A job on several nodes serves from each of them (service.serve_on every-node: a replica per node)
or from its first node only (first-node: the command starts its own workers elsewhere, as vLLM
does over Ray). The endpoint is the first serving node's; `replicas` lists every serving node's,
and readiness waits for all of them.

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
    replicas: tuple[Endpoint, ...] = ()  # every serving node's endpoint, this one first; () = only this one

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def serving(self) -> tuple[Endpoint, ...]:
        return self.replicas or (self,)

    def to_dict(self) -> dict:
        return {"node": self.node, "host": self.host, "port": self.port, "url": self.url,
                "replicas": [{"node": r.node, "host": r.host, "port": r.port, "url": r.url} for r in self.serving]}


def discover(info: JobInfo, recipe: Recipe, cluster: ClusterProfile) -> Endpoint:
    """Every node of the job that serves, each mapped through the profile's node_address and resolved:
    the first one's endpoint, with all of them as its replicas."""
    if not info.nodes:
        raise EndpointError(f"{info.describe()}: SLURM reports no node for the job")
    port = service_port(recipe, info.job_id)
    nodes = info.nodes if recipe.service.serve_on == "every-node" else info.nodes[:1]
    found = tuple(Endpoint(node=node, host=_resolve(node, cluster), port=port) for node in nodes)
    return Endpoint(found[0].node, found[0].host, port, found)


def _resolve(node: str, cluster: ClusterProfile) -> str:
    name = cluster.address_of(node)
    try:
        infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise EndpointError(f"node {node}: cannot resolve {name!r} ({exc.strerror}); "
                            "set node_address in the cluster profile") from None
    return infos[0][4][0]


async def _http_probe(session: aiohttp.ClientSession, url: str, expect_status: int) -> str | None:
    """None when ready, else what the server said."""
    async with session.get(url) as resp:
        return None if resp.status == expect_status else f"HTTP {resp.status}"


async def _tcp_probe(endpoint: Endpoint, timeout: float) -> None:
    """Ready once the port accepts a connection: for servers that speak no HTTP (Redis, PostgreSQL)."""
    _, writer = await asyncio.wait_for(asyncio.open_connection(endpoint.host, endpoint.port), timeout)
    writer.close()
    await writer.wait_closed()


async def wait_ready(endpoint: Endpoint, readiness: Readiness,
                     job_status: Callable[[], Awaitable[JobInfo]] | None = None,
                     check_job_every: int = 5) -> float:
    """Probe every replica until all are ready; return seconds taken (the slowest). Raises
    EndpointError or JobError."""
    start = time.monotonic()
    await asyncio.gather(*(_wait_one(r, readiness, job_status, check_job_every, start) for r in endpoint.serving))
    return time.monotonic() - start


async def _wait_one(endpoint: Endpoint, readiness: Readiness, job_status: Callable[[], Awaitable[JobInfo]] | None,
                    check_job_every: int, start: float) -> float:
    """Probe one replica until ready (`expect_status`, or a TCP connect for kind=tcp)."""
    tcp = readiness.kind == "tcp"
    url = f"tcp://{endpoint.host}:{endpoint.port}" if tcp else endpoint.url + readiness.path
    deadline = start + readiness.deadline_s
    last = "no answer yet"
    probes = 0
    timeout = aiohttp.ClientTimeout(total=max(1.0, min(10.0, readiness.interval_s * 5)))
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while True:
            probes += 1
            try:
                if tcp:
                    await _tcp_probe(endpoint, timeout.total)
                    return time.monotonic() - start
                answer = await _http_probe(session, url, readiness.expect_status)
                if answer is None:
                    return time.monotonic() - start
                last = answer
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

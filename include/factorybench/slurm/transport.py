"""The small interface every SLURM transport implements, and the registry that picks one.

Async first, because the deferrable trigger polls from the triggerer's event loop;
synchronous callers (operators, the CLI) use `run_sync`. One file per backend:
`local.py`, `ssh.py`, `rest/`.
"""

from __future__ import annotations

import abc
import asyncio
import base64
import binascii
import importlib
import shlex
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping, Protocol, Sequence, TypeVar

from factorybench.errors import SchedulerError
from factorybench.slurm.cluster_state import ClusterState
from factorybench.slurm.job import JobInfo
from factorybench.slurm.spec import JobSpec

T = TypeVar("T")


class CommandRunner(Protocol):
    """Runs one shell command line somewhere (a login node over SSH, or here)."""

    async def run(self, command: str, timeout: float | None = None) -> tuple[int, str, str]:
        ...


class StdinRunner(CommandRunner, Protocol):
    """A runner that can also feed text to the command's stdin (how secrets travel over SSH)."""

    async def run_with_input(self, command: str, stdin: str,
                             timeout: float | None = None) -> tuple[int, str, str]:
        ...


@dataclass(frozen=True)
class JobOutput:
    stdout: str
    stderr: str
    stdout_path: str | None = None
    stderr_path: str | None = None


class Transport(abc.ABC):
    """Submit, observe and cancel jobs. Methods return what they saw; they keep no job state."""

    kind: str = ""

    @abc.abstractmethod
    async def submit(self, spec: JobSpec, secrets: Mapping[str, str] | None = None) -> str:
        """Submit and return the job id. Raises SchedulerError on refusal.

        `secrets` ({env name: value}) reach the job's environment only: never the script, a
        command line, a log line or an error message (docs/SECURITY.md)."""

    @abc.abstractmethod
    async def status(self, job_id: str) -> JobInfo:
        """The job's current state. A job that is gone and unknown to accounting is UNKNOWN."""

    async def statuses(self, job_ids: Sequence[str]) -> dict[str, JobInfo]:
        """Several jobs' states in as few scheduler queries as the backend allows: one entry per id
        (UNKNOWN when gone). The shared poller (slurm/poller.py) calls this once per round for every
        job waited for on the cluster. This default asks one job at a time."""
        return {str(job_id): await self.status(str(job_id)) for job_id in dict.fromkeys(job_ids)}

    @abc.abstractmethod
    async def cancel(self, job_id: str) -> None:
        """Cancel; a job that already ended is not an error."""

    async def output(self, job_id: str, spec: JobSpec | None = None,
                     max_bytes: int = 1 << 20) -> JobOutput:
        """The tail (at most max_bytes) of the job's stdout and stderr."""
        if spec is None:
            return JobOutput("", "(no job spec: output paths unknown)")
        paths = [spec.output_path(job_id, stream) for stream in ("stdout", "stderr")]
        stdout, stderr = await asyncio.gather(*(self._tail(p, max_bytes) for p in paths))
        return JobOutput(stdout, stderr, *paths)

    async def _tail(self, path: str, max_bytes: int) -> str:
        """The last max_bytes of one file where the job ran, or a note saying why not."""
        raise NotImplementedError(f"{type(self).__name__} cannot read job output")

    async def fetch(self, path: str, max_bytes: int = 256 << 20) -> bytes:
        """A whole file from where the jobs run (a client job's samples, say). SchedulerError when
        it cannot be read or is larger than max_bytes."""
        raise NotImplementedError(f"{type(self).__name__} cannot fetch files")

    async def cluster_state(self) -> ClusterState:
        """The cluster now: partitions, nodes (CPUs, GPUs free and used) and factorybench's jobs
        that have not ended (slurm/cluster_state.py). Read-only; callers cache it."""
        raise NotImplementedError(f"{type(self).__name__} cannot read the cluster's state")

    async def close(self) -> None:
        """Release connections. Safe to call more than once."""


async def cancel_and_wait(transport: Transport, job_id: str, poll_s: float,
                          timeout_s: float = 180.0) -> tuple[JobInfo, JobInfo]:
    """Teardown: cancel the job unless it already ended, then wait until SLURM says it has
    (COMPLETING is not gone yet). Returns (before, after); SchedulerError if it outlives timeout_s."""
    before = await transport.status(job_id)
    if not before.terminal:
        await transport.cancel(job_id)
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not (after := await transport.status(job_id)).terminal:
        if asyncio.get_running_loop().time() > deadline:
            raise SchedulerError(f"job {job_id} did not end within {timeout_s:.0f}s of scancel: {after.describe()}")
        await asyncio.sleep(min(poll_s, 2.0))
    return before, after


async def fetch_through(run: Callable[[str], Awaitable[tuple[int, str, str]]], path: str,
                        max_bytes: int) -> bytes:
    """`fetch` for transports that reach the cluster's files through shell commands (`run`):
    base64 keeps binary files intact through a text channel."""
    command = f"set -o pipefail; head -c {int(max_bytes) + 1} -- {shlex.quote(path)} | base64 -w0"
    rc, out, err = await run(command)
    if rc != 0:
        raise SchedulerError(f"cannot read {path} on the cluster: {err.strip() or f'exit {rc}'}")
    try:
        data = base64.b64decode(out.strip(), validate=True)
    except binascii.Error as exc:
        raise SchedulerError(f"reading {path} returned garbled data: {exc}") from None
    if len(data) > max_bytes:
        raise SchedulerError(f"{path} is larger than {max_bytes} bytes; not fetched")
    return data


_REGISTRY: dict[str, Callable[..., Transport]] = {}


def register_transport(kind: str):
    def deco(factory):
        _REGISTRY[kind] = factory
        factory.kind = kind
        return factory
    return deco


TRANSPORT_KINDS = ("local", "rest", "ssh")


def make_transport(kind: str, **options: Any) -> Transport:
    """Import only the backend asked for (one module each), so one backend's missing
    dependency never breaks the others."""
    if kind not in TRANSPORT_KINDS:
        raise ValueError(f"unknown transport {kind!r}; known: {', '.join(TRANSPORT_KINDS)}")
    importlib.import_module(f"factorybench.slurm.{kind}")
    return _REGISTRY[kind](**options)


def run_sync(coro: Awaitable[T]) -> T:
    """Run a transport coroutine from synchronous code (operators, CLI), on uvloop when installed:
    the load engine runs in the same loop, and its timing relies on uvloop's faster I/O."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)  # type: ignore[arg-type]
    return uvloop.run(coro)  # type: ignore[arg-type]

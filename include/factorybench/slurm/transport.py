"""The small interface every SLURM transport implements, and the registry that picks one.

Async first, because the deferrable trigger polls from the triggerer's event loop;
synchronous callers (operators, the CLI) use `run_sync`. One file per backend:
`local.py`, `ssh.py`, `rest/`.
"""

from __future__ import annotations

import abc
import asyncio
import importlib
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Protocol, TypeVar

from factorybench.slurm.job import JobInfo
from factorybench.slurm.spec import JobSpec

T = TypeVar("T")


class CommandRunner(Protocol):
    """Runs one shell command line somewhere (a login node over SSH, or here)."""

    async def run(self, command: str, timeout: float | None = None) -> tuple[int, str, str]:
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
    async def submit(self, spec: JobSpec) -> str:
        """Submit and return the job id. Raises SchedulerError on refusal."""

    @abc.abstractmethod
    async def status(self, job_id: str) -> JobInfo:
        """The job's current state. A job that is gone and unknown to accounting is UNKNOWN."""

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

    async def close(self) -> None:
        """Release connections. Safe to call more than once."""


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
    """Run a transport coroutine from synchronous code (operators, CLI)."""
    return asyncio.run(coro)  # type: ignore[arg-type]

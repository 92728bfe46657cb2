"""The slurmrestd transport: submit, status, cancel and output through SLURM's REST API.

The API version is picked from what the server publishes (newest both sides speak)
unless given. A job that has left slurmctld's memory is looked up in slurmdb when
the server has it, and is otherwise UNKNOWN: never assumed to have COMPLETED.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shlex
from typing import Mapping, Sequence

from factorybench.errors import SchedulerError
from factorybench.secrets import redact
from factorybench.slurm.job import JobInfo, JobState
from factorybench.slurm.rest.client import ESLURM_ALREADY_DONE, ESLURM_INVALID_JOB_ID, RestClient
from factorybench.slurm.cluster_state import ClusterState, queued
from factorybench.slurm.rest.dialects import (DIALECTS, SUPPORTED, Dialect, db_job_info, job_info, node_info,
                                              partition_info, version_key)
from factorybench.slurm.rest.tokens import TokenProvider
from factorybench.slurm.spec import JobSpec
from factorybench.slurm.transport import CommandRunner, JobOutput, Transport, fetch_through, register_transport

log = logging.getLogger("factorybench.slurm.rest")

_PATH_VERSION = re.compile(r"^/(slurm|slurmdb)/(v\d+\.\d+\.\d+)/")
GONE_RAW_STATE = "finished, state unknown"
_GONE = frozenset({ESLURM_INVALID_JOB_ID})


def served_versions(openapi: dict) -> dict[str, set[str]]:
    """{"slurm": {...}, "slurmdb": {...}} from an OpenAPI document's path names."""
    out: dict[str, set[str]] = {"slurm": set(), "slurmdb": set()}
    for path in (openapi.get("paths") or {}):
        m = _PATH_VERSION.match(path)
        if m:
            out[m.group(1)].add(m.group(2))
    return out


def pick_version(served: set[str]) -> str:
    """The newest version both the server and this package speak."""
    common = sorted(served & set(DIALECTS), key=version_key)
    if not common:
        raise SchedulerError(f"slurmrestd serves {', '.join(sorted(served, key=version_key)) or 'no slurm API'}; "
                             f"factorybench speaks {', '.join(SUPPORTED)}")
    return common[-1]


@register_transport("rest")
class RestTransport(Transport):
    """Talks to slurmrestd.

    url, user: slurmrestd's base URL and the SLURM user the token belongs to.
    token_provider: where tokens come from (StaticTokenProvider, CommandTokenProvider).
    version: "v0.0.43" to skip auto-detection (the server must still serve it).
    workdir_reader: runs `tail -c` on the job's output files (SSH to a login node, or a
        LocalRunner when this machine sees the cluster's filesystem); slurmrestd cannot.
    """

    def __init__(self, url: str, user: str, token_provider: TokenProvider, version: str | None = None,
                 workdir_reader: CommandRunner | None = None, *, timeout_s: float = 30.0,
                 retries: int = 4, backoff_s: float = 0.5, backoff_cap_s: float = 10.0):
        if version is not None and version not in DIALECTS:
            raise ValueError(f"unsupported slurmrestd version {version!r}; known: {', '.join(SUPPORTED)}")
        self.client = RestClient(url, user, token_provider, timeout_s=timeout_s, retries=retries,
                                 backoff_s=backoff_s, backoff_cap_s=backoff_cap_s)
        self.requested_version = version
        self.workdir_reader = workdir_reader
        self._version: str | None = None
        self._slurmdb: set[str] = set()
        self._detect_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"RestTransport(url={self.client.url!r}, user={self.client.user!r}, version={self._version})"

    @property
    def version(self) -> str | None:
        """The API version in use, once known (after `detect_version` or the first call)."""
        return self._version

    async def detect_version(self) -> str:
        """Read the server's OpenAPI document once and settle the version to speak."""
        async with self._detect_lock:
            if self._version is None:
                served = await self._served()
                if self.requested_version:
                    if self.requested_version not in served["slurm"]:
                        raise SchedulerError(f"slurmrestd at {self.client.url} does not serve "
                                             f"{self.requested_version} (it serves "
                                             f"{', '.join(sorted(served['slurm'], key=version_key))})")
                    self._version = self.requested_version
                else:
                    self._version = pick_version(served["slurm"])
                self._slurmdb = served["slurmdb"]
                log.info("slurmrestd at %s serves %s; using %s%s", self.client.url,
                         ", ".join(sorted(served["slurm"], key=version_key)), self._version,
                         "" if self.requested_version is None else " (requested)")
            return self._version

    async def _served(self) -> dict[str, set[str]]:
        # 23.02+ publish /openapi/v3; 22.05 also answers /openapi. Either lists every path.
        problems = []
        for path in ("/openapi/v3", "/openapi"):
            reply = await self.client.call("GET", path)
            served = served_versions(reply.doc)
            if reply.status == 200 and served["slurm"]:
                return served
            problems.append(f"{path}: HTTP {reply.status}")
        raise SchedulerError(f"cannot read slurmrestd's OpenAPI document at {self.client.url} "
                             f"({'; '.join(problems)})")

    async def _dialect(self) -> tuple[str, Dialect]:
        version = self._version or await self.detect_version()
        return version, DIALECTS[version]

    async def submit(self, spec: JobSpec, secrets: Mapping[str, str] | None = None) -> str:
        try:
            return await self._submit(spec, secrets)
        except SchedulerError as exc:
            if secrets:  # an error may echo what was sent: hide the values before anyone logs it
                exc.args = (redact(str(exc), secrets),)
            raise

    async def _submit(self, spec: JobSpec, secrets: Mapping[str, str] | None) -> str:
        version, dialect = await self._dialect()
        reply = await self.client.call("POST", f"/slurm/{version}/job/submit", dialect.submit_body(spec, secrets),
                                       idempotent=False)
        doc = reply.doc
        job_id = doc.get("job_id", (doc.get("result") or {}).get("job_id"))
        if job_id in (None, "", 0):
            reply.raise_errors(f"slurmrestd {version} refused job {spec.name!r}")
            raise SchedulerError(f"slurmrestd {version} accepted job {spec.name!r} but returned no job id")
        # A job id means the job is queued, whatever came with it: 22.05 reports e.g. a time
        # limit above the partition's MaxTime as errors[] next to the id (26.05 as a warning).
        # Raising would leave a queued job nobody tracks, so those errors are logged instead.
        for error in reply.errors:
            log.warning("slurmrestd %s queued job %s (%s) with an error: %s", version, job_id, spec.name,
                        redact(str(error), secrets))
        if doc.get("job_submit_user_msg"):
            log.info("job_submit plugin says: %s", doc["job_submit_user_msg"])
        log.info("submitted %s as job %s via REST %s", spec.name, job_id, version)
        return str(job_id)

    async def status(self, job_id: str) -> JobInfo:
        version, _ = await self._dialect()
        reply = await self.client.call("GET", f"/slurm/{version}/job/{job_id}")
        # Gone: ESLURM_INVALID_JOB_ID, or a 404 that is a job query's answer (a routing miss has no jobs[]).
        if reply.numbers & _GONE or (reply.status == 404 and "jobs" in reply.doc):
            return await self.history(job_id)
        reply.raise_errors(f"slurmrestd {version}: status of job {job_id}")
        jobs = [j for j in reply.doc.get("jobs") or () if str(j.get("job_id")) == str(job_id)]
        if not jobs:
            return await self.history(job_id)
        return job_info(jobs[0], version)

    async def statuses(self, job_ids: Sequence[str]) -> dict[str, JobInfo]:
        """One GET /slurm/vX/jobs for every job; slurmdb (or UNKNOWN) only for those slurmctld forgot."""
        ids = list(dict.fromkeys(str(j) for j in job_ids))
        if not ids:
            return {}
        version, _ = await self._dialect()
        reply = await self.client.call("GET", f"/slurm/{version}/jobs")
        reply.raise_errors(f"slurmrestd {version}: GET jobs")
        wanted = set(ids)
        found = {info.job_id: info for info in (job_info(j, version) for j in reply.doc.get("jobs") or ())
                 if info.job_id in wanted}
        return {j: found[j] if j in found else await self.history(j) for j in ids}

    async def history(self, job_id: str) -> JobInfo:
        """A job slurmctld has forgotten: slurmdb's record, or UNKNOWN (never COMPLETED)."""
        version = self._version or await self.detect_version()
        db_versions = sorted(self._slurmdb, key=version_key)
        if db_versions:
            db_version = version if version in self._slurmdb else db_versions[-1]
            reply = await self.client.call("GET", f"/slurmdb/{db_version}/job/{job_id}")
            jobs = [j for j in reply.doc.get("jobs") or () if str(j.get("job_id")) == str(job_id)]
            if jobs and not reply.errors:
                return db_job_info(jobs[-1], db_version)  # the last record is the latest (requeues)
            log.info("slurmdb %s has no record of job %s (HTTP %s%s)", db_version, job_id, reply.status,
                     "".join(f"; {e}" for e in reply.errors))
        return JobInfo(job_id=str(job_id), state=JobState.UNKNOWN, raw_state=GONE_RAW_STATE,
                       source=f"rest {version}")

    async def cancel(self, job_id: str) -> None:
        version, _ = await self._dialect()
        reply = await self.client.call("DELETE", f"/slurm/{version}/job/{job_id}")
        if reply.numbers & {ESLURM_ALREADY_DONE, ESLURM_INVALID_JOB_ID}:
            log.info("job %s had already ended; nothing to cancel", job_id)
            return
        reply.raise_errors(f"slurmrestd {version}: cancel job {job_id}")

    async def cluster_state(self) -> ClusterState:
        """The nodes, partitions and jobs endpoints, read together."""
        version, _ = await self._dialect()
        replies = await asyncio.gather(*(self.client.call("GET", f"/slurm/{version}/{what}")
                                         for what in ("nodes", "partitions", "jobs")))
        for what, reply in zip(("nodes", "partitions", "jobs"), replies):
            reply.raise_errors(f"slurmrestd {version}: GET {what}")
        nodes, partitions, jobs = (reply.doc for reply in replies)
        return ClusterState(f"rest {version}", tuple(partition_info(p) for p in partitions.get("partitions") or ()),
                            tuple(node_info(n) for n in nodes.get("nodes") or ()),
                            queued(job_info(j, version) for j in jobs.get("jobs") or ()))

    async def output(self, job_id: str, spec: JobSpec | None = None, max_bytes: int = 1 << 20) -> JobOutput:
        if spec is not None:
            out_path, err_path = spec.output_path(job_id, "stdout"), spec.output_path(job_id, "stderr")
        else:
            info = await self.status(job_id)
            out_path, err_path = (_expand(info.stdout_path, job_id, info.name),
                                  _expand(info.stderr_path, job_id, info.name))
        if self.workdir_reader is None:
            note = ("factorybench: slurmrestd cannot read job output files; give the REST transport a "
                    f"workdir_reader (SSH or local) to fetch {out_path or '?'} and {err_path or '?'}")
            return JobOutput("", note, out_path, err_path)
        stdout, stderr = await asyncio.gather(self._tail(out_path, max_bytes), self._tail(err_path, max_bytes))
        return JobOutput(stdout, stderr, out_path, err_path)

    async def _tail(self, path: str | None, max_bytes: int) -> str:
        if not path or self.workdir_reader is None:
            return ""
        rc, out, err = await self.workdir_reader.run(f"tail -c {int(max_bytes)} -- {shlex.quote(path)}")
        if rc != 0:
            log.info("could not read %s (exit %s): %s", path, rc, err.strip()[:200])
            return ""
        return out

    async def fetch(self, path: str, max_bytes: int = 256 << 20) -> bytes:
        if self.workdir_reader is None:
            raise SchedulerError(f"slurmrestd cannot read files; give the REST transport a workdir_reader "
                                 f"(SSH or local) to fetch {path}")
        return await fetch_through(self.workdir_reader.run, path, max_bytes)

    async def close(self) -> None:
        await self.client.close()


def _expand(path: str | None, job_id: str, name: str | None) -> str | None:
    """Resolve the %j/%x SLURM leaves in the paths older servers report unexpanded."""
    if not path:
        return None
    return path.replace("%j", str(job_id)).replace("%x", name or "%x")

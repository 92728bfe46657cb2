"""Cluster profile + Airflow connections → a core Transport.

The only place that knows how Airflow connections map onto transports. The SSH
provider's async hook *is* a CommandRunner (its `run_command` has the same shape),
so the core SSH transport needs no Airflow import.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Mapping, TypeVar

from airflow.providers.ssh.hooks.ssh import SSHHookAsync
from airflow.sdk import BaseHook, Variable
from airflow.sdk.exceptions import AirflowException
from airflow.sdk.log import amask_secret, mask_secret

from factorybench import secrets
from factorybench.errors import FactorybenchError
from factorybench.recipe.cluster import ClusterProfile
from factorybench.recipe.schema import SecretRef
from factorybench.slurm.runner import LocalRunner
from factorybench.slurm.transport import Transport, make_transport, run_sync

T = TypeVar("T")

# Credentials the core fetches itself (JWTs from `scontrol token`) are masked in every process
# that builds a transport: task workers and the triggerer.
secrets.add_masker(amask_secret)


class AirflowLookup:
    """Secret references → Airflow connections and Variables (factorybench.secrets.Lookup)."""

    def connection(self, conn_id: str) -> Any:
        return BaseHook.get_connection(conn_id)

    def variable(self, key: str) -> str:
        return Variable.get(key)


def resolve_secrets(refs: Mapping[str, SecretRef]) -> dict[str, str]:
    """Resolve a recipe's secret references here, at submit time, and register every value with
    Airflow's secret masker before anything else can log it."""
    try:
        values = secrets.resolve(refs, AirflowLookup())
    except FactorybenchError as exc:
        raise AirflowException(str(exc)) from exc
    for value in values.values():
        mask_secret(value)
    return values


class SshRunner:
    """Adapts SSHHookAsync to the core's CommandRunner protocol."""

    def __init__(self, conn_id: str):
        self.conn_id = conn_id
        self._hook = SSHHookAsync(ssh_conn_id=conn_id)

    async def run(self, command: str, timeout: float | None = None) -> tuple[int, str, str]:
        return await self._hook.run_command(command, timeout=timeout)

    async def run_with_input(self, command: str, stdin: str, timeout: float | None = None) -> tuple[int, str, str]:
        """`run`, with `stdin` written into the SSH channel (secrets: never on the command line)."""
        async with await self._hook._get_conn() as conn:
            result = await conn.run(command, input=stdin, timeout=timeout, check=False)
            return result.exit_status or 0, result.stdout or "", result.stderr or ""


def _runner(cluster: ClusterProfile):
    return SshRunner(cluster.ssh_conn_id) if cluster.ssh_conn_id else LocalRunner()


def _build(cluster: ClusterProfile, rest_conn: Any | None) -> Transport:
    if cluster.transport == "local":
        return make_transport("local", workdir=cluster.workdir)
    if cluster.transport == "ssh":
        if not cluster.ssh_conn_id:
            return make_transport("ssh", runner=LocalRunner())
        return make_transport("ssh", runner=SshRunner(cluster.ssh_conn_id))
    from factorybench.slurm.rest.tokens import CommandTokenProvider, StaticTokenProvider

    schema = rest_conn.schema or "http"
    port = f":{rest_conn.port}" if rest_conn.port else ""
    url = f"{schema}://{rest_conn.host}{port}"
    user = cluster.rest.user or rest_conn.login
    if not user:
        raise ValueError(f"connection {cluster.rest.conn_id}: set a login (X-SLURM-USER-NAME) "
                         "or rest.user in the cluster profile")
    if rest_conn.password:
        tokens = StaticTokenProvider(rest_conn.password)
    else:
        command = cluster.rest.token_command or f"scontrol token lifespan={cluster.rest.token_lifespan_s}"
        tokens = CommandTokenProvider(_runner(cluster), command=command, margin_s=cluster.rest.token_refresh_margin_s)
    return make_transport("rest", url=url, user=user, token_provider=tokens, version=cluster.rest.version,
                          workdir_reader=_runner(cluster))


def transport_for(cluster: ClusterProfile) -> Transport:
    rest_conn = BaseHook.get_connection(cluster.rest.conn_id) if cluster.transport == "rest" else None
    return _build(cluster, rest_conn)


def with_transport(cluster: ClusterProfile, step: Callable[[Transport], Awaitable[T]]) -> T:
    """Run `step(transport)` from a synchronous task: a fresh transport, always closed, and core
    errors turned into Airflow's (the only place that translation happens)."""
    transport = transport_for(cluster)

    async def go() -> T:
        try:
            return await step(transport)
        finally:
            await transport.close()

    try:
        return run_sync(go())
    except FactorybenchError as exc:
        raise AirflowException(str(exc)) from exc


async def atransport_for(cluster: ClusterProfile) -> Transport:
    """The same, without blocking the triggerer's event loop on the connection lookup."""
    rest_conn = await BaseHook.aget_connection(cluster.rest.conn_id) if cluster.transport == "rest" else None
    return _build(cluster, rest_conn)

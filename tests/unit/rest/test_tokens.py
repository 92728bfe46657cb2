"""Token providers: expiry, refresh, and that a token never shows up in text."""

from __future__ import annotations

import logging
import time

import pytest

from factorybench.errors import AuthError
from factorybench.slurm.rest import RestTransport
from factorybench.slurm.rest.tokens import (CommandTokenProvider, Secret, StaticTokenProvider, jwt_expiry,
                                            scrub)

from .conftest import FakeSlurmrestd, make_jwt


class TokenCommand:
    """A CommandRunner that prints a new `SLURM_JWT=` line each time it runs."""

    def __init__(self, lifespan: float = 3600, rc: int = 0):
        self.lifespan = lifespan
        self.rc = rc
        self.issued: list[str] = []
        self.commands: list[str] = []

    async def run(self, command: str, timeout: float | None = None) -> tuple[int, str, str]:
        self.commands.append(command)
        token = make_jwt(time.time() + self.lifespan) + f"n{len(self.issued)}"
        self.issued.append(token)
        if self.rc:
            return self.rc, "", f"scontrol: error: leaked SLURM_JWT={token}"
        return 0, f"SLURM_JWT={token}\n", ""


def test_jwt_expiry_reads_the_exp_claim():
    exp = time.time() + 90
    assert jwt_expiry(make_jwt(exp)) == int(exp)
    assert jwt_expiry("not-a-jwt") is None
    assert jwt_expiry("a.!!!.c") is None


def test_secret_and_providers_do_not_print_the_token():
    token = make_jwt(time.time() + 60)
    secret = Secret(token)
    assert token not in repr(secret) and token not in str(secret) and secret.reveal() == token
    assert token not in repr(StaticTokenProvider(token))
    assert scrub(f"header X-SLURM-USER-TOKEN: {token}") == "header X-SLURM-USER-TOKEN: <token>"
    assert scrub("SLURM_JWT=abc.def") == "SLURM_JWT=<token>"


async def test_command_provider_caches_until_close_to_expiry():
    runner = TokenCommand(lifespan=3600)
    provider = CommandTokenProvider(runner, "scontrol token lifespan=3600", margin_s=60)
    first = await provider.token()
    assert await provider.token() is first and len(runner.commands) == 1
    runner.lifespan = 30  # the next token is born within the margin: fetched again every time
    await provider.refresh()
    await provider.token()
    assert len(runner.commands) == 3
    assert runner.commands[0] == "scontrol token lifespan=3600"


async def test_refresh_is_shared_by_concurrent_callers():
    import asyncio

    runner = TokenCommand()
    provider = CommandTokenProvider(runner)
    rejected = await provider.token()
    tokens = await asyncio.gather(*(provider.refresh(rejected) for _ in range(5)))
    assert len(runner.commands) == 2 and len(set(tokens)) == 1 and tokens[0] != rejected


async def test_failed_token_command_is_an_auth_error_without_the_token():
    runner = TokenCommand(rc=1)
    with pytest.raises(AuthError) as err:
        await CommandTokenProvider(runner).token()
    assert runner.issued[0] not in str(err.value) and "exit 1" in str(err.value)


async def test_refresh_after_401_keeps_every_token_out_of_logs_and_errors(caplog):
    """An expired token is refused, refreshed once, and the call succeeds; then a refresh that
    does not help gives AuthError. No token string appears in any log record or message."""
    runner = TokenCommand()
    provider = CommandTokenProvider(runner)
    fake = FakeSlurmrestd(versions=("v0.0.42",))
    fake.on("GET", "/slurm/v0.0.42/job/5", (200, {"jobs": [{"job_id": 5, "job_state": ["RUNNING"]}]}))
    url = await fake.start()
    transport = RestTransport(url, "root", provider, backoff_s=0)
    caplog.set_level(logging.DEBUG, logger="factorybench")
    errors: list[str] = []
    try:
        await transport.detect_version()
        stale = (await provider.token()).reveal()
        fake.accepts = lambda token: token != stale  # the token in use has expired
        info = await transport.status("5")
        assert info.state.value == "RUNNING"
        assert len(runner.commands) == 2  # one refresh, one retry
        fake.accepts = lambda token: False  # now nothing is accepted
        with pytest.raises(AuthError) as err:
            await transport.status("5")
        errors.append(str(err.value))
        errors.append(repr(err.value))
        assert "even after a refresh" in str(err.value)
    finally:
        await transport.close()
        await fake.close()
    text = "\n".join([*errors, *(r.getMessage() for r in caplog.records), repr(transport), repr(provider)])
    assert runner.issued and all(token not in text for token in runner.issued)
    assert any("refreshing it once" in r.getMessage() for r in caplog.records)

"""Secrets: resolution of references, and the ways values reach a job (and nothing else)."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from factorybench import secrets
from factorybench.recipe.schema import SecretRef
from factorybench.secrets import SecretError, export_lines, resolve
from factorybench.slurm.spec import JobSpec

REPO = Path(__file__).resolve().parents[2]
VALUE = "s3cr3t-'\"$(touch /tmp/fb-pwned)`id`\\n\n;|&-value"


class FakeLookup:
    def __init__(self):
        self.conns = {"hf": SimpleNamespace(password="pw-1234567", login="user-x",
                                            extra_dejson={"token": "tok-7654321"})}
        self.vars = {"db_pw": "var-value-1"}

    def connection(self, conn_id):
        if conn_id not in self.conns:
            raise LookupError(f"The conn_id `{conn_id}` isn't defined")
        return self.conns[conn_id]

    def variable(self, key):
        if key not in self.vars:
            raise KeyError(f"Variable {key} does not exist")
        return self.vars[key]


def test_every_kind_of_reference_resolves(tmp_path):
    f = tmp_path / "secret"
    f.write_text("from-file-value\n")
    refs = {"A": SecretRef(connection="hf"), "B": SecretRef(connection="hf", field="login"),
            "C": SecretRef(connection="hf", field="extra.token"), "D": SecretRef(variable="db_pw"),
            "E": SecretRef(file=str(f)), "F": SecretRef(env="MY_TOKEN")}
    got = resolve(refs, FakeLookup(), env={"MY_TOKEN": "env-value-1"})
    assert got == {"A": "pw-1234567", "B": "user-x", "C": "tok-7654321", "D": "var-value-1",
                   "E": "from-file-value", "F": "env-value-1"}


def test_failures_are_all_reported_naming_the_reference_never_a_value(tmp_path):
    refs = {"A": SecretRef(connection="nope"), "B": SecretRef(connection="hf", field="extra.missing"),
            "C": SecretRef(variable="nope"), "D": SecretRef(file=str(tmp_path / "missing")),
            "E": SecretRef(env="UNSET_ONE"), "F": SecretRef(env="EMPTY")}
    with pytest.raises(SecretError) as info:
        resolve(refs, FakeLookup(), env={"EMPTY": ""})
    text = str(info.value)
    for line in ("service.secrets.A: connection 'nope' (password): LookupError",
                 "service.secrets.B: connection 'hf' (extra.missing): its extra has no key 'missing'",
                 "service.secrets.C: variable 'nope': KeyError",
                 "service.secrets.D: file '", "No such file",
                 "service.secrets.E: env 'UNSET_ONE': not set in the Airflow worker's environment",
                 "service.secrets.F: env 'EMPTY': resolved to an empty value"):
        assert line in text, text
    assert "pw-1234567" not in text and "tok-7654321" not in text


def test_connections_need_airflow():
    with pytest.raises(SecretError, match="only be resolved by Airflow"):
        resolve({"A": SecretRef(connection="hf")}, None)


def test_export_lines_carry_any_value_intact_through_a_shell(tmp_path):
    marker = Path("/tmp/fb-pwned")
    marker.unlink(missing_ok=True)
    out = subprocess.run(["bash", "-c", 'eval "$(cat)" && printf %s "$SECRET_A"'],
                         input=export_lines({"SECRET_A": VALUE}), capture_output=True, text=True, check=True)
    assert out.stdout == VALUE and not marker.exists()


@pytest.mark.parametrize("version", ["v0.0.38", "v0.0.43"])
def test_rest_submit_body_puts_secrets_in_the_environment_only(version):
    from factorybench.slurm.rest.dialects import DIALECTS

    spec = JobSpec(name="fb-x", script="#!/bin/bash\nexec env\n", workdir="/tmp/w", time_limit_min=5,
                   environment={"PATH": "/bin"})
    body = DIALECTS[version].submit_body(spec, {"HF_TOKEN": VALUE})
    env = body["job"]["environment"]
    assert (env["HF_TOKEN"] == VALUE) if isinstance(env, dict) else (f"HF_TOKEN={VALUE}" in env)
    script = body.get("script") or body["job"]["script"]
    assert VALUE not in script
    assert "HF_TOKEN" not in str(DIALECTS[version].submit_body(spec))


class RecordingRunner:
    """A CommandRunner that runs commands here and records what it was asked."""

    def __init__(self):
        self.commands: list[tuple[str, str | None]] = []

    async def run(self, command, timeout=None):
        return await self.run_with_input(command, None, timeout)

    async def run_with_input(self, command, stdin, timeout=None):
        from factorybench.slurm.runner import LocalRunner

        self.commands.append((command, stdin))
        fake_sbatch = 'sbatch() { printf "%s" "$HF_TOKEN" > "$FB_TEST_OUT"; echo 4242; }; '
        return await LocalRunner().run_with_input(fake_sbatch + command, stdin, timeout)


def test_ssh_submit_sends_secrets_through_stdin_not_the_command_line(tmp_path, monkeypatch):
    """The command line (what `ps` shows on the login node) has no value; sbatch's environment does."""
    from factorybench.slurm.ssh import SshTransport

    monkeypatch.setenv("FB_TEST_OUT", str(tmp_path / "seen"))
    runner = RecordingRunner()
    spec = JobSpec(name="fb-x", script="#!/bin/bash\n", workdir=str(tmp_path / "w"), time_limit_min=5)
    job_id = asyncio.run(SshTransport(runner).submit(spec, {"HF_TOKEN": VALUE}))
    assert job_id == "4242"
    (command, stdin), = runner.commands
    assert VALUE not in command and "--export=ALL" in command
    assert stdin == export_lines({"HF_TOKEN": VALUE})
    assert (tmp_path / "seen").read_text() == VALUE
    assert not list((tmp_path / "w").glob("*secret*")), "no file holds the value"
    runner.commands.clear()
    asyncio.run(SshTransport(runner).submit(spec))
    assert runner.commands[0][1] is None and 'eval "$(cat)"' not in runner.commands[0][0]


def test_ssh_submit_refusal_does_not_echo_secrets(tmp_path):
    from factorybench.errors import SchedulerError
    from factorybench.slurm.ssh import SshTransport

    class Echoing(RecordingRunner):
        async def run_with_input(self, command, stdin, timeout=None):
            return 1, "", f"sbatch: error: bad value {VALUE}"

    spec = JobSpec(name="fb-x", script="#!/bin/bash\n", workdir=str(tmp_path), time_limit_min=5)
    with pytest.raises(SchedulerError) as info:
        asyncio.run(SshTransport(Echoing()).submit(spec, {"HF_TOKEN": VALUE}))
    assert VALUE not in str(info.value) and "***" in str(info.value)


def test_local_job_gets_secrets_in_its_environment_only(tmp_path):
    from factorybench.slurm.local import LocalTransport

    t = LocalTransport(str(tmp_path))
    script = '#!/bin/bash\nprintf "len=%s\\n" "${#HF_TOKEN}"\nsleep 30\n'
    spec = JobSpec(name="fb-x", script=script, workdir=str(tmp_path), time_limit_min=5)
    job_id = asyncio.run(t.submit(spec, {"HF_TOKEN": VALUE}))
    try:
        out = Path(spec.output_path(job_id))
        for _ in range(100):
            if out.exists() and out.read_text():
                break
            time.sleep(0.05)
        assert out.read_text() == f"len={len(VALUE)}\n"
        job_dir = tmp_path / ".fb-local" / job_id
        assert not any(VALUE in p.read_text(errors="replace") for p in job_dir.iterdir() if p.is_file())
        pid = (job_dir / "pid").read_text().strip()
        assert VALUE.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
    finally:
        asyncio.run(t.cancel(job_id))


def test_fetched_jwts_go_to_the_registered_maskers():
    from factorybench.slurm.rest.tokens import CommandTokenProvider
    from factorybench.slurm.runner import LocalRunner

    seen: list[str] = []

    async def masker(value):
        seen.append(value)

    secrets.add_masker(masker)
    try:
        token = "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjQxMDI0NDQ4MDB9.sig-abc"
        provider = CommandTokenProvider(LocalRunner(), command=f"echo SLURM_JWT={token}")
        assert asyncio.run(provider.token()).reveal() == token
        assert seen == [token]
    finally:
        secrets._MASKERS.remove(masker)


@pytest.mark.airflow
def test_airflow_resolution_registers_every_value_with_the_log_masker(monkeypatch):
    from airflow.sdk._shared.secrets_masker.secrets_masker import redact

    from factorybench.airflow.connections import resolve_secrets

    monkeypatch.setenv("FB_TEST_SECRET_SRC", "value-to-hide-9876")
    values = resolve_secrets({"HF_TOKEN": SecretRef(env="FB_TEST_SECRET_SRC")})
    assert values == {"HF_TOKEN": "value-to-hide-9876"}
    assert redact("token is value-to-hide-9876 here") == "token is *** here"


def test_compose_ships_no_default_jwt_secret():
    env = yaml.safe_load((REPO / "docker-compose.yaml").read_text())["x-airflow"]["environment"]
    value = env["AIRFLOW__API_AUTH__JWT_SECRET"]
    assert value.startswith("${AIRFLOW_JWT_SECRET:?") and "change-me" not in value

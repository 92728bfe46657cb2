"""RestTransport against a fake slurmrestd: detection, history, retries, errors, output."""

from __future__ import annotations

import asyncio
import logging

import pytest

from factorybench.errors import SchedulerError, TransientSchedulerError
from factorybench.slurm.job import JobState
from factorybench.slurm.rest import (GONE_RAW_STATE, CommandTokenProvider, RestTransport, SlurmRestError,
                                      StaticTokenProvider)
from factorybench.slurm.rest.transport import pick_version, served_versions
from factorybench.slurm.runner import LocalRunner
from factorybench.slurm.spec import JobSpec
from factorybench.slurm.transport import make_transport

from .conftest import FakeSlurmrestd, fixture

SPEC = JobSpec(name="probe", script="#!/bin/bash\ntrue\n", workdir="/w", time_limit_min=1)
TOKEN = StaticTokenProvider("static-token")


async def started(fake: FakeSlurmrestd, **kw) -> RestTransport:
    return RestTransport(await fake.start(), "root", TOKEN, backoff_s=0, **kw)


@pytest.mark.parametrize("server, newest", [("native", "v0.0.38"), ("trixie", "v0.0.42"), ("forky", "v0.0.45")])
def test_detection_picks_the_newest_common_version_of_each_real_server(server, newest):
    served = served_versions(fixture("servers", f"{server}.json"))
    assert pick_version(served["slurm"]) == newest
    assert served["slurmdb"] == set()


def test_no_common_version_is_a_clear_error():
    with pytest.raises(SchedulerError, match="v0.0.36"):
        pick_version({"v0.0.36"})


def test_make_transport_knows_rest():
    transport = make_transport("rest", url="http://h:6820", user="u", token_provider=TOKEN, version="v0.0.43")
    assert isinstance(transport, RestTransport) and transport.kind == "rest"
    with pytest.raises(ValueError, match="unsupported"):
        RestTransport("http://h", "u", TOKEN, version="v0.0.99")


async def test_detection_falls_back_to_slash_openapi(caplog):
    fake = FakeSlurmrestd(versions=("v0.0.37", "v0.0.38"), openapi_path="/openapi")
    transport = await started(fake)
    caplog.set_level(logging.INFO, logger="factorybench.slurm.rest")
    try:
        assert transport.version is None
        assert await transport.detect_version() == "v0.0.38" == transport.version
        assert any("serves v0.0.37, v0.0.38; using v0.0.38" in r.getMessage() for r in caplog.records)
    finally:
        await transport.close()
        await fake.close()


async def test_requested_version_must_be_served():
    fake = FakeSlurmrestd(versions=("v0.0.42", "v0.0.43"))
    transport = await started(fake, version="v0.0.41")
    try:
        with pytest.raises(SchedulerError, match="does not serve v0.0.41"):
            await transport.detect_version()
    finally:
        await transport.close()
        await fake.close()


async def test_submit_sends_the_versions_body_and_logs_warnings(caplog):
    fake = FakeSlurmrestd(versions=("v0.0.40", "v0.0.41"))
    fake.on("POST", "/slurm/v0.0.41/job/submit", (200, {"job_id": 12, "result": {"job_id": 12}, "errors": [],
                                                         "warnings": [{"description": "Ignoring field x",
                                                                       "source": "parse"}]}))
    transport = await started(fake)
    caplog.set_level(logging.WARNING, logger="factorybench.slurm.rest")
    try:
        assert await transport.submit(SPEC) == "12"
    finally:
        await transport.close()
        await fake.close()
    method, path, headers, body = fake.requests[-1]
    assert headers["X-SLURM-USER-NAME"] == "root" and headers["X-SLURM-USER-TOKEN"] == "static-token"
    assert body["job"]["script"] == SPEC.script and body["job"]["environment"][0].startswith("PATH=")
    assert any("Ignoring field x" in r.getMessage() for r in caplog.records)


async def test_refused_submission_raises_with_number_and_text():
    fake = FakeSlurmrestd(versions=("v0.0.42",))
    doc = fixture("v0.0.42", "submit_refused.json")
    fake.on("POST", "/slurm/v0.0.42/job/submit", (doc["http_status"], doc["body"]))
    transport = await started(fake)
    try:
        with pytest.raises(SlurmRestError) as err:
            await transport.submit(SPEC)
    finally:
        await transport.close()
        await fake.close()
    assert err.value.numbers == {2000} and err.value.status == 422
    assert "Invalid partition name specified" in str(err.value)
    assert len([r for r in fake.requests if r[0] == "POST"]) == 1  # a refusal is not retried


@pytest.mark.parametrize("slurmdb, state, raw", [((), JobState.UNKNOWN, GONE_RAW_STATE),
                                                 (("v0.0.42",), JobState.COMPLETED, "COMPLETED")])
async def test_a_forgotten_job_comes_from_slurmdb_or_is_unknown_never_completed(slurmdb, state, raw):
    fake = FakeSlurmrestd(versions=("v0.0.42",), slurmdb=slurmdb)
    gone = fixture("v0.0.42", "job_unknown.json")
    fake.on("GET", "/slurm/v0.0.42/job/77", (gone["http_status"], gone["body"]))
    fake.on("GET", "/slurmdb/v0.0.42/job/77", (200, fixture("slurmdb", "v0.0.42_job_completed.json")))
    transport = await started(fake)
    try:
        info = await transport.status("77")
    finally:
        await transport.close()
        await fake.close()
    assert (info.state, info.raw_state) == (state, raw) and info.terminal


async def test_slurmdb_without_the_job_is_unknown():
    fake = FakeSlurmrestd(versions=("v0.0.39",), slurmdb=("v0.0.39",))
    fake.on("GET", "/slurm/v0.0.39/job/41", (500, fixture("v0.0.39", "job_unknown.json")["body"]))
    fake.on("GET", "/slurmdb/v0.0.39/job/41", (500, {"errors": [{"error": "Nothing found", "error_number": 9003}]}))
    transport = await started(fake)
    try:
        info = await transport.status("41")
        assert info.state is JobState.UNKNOWN and info.raw_state == GONE_RAW_STATE
        fake.on("GET", "/slurmdb/v0.0.39/job/41", (200, fixture("v0.0.39", "db_job_timeout.json")))
        info = await transport.status("41")
        assert info.state is JobState.TIMEOUT and info.source == "slurmdb v0.0.39"
    finally:
        await transport.close()
        await fake.close()


@pytest.mark.parametrize("status, number", [(500, 2021), (500, 2017), (200, None)])
async def test_cancelling_an_ended_job_is_not_an_error(status, number):
    fake = FakeSlurmrestd(versions=("v0.0.38",))
    errors = [{"error": "Job/step already completing or completed", "error_number": number}] if number else []
    fake.on("DELETE", "/slurm/v0.0.38/job/3", (status, {"errors": errors}))
    transport = await started(fake)
    try:
        await transport.cancel("3")
    finally:
        await transport.close()
        await fake.close()


async def test_cancel_refused_for_another_reason_raises():
    fake = FakeSlurmrestd(versions=("v0.0.38",))
    fake.on("DELETE", "/slurm/v0.0.38/job/3", (500, {"errors": [{"error": "Access/permission denied",
                                                                    "error_number": 2002}]}))
    transport = await started(fake)
    try:
        with pytest.raises(SlurmRestError, match="permission denied"):
            await transport.cancel("3")
    finally:
        await transport.close()
        await fake.close()


async def test_5xx_without_slurm_errors_is_retried_then_succeeds():
    fake = FakeSlurmrestd(versions=("v0.0.43",))
    answers = iter([(503, {}), (502, {}), (200, {"jobs": [{"job_id": 9, "job_state": ["PENDING"],
                                                           "state_reason": "Resources"}]})])
    fake.on("GET", "/slurm/v0.0.43/job/9", lambda r: next(answers))
    transport = await started(fake)
    try:
        info = await transport.status("9")
    finally:
        await transport.close()
        await fake.close()
    assert info.state is JobState.PENDING and info.reason == "Resources"


async def test_persistent_5xx_gives_a_transient_error():
    fake = FakeSlurmrestd(versions=("v0.0.43",))
    fake.on("GET", "/slurm/v0.0.43/job/9", (503, {}))
    transport = await started(fake, retries=2)
    try:
        with pytest.raises(TransientSchedulerError, match="gave up after 3 attempts"):
            await transport.status("9")
    finally:
        await transport.close()
        await fake.close()


async def test_submit_is_not_retried_after_a_5xx():
    fake = FakeSlurmrestd(versions=("v0.0.43",))
    fake.on("POST", "/slurm/v0.0.43/job/submit", (503, {}))
    transport = await started(fake)
    try:
        with pytest.raises(TransientSchedulerError):
            await transport.submit(SPEC)
    finally:
        await transport.close()
        await fake.close()
    assert len([r for r in fake.requests if r[0] == "POST"]) == 1


async def test_no_server_is_transient_after_capped_retries():
    transport = RestTransport("http://127.0.0.1:9", "root", TOKEN, version="v0.0.43", retries=2, backoff_s=0)
    try:
        with pytest.raises(TransientSchedulerError, match="cannot connect"):
            await transport.detect_version()
    finally:
        await transport.close()


def test_backoff_is_capped_and_jittered():
    transport = RestTransport("http://h", "u", TOKEN, backoff_s=1, backoff_cap_s=5)
    delays = [transport.client._delay(n) for n in range(10) for _ in range(20)]
    assert max(delays) <= 5 and min(delays) >= 0 and len(set(delays)) > 10


async def test_double_answer_of_slurmrestd_26_05_is_read():
    """26.05 follows an error answer with a second text/plain one; the first is SLURM's."""
    body = b'{"jobs": [], "errors": [{"error": "Invalid job id specified", "error_number": 2017}]}'
    openapi = b'{"paths": {"/slurm/v0.0.45/job/{job_id}": {}}}'
    requests = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        requests.append(head.split(" ")[1])
        if "/openapi/v3" in head:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Type: application/json\r\n\r\n%s"
                         % (len(openapi), openapi))
        else:
            writer.write(b"HTTP/1.1 404 NOT FOUND\r\nConnection: Close\r\nContent-Length: %d\r\n"
                         b"Content-Type: application/json\r\n\r\n%s" % (len(body), body))
            writer.write(b"HTTP/1.1 404 NOT FOUND\r\nConnection: Close\r\nContent-Length: 24\r\n"
                         b"Content-Type: text/plain\r\n\r\nInvalid job id specified")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport = RestTransport(f"http://127.0.0.1:{port}", "root", TOKEN, backoff_s=0)
    try:
        info = await transport.status("5")
    finally:
        await transport.close()
        server.close()
    assert info.state is JobState.UNKNOWN and info.raw_state == GONE_RAW_STATE
    assert requests.count("/slurm/v0.0.45/job/5") == 2  # once through aiohttp, once read leniently


async def test_output_without_a_reader_says_why(tmp_path):
    transport = RestTransport("http://h", "u", TOKEN, version="v0.0.43")
    out = await transport.output("7", SPEC)
    assert out.stdout == "" and "workdir_reader" in out.stderr and out.stdout_path == "/w/probe-7.out"


async def test_output_reads_the_tail_with_a_runner(tmp_path):
    spec = JobSpec(name="probe", script="#!/bin/bash\n", workdir=str(tmp_path), time_limit_min=1)
    (tmp_path / "probe-7.out").write_text("x" * 100 + "last line\n")
    transport = RestTransport("http://h", "u", TOKEN, version="v0.0.43", workdir_reader=LocalRunner())
    out = await transport.output("7", spec, max_bytes=10)
    assert out.stdout == "last line\n" and out.stderr == ""  # the .err file does not exist


async def test_output_without_a_spec_uses_the_paths_slurm_reports(tmp_path):
    (tmp_path / "probe-8.out").write_text("hello\n")
    fake = FakeSlurmrestd(versions=("v0.0.45",))
    fake.on("GET", "/slurm/v0.0.45/job/8", (200, {"jobs": [{
        "job_id": 8, "name": "probe", "job_state": ["COMPLETED"],
        "standard_output": f"{tmp_path}/%x-%j.out", "standard_error": f"{tmp_path}/%x-%j.err"}]}))
    transport = await started(fake, workdir_reader=LocalRunner())
    try:
        out = await transport.output("8")
    finally:
        await transport.close()
        await fake.close()
    assert out.stdout == "hello\n" and out.stdout_path == f"{tmp_path}/probe-8.out"


async def test_a_queued_job_with_errors_returns_its_id_and_logs_them(caplog):
    """22.05 answers a time limit over MaxTime with errors[] *and* a job id: the job is queued."""
    fake = FakeSlurmrestd(versions=("v0.0.38",))
    fake.on("POST", "/slurm/v0.0.38/job/submit", (200, {"job_id": 35, "errors": [
        {"error_code": 2015, "error": "Requested partition configuration not available now"}]}))
    transport = await started(fake)
    caplog.set_level(logging.WARNING, logger="factorybench.slurm.rest")
    try:
        assert await transport.submit(SPEC) == "35"
    finally:
        await transport.close()
        await fake.close()
    assert any("queued job 35" in r.getMessage() and "(error 2015)" in r.getMessage() for r in caplog.records)


async def test_slurm_error_with_an_expired_token_earns_one_refresh():
    """22.05 reports a refused token only as SLURM_ERROR (-1); an expired token is then renewed."""
    from .test_tokens import TokenCommand

    runner = TokenCommand(lifespan=-5)  # the first token is already expired
    tokens = CommandTokenProvider(runner, margin_s=-60)  # ...but trusted, as with a skewed clock
    stale = (await tokens.token()).reveal()
    runner.lifespan = 3600
    refusal = (500, {"errors": [{"error": "Unspecified error", "error_number": -1}]})
    running = (200, {"jobs": [{"job_id": 4, "job_state": "RUNNING"}]})
    fake = FakeSlurmrestd(versions=("v0.0.38",))
    fake.on("GET", "/slurm/v0.0.38/job/4",
            lambda r: refusal if r.headers["X-SLURM-USER-TOKEN"] == stale else running)
    transport = RestTransport(await fake.start(), "root", tokens, backoff_s=0)
    try:
        assert (await transport.status("4")).state is JobState.RUNNING
        assert len(runner.commands) == 2
    finally:
        await transport.close()
        await fake.close()


async def test_a_404_that_is_not_a_job_answer_is_an_error_not_a_vanished_job():
    fake = FakeSlurmrestd(versions=("v0.0.43",))  # no route for the job: the fake's routing 404
    transport = await started(fake)
    try:
        with pytest.raises(SlurmRestError, match="Unable to find path"):
            await transport.status("5")
    finally:
        await transport.close()
        await fake.close()

"""Every version's request and response shapes, against recorded answers and published specs."""

from __future__ import annotations

from datetime import timezone

import jsonschema
import pytest

from factorybench.slurm.job import JobState
from factorybench.slurm.rest.client import ESLURM_INVALID_JOB_ID, Reply, SlurmRestError, messages
from factorybench.slurm.rest.dialects import (DIALECTS, SUPPORTED, db_job_info, exit_code, job_info, memory_mb,
                                              number, timestamp)
from factorybench.slurm.spec import JobSpec

from .conftest import ALL_VERSIONS, FIXTURES, RECORDED, fixture

FULL = JobSpec(name="vllm", script="#!/bin/bash\nsrun true\n", workdir="/scratch/fb", time_limit_min=30,
               partition="gpu", account="p200981", qos="default", nodes=2, ntasks=2, cpus_per_task=8,
               gres="gpu:4", mem="16G", environment={"HF_HOME": "/scratch/hf"})


def test_every_version_from_37_to_45_has_a_dialect():
    assert SUPPORTED == tuple(f"v0.0.{n}" for n in range(37, 46))


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_submit_body_matches_the_versions_schema(version):
    """Every field we send exists in that version's spec with that type (additionalProperties: false)."""
    body = DIALECTS[version].submit_body(FULL)
    jsonschema.validate(body, fixture(version, "submit_schema.json"))


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_submit_body_carries_every_spec_field(version):
    body = DIALECTS[version].submit_body(FULL)
    job = body["job"]
    script = body.get("script", job.get("script"))
    assert script == FULL.script
    assert (job["name"], job["partition"], job["account"], job["qos"]) == ("vllm", "gpu", "p200981", "default")
    assert job["current_working_directory"] == "/scratch/fb"
    # %j stays for SLURM to expand; the path is absolute because slurmrestd has no cwd of ours
    assert job["standard_output"] == "/scratch/fb/vllm-%j.out"
    assert job["standard_error"] == "/scratch/fb/vllm-%j.err"
    assert job["tasks"] == 2 and job["cpus_per_task"] == 8
    env = job["environment"]
    pairs = dict(env) if isinstance(env, dict) else dict(e.split("=", 1) for e in env)
    assert pairs["HF_HOME"] == "/scratch/hf" and pairs["PATH"].startswith("/")
    assert number(job["time_limit"]) == 30 and number(job["memory_per_node"]) == 16384
    assert job.get("nodes") == [2, 2] or (job["minimum_nodes"], job["maximum_nodes"]) == (2, 2)
    assert job.get("gres") == "gpu:4" or job.get("tres_per_node") == "gres/gpu:4"


def test_legacy_and_modern_shapes_differ_where_schedmd_changed_them():
    old, new = DIALECTS["v0.0.38"].submit_body(FULL), DIALECTS["v0.0.39"].submit_body(FULL)
    assert "script" in old and "script" not in old["job"]
    assert "script" in new["job"] and "script" not in new
    assert isinstance(old["job"]["environment"], dict) and isinstance(new["job"]["environment"], list)
    assert old["job"]["time_limit"] == 30
    assert new["job"]["time_limit"] == {"set": True, "infinite": False, "number": 30}


def test_user_path_wins_over_the_default():
    spec = JobSpec(name="j", script="#!/bin/bash\n", workdir="/w", time_limit_min=1, environment={"PATH": "/opt/bin"})
    assert DIALECTS["v0.0.43"].submit_body(spec)["job"]["environment"] == ["PATH=/opt/bin"]


def test_absolute_output_patterns_are_kept():
    spec = JobSpec(name="j", script="#!/bin/bash\n", workdir="/w", time_limit_min=1, stdout="/logs/%x.%j.log")
    assert DIALECTS["v0.0.37"].submit_body(spec)["job"]["standard_output"] == "/logs/j.%j.log"


@pytest.mark.parametrize("version", RECORDED + ("v0.0.39",))
@pytest.mark.parametrize("name, state, rc", [("job_running.json", JobState.RUNNING, 0),
                                              ("job_failed.json", JobState.FAILED, 3)])
def test_recorded_job_answers_parse(version, name, state, rc):
    doc = fixture(version, name)
    info = job_info(doc["jobs"][0], version)
    assert info.state is state
    assert info.exit_code.returncode == rc
    assert info.job_id == str(doc["jobs"][0]["job_id"])
    assert info.nodes and info.start_time is not None and info.start_time.tzinfo is timezone.utc
    assert info.time_limit_s in (60, 120)
    assert info.source == f"rest {version}"
    if state is JobState.FAILED:
        assert info.reason == "NonZeroExitCode" and info.end_time is not None


@pytest.mark.parametrize("version", RECORDED)
def test_recorded_pending_answer_carries_slurms_reason(version):
    info = job_info(fixture(version, "job_pending.json")["jobs"][0], version)
    assert info.state is JobState.PENDING and not info.terminal
    assert info.start_time is None or info.start_time.year >= 2026


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_unknown_job_answer_has_the_invalid_job_id_number(version):
    doc = fixture(version, "job_unknown.json")
    assert doc["http_status"] in (404, 500)
    assert ESLURM_INVALID_JOB_ID in {m.number for m in messages(doc["body"], "errors")}


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_refused_submission_becomes_a_scheduler_error_with_slurms_words(version):
    doc = fixture(version, "submit_refused.json")
    reply = Reply(doc["http_status"], doc["body"], messages(doc["body"], "errors"))
    with pytest.raises(SlurmRestError) as err:
        reply.raise_errors("submit")
    assert err.value.numbers == {2000}  # ESLURM_INVALID_PARTITION_NAME
    assert "Invalid partition name specified" in str(err.value)


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_submit_answer_has_a_job_id(version):
    doc = fixture(version, "submit.json")
    assert int(doc.get("job_id") or doc["result"]["job_id"]) > 0
    assert not messages(doc, "errors")


def test_v0039_documents_follow_the_published_schema():
    schema = fixture("v0.0.39", "response_schema.json")
    resolver = {"definitions": schema["definitions"]}
    for name, definition in [("submit.json", "job_submission_response"), ("job_running.json", "jobs_response"),
                             ("job_failed.json", "jobs_response"), ("db_job_timeout.json", "db_jobs_response")]:
        jsonschema.validate(fixture("v0.0.39", name), {**resolver, "$ref": f"#/definitions/{definition}"})


def test_slurmdb_records_parse_in_both_shapes():
    old = db_job_info(fixture("v0.0.39", "db_job_timeout.json")["jobs"][0], "v0.0.39")
    assert old.state is JobState.TIMEOUT and old.exit_code.signal == 15 and old.time_limit_s == 60
    assert old.source == "slurmdb v0.0.39"
    new = db_job_info(fixture("slurmdb", "v0.0.42_job_completed.json")["jobs"][0], "v0.0.42")
    assert new.state is JobState.COMPLETED and new.exit_code.returncode == 0 and new.nodes == ("vm",)


def test_completing_flag_is_not_finished():
    info = job_info({"job_id": 5, "job_state": ["RUNNING", "COMPLETING"]}, "v0.0.42")
    assert info.state is JobState.RUNNING and "COMPLETING" in info.flags and not info.terminal
    info = job_info({"job_id": 5, "job_state": ["COMPLETED", "COMPLETING"]}, "v0.0.42")
    assert info.state is JobState.COMPLETING and not info.terminal


@pytest.mark.parametrize("value, expected", [
    (5, 5), ("7", 7), ({"set": True, "infinite": False, "number": 9}, 9),
    ({"set": False, "infinite": False, "number": 0}, None), ({"set": True, "infinite": True, "number": 0}, None),
    (4294967294, None), (None, None), ("UNLIMITED", None), (True, None),
])
def test_no_val_numbers(value, expected):
    assert number(value) == expected


def test_zero_time_means_not_yet():
    assert timestamp(0) is None and timestamp({"set": True, "infinite": False, "number": 0}) is None
    assert timestamp(1795427101).year == 2026


@pytest.mark.parametrize("value, rc, sig", [
    (768, 3, None), (9, 0, 9), ({"set": True, "infinite": False, "number": 256}, 1, None),
    ({"status": ["SIGNALED"], "return_code": {"set": False, "infinite": False, "number": 0},
      "signal": {"id": {"set": True, "infinite": False, "number": 9}, "name": "KILL"}}, None, 9),
    (None, None, None),
])
def test_exit_codes_in_every_shape(value, rc, sig):
    assert (exit_code(value).returncode, exit_code(value).signal) == (rc, sig)


@pytest.mark.parametrize("mem, mb", [("16G", 16384), ("512M", 512), ("4096", 4096), ("1T", 1048576), ("100K", 1)])
def test_memory_in_megabytes(mem, mb):
    assert memory_mb(mem) == mb


def test_fixture_tree_has_one_directory_per_version():
    assert {p.name for p in FIXTURES.glob("v0.0.*")} == set(ALL_VERSIONS)

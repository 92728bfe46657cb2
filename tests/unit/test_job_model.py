from datetime import datetime, timedelta

import pytest

from factorybench.recipe.cluster import PendingPolicy
from factorybench.slurm.job import ExitCode, JobInfo, JobState, expand_nodelist, parse_state
from factorybench.slurm.policy import PendingWatch
from factorybench.slurm.ssh import parse_sacct, parse_scontrol, parse_squeue
from factorybench.slurm.spec import JobSpec


@pytest.mark.parametrize("raw,state,flags", [
    ("RUNNING", JobState.RUNNING, []),
    ("CANCELLED by 0", JobState.CANCELLED, []),
    ("CANCELLED+", JobState.CANCELLED, []),
    ("OOM", JobState.OUT_OF_MEMORY, []),
    (["RUNNING", "COMPLETING"], JobState.RUNNING, ["COMPLETING"]),
    (["COMPLETED", "COMPLETING"], JobState.COMPLETING, ["COMPLETING"]),
    (["PREEMPTED", "REQUEUED"], JobState.REQUEUED, ["REQUEUED"]),
    (["PENDING", "REQUEUED"], JobState.PENDING, ["REQUEUED"]),
    ("NODE_FAIL", JobState.NODE_FAIL, []),
    ("", JobState.UNKNOWN, []),
    ("SOMETHING_NEW", JobState.UNKNOWN, ["SOMETHING_NEW"]),
])
def test_parse_state(raw, state, flags):
    assert parse_state(raw) == (state, flags)


def test_terminal_states():
    assert {s for s in JobState if s.terminal} == {
        JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED, JobState.TIMEOUT, JobState.NODE_FAIL,
        JobState.OUT_OF_MEMORY, JobState.PREEMPTED, JobState.BOOT_FAIL, JobState.DEADLINE, JobState.UNKNOWN}
    assert not JobState.COMPLETING.terminal and not JobState.REQUEUED.terminal


def test_nodelists():
    assert expand_nodelist("mel[2074-2076,2080],gpu01") == ("mel2074", "mel2075", "mel2076", "mel2080", "gpu01")
    assert expand_nodelist("n[08-10]") == ("n08", "n09", "n10")
    assert expand_nodelist("(null)") == ()


def test_jobinfo_round_trip():
    info = JobInfo(job_id="7", state=JobState.FAILED, raw_state="FAILED", exit_code=ExitCode(3, 0),
                   nodes=("a", "b"), start_time=datetime(2026, 1, 1, 1, 2, 3))
    assert JobInfo.from_dict(info.to_dict()) == info
    assert info.describe() == "job 7 is FAILED, exit code 3:0, on a,b"


def test_cli_parsers():
    sq = parse_squeue("12", "12|PENDING|ReqNodeNotAvail, UnavailableNodes:vm|(null)|2026-11-23T10:00:00|N/A|N/A|10:00|cpu|fb-x")
    assert sq.state is JobState.PENDING and sq.reason.startswith("ReqNodeNotAvail") and sq.time_limit_s == 600
    sa = parse_sacct("12", "12|TIMEOUT|0:15|None|vm|2026-11-23T10:00:00|2026-11-23T10:00:01|2026-11-23T10:01:05|1|cpu|fb-x")
    assert sa.state is JobState.TIMEOUT and sa.exit_code == ExitCode(0, 15) and sa.nodes == ("vm",)
    sc = parse_scontrol("12", "JobId=12 JobName=fb x UserId=root(0) JobState=FAILED Reason=NonZeroExitCode "
                              "ExitCode=3:0 NodeList=vm StdOut=/w/o.out TimeLimit=00:01:00")
    assert sc.state is JobState.FAILED and sc.exit_code.returncode == 3 and sc.name == "fb x"
    assert sc.stdout_path == "/w/o.out" and sc.time_limit_s == 60
    assert parse_scontrol("13", "JobId=12 JobState=FAILED") is None


def pending(reason, submitted_ago_s=0.0):
    return JobInfo(job_id="1", state=JobState.PENDING, raw_state="PENDING", reason=reason,
                   submit_time=datetime.now() - timedelta(seconds=submitted_ago_s))


def test_policy_blocked_reason_needs_grace():
    watch = PendingWatch(PendingPolicy(grace_s=10, max_pending_s=None))
    assert not watch.observe(pending("ReqNodeNotAvail"), now=100).cancel
    assert not watch.observe(pending("ReqNodeNotAvail"), now=105).cancel
    verdict = watch.observe(pending("ReqNodeNotAvail"), now=111)
    assert verdict.cancel and "ReqNodeNotAvail" in verdict.message


def test_policy_normal_reasons_and_reset():
    watch = PendingWatch(PendingPolicy(grace_s=0, max_pending_s=None))
    assert not watch.observe(pending("Resources"), now=0).cancel
    assert not watch.observe(pending("Priority"), now=1000).cancel
    watch.observe(pending("PartitionDown"), now=0)
    assert not watch.observe(pending("Resources"), now=5).cancel  # cleared: the clock restarts
    assert watch.blocked_since is None


def test_policy_max_pending():
    watch = PendingWatch(PendingPolicy(max_pending_s=60))
    assert not watch.observe(pending("Resources", 30), now=0).cancel
    verdict = watch.observe(pending("Resources", 90), now=1)
    assert verdict.cancel and "max_pending_s=60" in verdict.message


def test_spec_rejects_unsafe_values():
    ok = dict(name="a", script="#!/bin/bash\n", workdir="/w", time_limit_min=1)
    JobSpec(**ok)
    for bad in (dict(partition="cpu x"), dict(mem="1 G"), dict(environment={"A B": "1"}),
                dict(workdir="/w\n#SBATCH --x"), dict(gres="gpu:4;id")):
        with pytest.raises(ValueError):
            JobSpec(**{**ok, **bad})

"""The shared poller and the batch status queries: one query per cluster per interval for N
waiting jobs, with the wait loop's outcomes, backoff and pending policy unchanged."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from factorybench.errors import SchedulerError, TransientSchedulerError
from factorybench.recipe.cluster import PendingPolicy
from factorybench.slurm.job import JobInfo, JobState
from factorybench.slurm.poller import ClusterPoller, shared_poller
from factorybench.slurm.ssh import SshTransport
from factorybench.slurm.transport import Transport
from factorybench.slurm.wait import wait_for_job

SQUEUE = "{id}|{state}|{reason}|vm|2026-11-23T10:00:00|N/A|N/A|10:00|cpu|fb-x"


class Scripted(Transport):
    """States per job and round; counts what a real transport would send."""

    def __init__(self, plan: dict[str, list[str]], fail_rounds: set[int] = frozenset()):
        self.plan, self.fail_rounds = plan, fail_rounds
        self.batches: list[list[str]] = []
        self.cancelled: list[str] = []
        self.closed = 0
        self.answered: Counter[str] = Counter()

    async def statuses(self, job_ids):
        self.batches.append(sorted(job_ids))
        if len(self.batches) in self.fail_rounds:
            raise TransientSchedulerError("slurmctld restarting")
        out = {}
        for j in job_ids:
            states = self.plan[j]
            out[j] = JobInfo(j, JobState(states[min(self.answered[j], len(states) - 1)]), reason="Resources")
            self.answered[j] += 1
        return out

    async def status(self, job_id):
        raise AssertionError("the poller must use statuses()")

    async def submit(self, spec, secrets=None):
        raise NotImplementedError

    async def cancel(self, job_id):
        self.cancelled.append(job_id)

    async def close(self):
        self.closed += 1


async def wait_all(transport: Scripted, ids: list[str], interval: float = 0.05, **kw) -> list[dict]:
    async def factory():
        return transport

    poller = ClusterPoller("c", factory, interval, idle_s=0.05)
    outcomes = await asyncio.gather(*(wait_for_job(j, lambda j=j: poller.status(j), lambda j=j: poller.cancel(j),
                                                   poll_interval=interval, **kw) for j in ids))
    await asyncio.sleep(0.3)  # past idle_s: the poller closes its transport
    return outcomes


async def test_n_waiting_jobs_share_one_query_per_round():
    ids = [str(100 + i) for i in range(20)]
    transport = Scripted({j: ["PENDING"] * 3 + ["RUNNING"] for j in ids})
    outcomes = await wait_all(transport, ids)
    assert [o["status"] for o in outcomes] == ["running"] * 20
    assert transport.batches == [sorted(ids)] * 4  # 4 rounds for 20 jobs, not 80 queries
    assert transport.closed == 1


async def test_jobs_leave_the_batch_as_their_loops_end():
    transport = Scripted({"1": ["RUNNING"], "2": ["PENDING", "COMPLETED"], "3": ["PENDING", "PENDING", "RUNNING"]})
    outcomes = await wait_all(transport, ["1", "2", "3"])
    assert [o["status"] for o in outcomes] == ["running", "ended", "running"]
    assert transport.batches == [["1", "2", "3"], ["2", "3"], ["3"]]


async def test_a_failed_round_reaches_every_loop_which_backs_off_and_recovers():
    transport = Scripted({"1": ["PENDING", "RUNNING"], "2": ["PENDING", "RUNNING"]}, fail_rounds={2})
    outcomes = await wait_all(transport, ["1", "2"], interval=0.02)
    assert [o["status"] for o in outcomes] == ["running", "running"]
    assert len(transport.batches) >= 3


async def test_unreachable_too_long_is_one_error_per_loop():
    transport = Scripted({"1": ["PENDING"], "2": ["PENDING"]}, fail_rounds=set(range(1, 1000)))
    outcomes = await wait_all(transport, ["1", "2"], interval=0.01, max_unreachable_s=0.2)
    assert [o["status"] for o in outcomes] == ["error", "error"]
    assert all("unreachable" in o["message"] for o in outcomes)


async def test_pending_policy_cancels_through_the_poller():
    transport = Scripted({"7": ["PENDING"]})
    transport.plan["7"] = ["PENDING"]
    original = transport.statuses

    async def blocked(ids):
        out = await original(ids)
        return {j: JobInfo(j, JobState.PENDING, reason="PartitionDown") for j in out}

    transport.statuses = blocked
    outcomes = await wait_all(transport, ["7"], pending=PendingPolicy(grace_s=0.05))
    assert outcomes[0]["status"] == "blocked" and "PartitionDown" in outcomes[0]["message"]
    assert transport.cancelled == ["7"]


async def test_rounds_are_at_least_an_interval_apart():
    transport = Scripted({"1": ["PENDING"] * 5 + ["RUNNING"]})

    async def factory():
        return transport

    poller = ClusterPoller("c", factory, 0.1)
    loop = asyncio.get_running_loop()
    starts = []
    for _ in range(4):
        await poller.status("1")  # a caller that never sleeps still gets one round per interval
        starts.append(loop.time())
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert min(gaps) >= 0.095, gaps


async def test_a_missing_answer_is_an_error_not_a_hang():
    class Forgetful(Scripted):
        async def statuses(self, job_ids):
            return {}

    async def factory():
        return Forgetful({})

    with pytest.raises(SchedulerError, match="nothing for job 9"):
        await ClusterPoller("c", factory, 0.01).status("9")


async def test_shared_poller_is_one_per_key_and_loop():
    async def factory():
        return Scripted({})

    assert shared_poller("a", factory, 1) is shared_poller("a", factory, 1)
    assert shared_poller("a", factory, 1) is not shared_poller("b", factory, 1)


class Runner:
    """A login node that answers from a script of (command prefix → (rc, out, err))."""

    def __init__(self, answers: dict[str, tuple[int, str, str]]):
        self.answers, self.commands = answers, []

    async def run(self, command, timeout=None):
        self.commands.append(command)
        return next((a for prefix, a in self.answers.items() if command.startswith(prefix)), (1, "", "no"))


async def test_ssh_statuses_is_one_squeue_while_jobs_wait():
    out = "\n".join(SQUEUE.format(id=j, state=s, reason="Priority") for j, s in (("11", "PENDING"), ("12", "RUNNING")))
    runner = Runner({"squeue": (0, out, "")})
    infos = await SshTransport(runner).statuses(["11", "12", "11"])
    assert runner.commands == ["squeue -h -t all --jobs=11,12 -o '%i|%T|%r|%N|%V|%S|%e|%l|%P|%j'"]
    assert {j: i.state for j, i in infos.items()} == {"11": JobState.PENDING, "12": JobState.RUNNING}


async def test_ssh_statuses_asks_sacct_then_scontrol_only_for_jobs_that_left_squeue():
    out = SQUEUE.format(id="11", state="PENDING", reason="Priority") + "\n" + \
        SQUEUE.format(id="12", state="COMPLETED", reason="None")
    scontrol = ("JobId=12 JobName=fb-x JobState=COMPLETED Reason=None ExitCode=0:0 NodeList=vm Partition=cpu\n"
                "JobId=13 JobName=fb-y JobState=FAILED Reason=NonZeroExitCode ExitCode=3:0 NodeList=vm Partition=cpu\n")
    runner = Runner({"squeue": (0, out, ""), "sacct": (1, "", "Slurm accounting storage is disabled"),
                     "scontrol": (0, scontrol, "")})
    infos = await SshTransport(runner).statuses(["11", "12", "13", "14"])
    assert runner.commands[1] == ("sacct -X -n -P -j 12,13,14 -o JobID,State,ExitCode,Reason,NodeList,Submit,Start,"
                                  "End,TimelimitRaw,Partition,JobName")
    assert runner.commands[2] == "scontrol show job -o 12; scontrol show job -o 13; scontrol show job -o 14"
    assert infos["12"].source == "scontrol" and infos["12"].state is JobState.COMPLETED
    assert infos["13"].state is JobState.FAILED and infos["13"].exit_code.returncode == 3
    assert infos["14"].state is JobState.UNKNOWN


async def test_ssh_statuses_with_slurmctld_down_is_transient():
    runner = Runner({"squeue": (1, "", "slurm_load_jobs error: Unable to contact slurm controller"),
                     "sacct": (1, "", "disabled"), "scontrol": (1, "", "Unable to contact slurm controller")})
    with pytest.raises(TransientSchedulerError, match="slurmctld may be down"):
        await SshTransport(runner).statuses(["11", "12"])


async def test_ssh_statuses_refuses_a_bad_id_before_running_anything():
    runner = Runner({})
    with pytest.raises(SchedulerError, match="invalid job id"):
        await SshTransport(runner).statuses(["11", "1;rm -rf /"])
    assert runner.commands == []


async def test_the_default_statuses_asks_each_job():
    class One(Scripted):
        async def statuses(self, job_ids):
            return await Transport.statuses(self, job_ids)

        async def status(self, job_id):
            return JobInfo(job_id, JobState.RUNNING)

    infos = await One({}).statuses(["1", "2", "1"])
    assert list(infos) == ["1", "2"]

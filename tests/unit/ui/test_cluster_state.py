"""The cluster view's model: SLURM's node states and GPU counts in every form SLURM prints them,
scontrol/squeue text, and the nodes/partitions/jobs answers of every REST version (the recorded
fixtures, served to the real RestTransport by a fake slurmrestd)."""

from __future__ import annotations

import pytest

from factorybench.plan import run_tag
from factorybench.slurm.cluster_state import ClusterState, NodeState, PartitionState, gpus, node_state, queued
from factorybench.slurm.job import JobInfo, JobState
from factorybench.slurm.rest import RestTransport, StaticTokenProvider
from factorybench.slurm.script import job_name
from factorybench.slurm.ssh import parse_queue, parse_scontrol_nodes, parse_scontrol_partitions
from rest.conftest import ALL_VERSIONS, FakeSlurmrestd, fixture

# Captured from the native dev cluster (Slurm 22.05.8) with a job running.
SCONTROL_NODE = (
    "NodeName=vm Arch=x86_64 CoresPerSocket=1  CPUAlloc=1 CPUEfctv=16 CPUTot=16 CPULoad=5.81 "
    "AvailableFeatures=(null) ActiveFeatures=(null) Gres=(null) NodeAddr=vm NodeHostName=vm Version=22.05.8 "
    "OS=Linux 6.18.44-fc-v782 #1 SMP PREEMPT_DYNAMIC @0  RealMemory=11723 AllocMem=0 FreeMem=14483 Sockets=16 "
    "Boards=1 State=MIXED ThreadsPerCore=1 TmpDisk=0 Weight=1 Owner=N/A MCS_label=N/A Partitions=cpu,gpu  "
    "BootTime=2026-11-23T18:01:37 SlurmdStartTime=2026-11-23T18:07:10 LastBusyTime=2026-11-23T19:19:25 "
    "CfgTRES=cpu=16,mem=11723M,billing=16 AllocTRES=cpu=1 CapWatts=n/a CurrentWatts=0 AveWatts=0")
# The same line as a GPU node that is draining prints it (the dev clusters have no GPUs).
GPU_NODE = ("NodeName=gpu07 CPUAlloc=32 CPUTot=64 Gres=gpu:a100:4(S:0-1) RealMemory=512000 AllocMem=128000 "
            "State=MIXED+DRAIN Partitions=gpu CfgTRES=cpu=64,mem=500G,billing=64,gres/gpu=4,gres/gpu:a100=4 "
            "AllocTRES=cpu=32,gres/gpu=3,gres/gpu:a100=3 Reason=bad fan [root@2026-11-20T10:00:00]")
SCONTROL_PARTITION = (
    "PartitionName=cpu AllowGroups=ALL AllowAccounts=ALL AllowQos=ALL AllocNodes=ALL Default=YES QoS=N/A "
    "DefaultTime=00:30:00 DisableRootJobs=NO ExclusiveUser=NO GraceTime=0 Hidden=NO MaxNodes=UNLIMITED "
    "MaxTime=02:00:00 MinNodes=0 LLN=NO MaxCPUsPerNode=UNLIMITED Nodes=vm PriorityJobFactor=1 PriorityTier=1 "
    "RootOnly=NO ReqResv=NO OverSubscribe=NO OverTimeLimit=NONE PreemptMode=OFF State=UP TotalCPUs=16 "
    "TotalNodes=1 SelectTypeParameters=NONE JobDefaults=(null) DefMemPerNode=UNLIMITED MaxMemPerNode=UNLIMITED")
SQUEUE = ("148|RUNNING|None|vm|2026-11-23T19:18:53|2026-11-23T19:19:25|2026-11-23T19:29:25|10:00|cpu|"
          "fb-smoke-svc-795eefa4cd\n"
          "149|PENDING|Resources||2026-11-23T19:20:00|N/A|N/A|5:00|gpu|someone-elses-job\n"
          "150|PENDING|Priority||2026-11-23T19:20:01|N/A|N/A|1-00:00:00|gpu|fb-smoke-client-795eefa4cd\n")


@pytest.mark.parametrize("raw, flags, word, words", [
    ("MIXED", (), "mixed", "MIXED"),
    ("IDLE+DRAIN", (), "drained", "IDLE+DRAIN"),
    ("MIXED+DRAIN", (), "draining", "MIXED+DRAIN"),
    ("IDLE*", (), "down", "IDLE+NOT_RESPONDING"),
    ("DOWN*+DRAIN", (), "drained", "DOWN+NOT_RESPONDING+DRAIN"),
    ("ALLOCATED", (), "allocated", "ALLOCATED"),
    (["MIXED", "DRAIN"], (), "draining", "MIXED+DRAIN"),  # REST v0.0.39+
    ("mixed", ["DRAIN"], "draining", "MIXED+DRAIN"),  # REST v0.0.37/38
    ("idle~", (), "idle", "IDLE+POWERED_DOWN"),
    (None, (), "unknown", "UNKNOWN"),
])
def test_node_states_in_every_form(raw, flags, word, words):
    assert node_state(raw, flags) == (word, words)


def test_usable_nodes_and_free_gpus():
    def node(state, raw, n=4, used=1):
        return NodeState("n", state, raw, gpus=n, gpus_used=used)

    assert node("mixed", "MIXED").gpus_free == 3
    assert node("idle", "IDLE+POWERED_DOWN").gpus_free == 0  # up but powered down: nothing to use now
    assert node("draining", "MIXED+DRAIN").gpus_free == 0 and node("down", "DOWN").gpus_free == 0


@pytest.mark.parametrize("gres, tres, n", [
    ("gpu:a100:4(S:0-1)", None, 4), ("gpu:a100:2(IDX:0-1),gpu:v100:1(IDX:2)", None, 3), ("gpu:2", None, 2),
    ("(null)", "cpu=64,gres/gpu=8,gres/gpu:h100=8", 8), ("", "cpu=8,gres/gpu:a100=2,gres/gpu:v100=1", 3),
    (None, "cpu=16,mem=11723M,billing=16", 0), ("craynetwork:4", None, 0)])
def test_gpu_counts_from_gres_or_tres(gres, tres, n):
    assert gpus(gres or None, tres) == n


def test_scontrol_and_squeue_text():
    nodes = parse_scontrol_nodes(f"{SCONTROL_NODE}\n{GPU_NODE}\n")
    assert nodes[0] == NodeState("vm", "mixed", "MIXED", ("cpu", "gpu"), 16, 1, 11723, 0, 0, 0, None)
    gpu = nodes[1]
    assert (gpu.state, gpu.gpus, gpu.gpus_used, gpu.gpus_free) == ("draining", 4, 3, 0)
    assert gpu.reason == "bad fan [root@2026-11-20T10:00:00]"
    (part,) = parse_scontrol_partitions(SCONTROL_PARTITION)
    assert part == PartitionState("cpu", "UP", True, ("vm",), 16, 7200)
    jobs = parse_queue(SQUEUE)
    assert [(j.job_id, j.state, j.name) for j in jobs] == [
        ("148", JobState.RUNNING, "fb-smoke-svc-795eefa4cd"), ("150", JobState.PENDING, "fb-smoke-client-795eefa4cd")]
    assert jobs[1].reason == "Priority" and jobs[1].time_limit_s == 86400


def test_summary_and_the_jobs_of_one_run():
    tag = run_tag("manual__2026-11-23T19:00:00+00:00")
    jobs = queued([JobInfo("7", JobState.RUNNING, name=f"fb-smoke-svc-{tag}"),
                   JobInfo("8", JobState.PENDING, name=f"fb-smoke-client-{tag}"),
                   JobInfo("9", JobState.RUNNING, name=f"fb-smoke-svc-{run_tag('other')}"),
                   JobInfo("10", JobState.RUNNING, name=f"fb-smoke2-svc-{tag}"),
                   JobInfo("11", JobState.COMPLETED, name=f"fb-smoke-svc-{tag}")])
    nodes = parse_scontrol_nodes(f"{SCONTROL_NODE}\n{GPU_NODE}")
    gpu_part = PartitionState("gpu", "UP", False, ("gpu07",), 64, None)
    state = ClusterState("test", (gpu_part,), nodes, jobs)
    s = state.summary(gpu_part)
    assert (s.nodes_by_state, s.cpus, s.cpus_alloc, s.gpus, s.gpus_used, s.gpus_free) == (
        {"draining": 1, "mixed": 1}, 80, 33, 4, 3, 0)  # vm lists gpu among its partitions too
    assert [j.job_id for j in state.jobs_of_run("smoke", tag)] == ["7", "8"]


def test_job_names_carry_the_prefix_the_queue_filters_on():
    from factorybench.recipe import load_recipe
    from factorybench.settings import recipes_dir

    recipe = load_recipe(recipes_dir() / "smoke.yaml")
    name = job_name(recipe, run_tag("x"), "svc")
    assert queued([JobInfo("1", JobState.RUNNING, name=name)]) and ClusterState(
        "t", (), (), queued([JobInfo("1", JobState.RUNNING, name=name)])).jobs_of_run("smoke", run_tag("x"))


@pytest.mark.parametrize("version", ALL_VERSIONS)
async def test_rest_cluster_state_of_every_version(version):
    """The recorded answers (v0.0.39: SchedMD's published shapes) through the real RestTransport."""
    fake = FakeSlurmrestd((version,))
    for what in ("nodes", "partitions", "jobs"):
        fake.on("GET", f"/slurm/{version}/{what}", (200, fixture(version, f"cluster_{what}.json")))
    t = RestTransport(await fake.start(), "root", StaticTokenProvider("t"), retries=0)
    try:
        state = await t.cluster_state()
    finally:
        await t.close()
        await fake.close()
    assert state.source == f"rest {version}"
    assert [(p.name, p.nodes, p.total_cpus, p.max_time_s) for p in state.partitions] == [
        ("cpu", ("vm",), 16, 7200), ("gpu", ("vm",), 16, 7200)]
    assert all(p.state == ("UP" if version != "v0.0.39" else None) for p in state.partitions)
    assert [p.default for p in state.partitions] == ([True, False] if version in ("v0.0.37", "v0.0.38", "v0.0.45")
                                                     else [False, False])
    (node,) = state.nodes
    assert (node.name, node.state, node.partitions, node.cpus, node.gpus) == ("vm", "mixed", ("cpu", "gpu"), 16, 0)
    assert node.cpus_alloc >= 2 and node.memory_mb > 10_000
    (job,) = state.jobs  # the other job is not factorybench's
    assert job.name == f"fb-record-svc-{version.replace('.', '')}" and job.state is JobState.RUNNING
    assert job.nodes == ("vm",) and job.partition == "cpu"
    assert [r[1] for r in fake.requests[1:]] == [f"/slurm/{version}/{w}" for w in ("nodes", "partitions", "jobs")]

"""A run is recorded as a success only when it really was one."""

from __future__ import annotations

import pytest

from factorybench.pipeline import assess
from factorybench.slurm.job import JobInfo, JobState

OK = {"requests": 20, "errors": 0, "valid": True}


def stopped(before: JobState, after: JobState = JobState.CANCELLED) -> dict:
    return {"before": JobInfo("7", before, before.value).to_dict(), "after": JobInfo("7", after, after.value).to_dict()}


@pytest.mark.parametrize("summary, stop, job_id, status, words", [
    (OK, stopped(JobState.RUNNING), "7", "success", ""),
    (OK, None, "7", "failed", "teardown failed or did not run"),
    (OK, stopped(JobState.FAILED, JobState.FAILED), "7", "failed", "ended before teardown: job 7 is FAILED"),
    (OK, stopped(JobState.NODE_FAIL, JobState.NODE_FAIL), "7", "failed", "NODE_FAIL"),
    (OK, stopped(JobState.RUNNING, JobState.COMPLETING), "7", "failed", "still alive after teardown"),
    ({**OK, "valid": False, "invalid_reasons": ["event-loop lag"]}, stopped(JobState.RUNNING), "7", "invalid",
     "measurement is not valid: event-loop lag"),
    ({"requests": 0, "errors": 0}, stopped(JobState.RUNNING), "7", "failed", "no request completed"),
    ({"requests": 18, "errors": 2}, stopped(JobState.RUNNING), "7", "failed", "2 of 20 requests failed"),
    (None, stopped(JobState.RUNNING), "7", "failed", "no load result"),
    (None, None, None, "failed", "no load result"),
])
def test_assess(summary, stop, job_id, status, words):
    got, message = assess(summary, stop, job_id)
    assert got == status and words in message


def test_the_loads_own_failure_is_the_message():
    status, message = assess(None, stopped(JobState.PENDING), "7",
                             "load stopped early: the service job left its node (requeued): job 7 is PENDING")
    assert status == "failed" and message == ("no load result: load stopped early: the service job left its node "
                                              "(requeued): job 7 is PENDING")

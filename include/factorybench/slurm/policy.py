"""What to do with a job that waits: pure logic, fed by whoever polls (trigger or CLI).

A job pending on a reason that never clears (ReqNodeNotAvail, PartitionDown...)
is given `grace_s` in case an admin fixes it, then cancelled; any job pending
longer than `max_pending_s` is cancelled too. The verdict names SLURM's reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from factorybench.recipe.cluster import PendingPolicy
from factorybench.slurm.job import JobInfo, JobState


@dataclass(frozen=True)
class Verdict:
    cancel: bool
    message: str = ""


@dataclass
class PendingWatch:
    """Carries the one thing the policy must remember between polls: since when a reason blocks."""

    policy: PendingPolicy
    blocked_reason: str | None = None
    blocked_since: float | None = None

    def observe(self, info: JobInfo, now: float) -> Verdict:
        if info.state is not JobState.PENDING:
            self.blocked_reason = self.blocked_since = None
            return Verdict(False)
        reason = (info.reason or "").split(",")[0].strip()
        if reason in self.policy.blocked_reasons:
            if reason != self.blocked_reason:
                self.blocked_reason, self.blocked_since = reason, now
            elif now - (self.blocked_since or now) >= self.policy.grace_s:
                return Verdict(True, f"job {info.job_id} has been pending with reason {reason} for "
                                     f"{now - self.blocked_since:.0f}s (grace {self.policy.grace_s:.0f}s); "
                                     "this reason does not clear by itself")
        else:
            self.blocked_reason = self.blocked_since = None
        if self.policy.max_pending_s and info.submit_time is not None:
            submitted = info.submit_time
            if submitted.tzinfo is None:  # SLURM prints local time without a zone
                waited = datetime.now() - submitted
            else:
                waited = datetime.now(timezone.utc) - submitted
            if waited.total_seconds() > self.policy.max_pending_s:
                return Verdict(True, f"job {info.job_id} pending for {waited.total_seconds():.0f}s, over "
                                     f"max_pending_s={self.policy.max_pending_s:.0f} (reason {reason or 'none'})")
        return Verdict(False)

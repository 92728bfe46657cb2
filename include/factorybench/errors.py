"""One small exception hierarchy for the whole core.

The Airflow layer translates these into Airflow exceptions; nothing here imports
Airflow, and nothing anywhere matches on message text.
"""

from __future__ import annotations


class FactorybenchError(Exception):
    """Base class of every error the core raises on purpose."""


class RecipeError(FactorybenchError):
    """A recipe is invalid. Carries every problem found, each naming file, key path and reason."""

    def __init__(self, path: str, problems: list[tuple[str, str]]):
        self.path = path
        self.problems = problems  # (key path such as "service.resources.gpus", reason)
        lines = [f"{path}: {loc or '<top level>'}: {why}" for loc, why in problems]
        super().__init__("\n".join(lines))


class SchedulerError(FactorybenchError):
    """A transport could not talk to the scheduler (network, auth, protocol)."""


class TransientSchedulerError(SchedulerError):
    """Worth retrying: connection refused, timeout, controller restarting, 5xx."""


class AuthError(SchedulerError):
    """Credentials were refused even after a refresh."""


class JobError(FactorybenchError):
    """A job ended, or must be ended, in a way the run cannot continue from."""

    def __init__(self, message: str, job_id: str | None = None, state: str | None = None,
                 reason: str | None = None):
        self.job_id = job_id
        self.state = state
        self.reason = reason
        super().__init__(message)


class EndpointError(FactorybenchError):
    """The service's endpoint could not be found or never became ready."""


class LoadError(FactorybenchError):
    """The load client could not run (as opposed to the server failing requests)."""

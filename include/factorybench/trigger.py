"""Trigger a recipe's DAG from CI through Airflow's REST API v2, wait for it, and return its verdict.

Exit codes (what CI acts on): 0 the run passed, 1 it regressed (per the recipe's checks),
2 anything else: the run failed or was invalid, the wait timed out, or the API could not be used.
Transient API failures (connection errors, 5xx: Airflow answers 500 on a passing DB lock) are
retried with capped, jittered exponential backoff; an expired token is renewed once per 401.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import requests
from tenacity import (Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential)

from factorybench.errors import FactorybenchError

PASS, REGRESSION, FAILED = 0, 1, 2
_TERMINAL = {"success", "failed"}


class ApiError(FactorybenchError):
    """Airflow's API refused or could not be reached, after retries."""


class _Transient(Exception):
    pass


@dataclass
class AirflowAPI:
    """A small client for what CI needs: token, unpause, trigger, poll, XCom."""

    url: str
    token: str | None = None
    username: str | None = None
    password: str | None = None
    timeout_s: float = 30.0
    attempts: int = 6
    session: requests.Session = field(default_factory=requests.Session, repr=False)

    def __post_init__(self):
        self.url = self.url.rstrip("/")
        if not self.token and not (self.username and self.password):
            raise ApiError("give an Airflow API token, or a username and password (FB_AIRFLOW_TOKEN, or "
                           "FB_AIRFLOW_USER and FB_AIRFLOW_PASSWORD)")

    def _login(self) -> None:
        resp = self._send("POST", "/auth/token", json={"username": self.username, "password": self.password},
                          auth=False)
        if resp.status_code not in (200, 201):
            raise ApiError(f"Airflow refused the login of {self.username!r}: HTTP {resp.status_code} {resp.text[:200]}")
        self.token = resp.json()["access_token"]

    def _send(self, method: str, path: str, auth: bool = True, **kw) -> requests.Response:
        def once() -> requests.Response:
            headers = {"Authorization": f"Bearer {self.token}"} if auth else {}
            try:
                resp = self.session.request(method, self.url + path, headers=headers, timeout=self.timeout_s, **kw)
            except (requests.ConnectionError, requests.Timeout) as exc:
                raise _Transient(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
            if resp.status_code >= 500:
                raise _Transient(f"{method} {path}: HTTP {resp.status_code} {resp.text[:200]}")
            return resp

        retrying = Retrying(retry=retry_if_exception_type(_Transient), stop=stop_after_attempt(self.attempts),
                            wait=wait_random_exponential(multiplier=0.5, max=20), reraise=True)
        try:
            return retrying(once)
        except _Transient as exc:
            raise ApiError(f"Airflow API at {self.url} kept failing: {exc}") from None

    def call(self, method: str, path: str, ok: tuple[int, ...] = (200,), **kw) -> requests.Response:
        if self.token is None:
            self._login()
        resp = self._send(method, path, **kw)
        if resp.status_code == 401 and self.username and self.password:
            self._login()
            resp = self._send(method, path, **kw)
        if resp.status_code not in ok:
            raise ApiError(f"{method} {path}: HTTP {resp.status_code}: {resp.text[:500]}")
        return resp

    def unpause(self, dag_id: str) -> None:
        self.call("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})

    def trigger(self, dag_id: str, run_id: str, conf: dict[str, Any], note: str | None = None) -> dict[str, Any]:
        body = {"dag_run_id": run_id, "logical_date": None, "conf": conf}
        if note:
            body["note"] = note
        return self.call("POST", f"/api/v2/dags/{dag_id}/dagRuns", json=body).json()

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").json()

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        doc = self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances").json()
        return {t["task_id"]: t["state"] for t in doc["task_instances"]}

    def xcom(self, dag_id: str, run_id: str, task_id: str) -> Any:
        resp = self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/"
                                "return_value", ok=(200, 404))
        return resp.json().get("value") if resp.status_code == 200 else None


@dataclass
class Outcome:
    exit_code: int
    dag_id: str
    run_id: str
    state: str | None
    message: str
    verdict: str | None = None
    verdict_line: str | None = None
    failing: list[str] = field(default_factory=list)
    archive: str | None = None
    report_url: str | None = None
    tasks: dict[str, str | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


def new_run_id(ci_ref: str | None) -> str:
    tag = "".join(c if c.isalnum() or c in "-_." else "_" for c in (ci_ref or ""))[:60]
    return f"ci__{tag + '__' if tag else ''}{time.strftime('%Y%m%dT%H%M%S')}_{uuid.uuid4().hex[:6]}"


def run(api: AirflowAPI, dag_id: str, conf: dict[str, Any], *, wait: bool = True, timeout_s: float = 3600,
        poll_s: float = 5.0, ci_ref: str | None = None, ui_url: str | None = None) -> Outcome:
    """Unpause, trigger, and (with wait) poll until the run ends; then read its verdict."""
    conf = {**conf, "triggered_via": "ci", **({"ci_ref": ci_ref} if ci_ref else {})}
    run_id = new_run_id(ci_ref)
    api.unpause(dag_id)
    api.trigger(dag_id, run_id, conf, note=f"triggered by CI{f' for {ci_ref}' if ci_ref else ''}")
    if not wait:
        return Outcome(PASS, dag_id, run_id, "queued", "triggered; not waiting for the result")
    deadline = time.monotonic() + timeout_s
    state = None
    while time.monotonic() < deadline:
        state = api.dag_run(dag_id, run_id).get("state")
        if state in _TERMINAL:
            break
        time.sleep(poll_s)
    tasks = api.task_states(dag_id, run_id)
    if state not in _TERMINAL:
        return Outcome(FAILED, dag_id, run_id, state, f"timed out after {timeout_s:.0f}s waiting for the run",
                       tasks=tasks)
    archived = api.xcom(dag_id, run_id, "archive") or {}
    report = f"{ui_url.rstrip('/')}/factorybench/runs/{archived['db_id']}/report" if ui_url and archived.get(
        "db_id") else None
    out = Outcome(FAILED, dag_id, run_id, state, "", archived.get("verdict"), archived.get("verdict_line"),
                  archived.get("failing") or [], archived.get("archive"), report, tasks)
    if not archived:
        failed = [t for t, s in tasks.items() if s in ("failed", "upstream_failed")]
        out.message = f"the run ended {state} before it was archived (failed tasks: {', '.join(failed) or 'none'})"
    elif archived.get("status") != "success":
        out.message = f"the benchmark {archived['status']}: {archived.get('message')}"
    elif archived.get("failed"):
        out.exit_code, out.message = REGRESSION, "regression against the recipe's history"
    elif state == "success":
        out.exit_code, out.message = PASS, "passed"
    else:
        out.message = f"the run ended {state}: see its failed tasks"
    return out

"""When the run is judged: what needs both sides, and what needs the run to be over.

- The validity cross-check: the output tokens the server's counter says it generated during the
  run must equal the output tokens the client received, warm-up included (the server served
  those too). It is *conclusive* when every request succeeded and every count came from the
  server's own usage report; then a disagreement beyond the recipe's `monitoring.token_tolerance`
  makes a successful run `invalid`: the client's figures do not describe what the server did
  (another client on the server, requests lost on the way). Otherwise a disagreement is a
  warning in the run's message. Either way `server_client_token_agreement` records the ratio.
- Node, GPU and energy figures from Prometheus over the run window (scraped past its end by now),
  and energy per output token.
What it finds goes to the spool (metrics/monitoring.json, monitoring/*.json), so the archive and
the database get it like any watcher's findings. It never fails the run: errors are logged.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from factorybench.results import metrics as catalog
from factorybench.results.archive import Spool

log = logging.getLogger("factorybench.monitoring")


@dataclass
class TokenCheck:
    server: float | None  # generation counter increase over the watch
    client: int  # output tokens of every sample, warm-up included
    tolerance: float
    reasons: list[str] = field(default_factory=list)  # why it is not conclusive

    @property
    def conclusive(self) -> bool:
        return not self.reasons

    @property
    def ratio(self) -> float | None:
        return None if self.server is None or not self.client else self.server / self.client

    @property
    def agree(self) -> bool | None:
        if self.server is None or (not self.client and not self.server):
            return None
        return abs(self.server - self.client) <= self.tolerance * self.client

    def text(self) -> str:
        return (f"server/client token check: the server generated {self.server:.0f} output tokens during the run, "
                f"the client received {self.client} (warm-up included; ratio "
                f"{'-' if self.ratio is None else f'{self.ratio:.4f}'}, tolerance {self.tolerance:.2%})")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "conclusive": self.conclusive, "ratio": self.ratio, "agree": self.agree}


def client_tokens(samples_parquet: bytes | None, tolerance: float) -> TokenCheck | None:
    """The client's side of the check from the run's raw samples; None without samples or tokens."""
    if not samples_parquet:
        return None
    import pyarrow.parquet as pq

    rows = pq.read_table(io.BytesIO(samples_parquet),
                         columns=["output_tokens", "output_tokens_source", "error"]).to_pylist()
    if not any(r["output_tokens"] for r in rows):
        return None
    failed = sum(r["error"] is not None for r in rows)
    counted = sum(r["error"] is None and r["output_tokens_source"] != "usage" for r in rows)
    check = TokenCheck(None, sum(r["output_tokens"] or 0 for r in rows), tolerance)
    if failed:
        check.reasons.append(f"{failed} requests failed (the server may have generated tokens for them)")
    if counted:
        check.reasons.append(f"{counted} requests' output tokens were counted or estimated by the client, "
                             "not reported by the server")
    return check


def _json(spool: Spool, name: str) -> Any:
    raw = spool.get(name)
    return json.loads(raw) if raw else None


def outcome(check: TokenCheck, status: str, message: str) -> tuple[str, str]:
    """The run's status and message once the check is known."""
    if check.agree is not False:
        return status, message
    if check.conclusive and status == "success":
        return "invalid", (f"{check.text()}: the client's figures do not describe what the server did "
                           "(another client on the server, or requests lost)")
    note = f"warning: {check.text()}" + (f"; not conclusive: {'; '.join(check.reasons)}" if check.reasons else "")
    return status, f"{message}; {note}" if message else note


def reconcile(plan, spool: Spool, status: str, message: str) -> tuple[str, str]:
    """Judge-time monitoring (see the module docstring); returns the run's status and message."""
    try:
        return _reconcile(plan, spool, status, message)
    except Exception:
        log.exception("monitoring: reconciling the run failed; its status stands")
        return status, message


def _reconcile(plan, spool: Spool, status: str, message: str) -> tuple[str, str]:
    recipe, profile = plan.recipe_model(), plan.cluster_model().monitoring
    server = {m["name"]: m["value"] for m in _json(spool, "metrics/server_metrics.json") or []}
    window = _json(spool, "window/window.json")
    figures: dict[str, float] = {}
    if window and window.get("start"):
        figures.update(_cluster(profile, window, spool))
    check = client_tokens(spool.get("load/samples.parquet"), recipe.monitoring.token_tolerance)
    if check is not None:
        figures["client_output_tokens_all"] = check.client
        check.server = server.get("server_generation_tokens")
        if check.ratio is not None:
            figures["server_client_token_agreement"] = check.ratio
        spool.put("monitoring/token_check.json", check.to_dict())
        status, message = outcome(check, status, message)
        log.info("%s: %s", check.text() if check.server is not None else "token check skipped (no server counter)",
                 {True: "agree", False: "DISAGREE", None: "not checked"}[check.agree])
    tokens = server.get("server_generation_tokens") or (check.client if check else None)
    if figures.get("energy_j") and tokens:
        figures["energy_per_output_token_j"] = figures["energy_j"] / tokens
    if figures:
        spool.put("metrics/monitoring.json", [catalog.value_of(k, v).to_dict() for k, v in figures.items()])
    return status, message


def _cluster(profile, window: dict[str, Any], spool: Spool) -> dict[str, float]:
    """Node/GPU/energy figures from Prometheus (or SLURM's energy alone), recorded with their source."""
    from factorybench.monitoring import energy, prom

    sacct = tuple(window.get("slurm_energy_j") or (None, None))
    if not profile.prometheus_url:
        found = energy.choose([], [], sacct)
        if found.joules is None:
            return {}
        spool.put("monitoring/cluster.json", {"energy": found.to_dict()})
        return {"energy_j": found.joules}
    selector = profile.selector.replace("{job_id}", window["job_id"]).replace("{node}", "|".join(window["nodes"]))
    try:
        figures, detail = prom.cluster_figures(prom.Prometheus(profile.prometheus_url, profile.timeout_s), selector,
                                               window["start"], window["end"], sacct)
    except prom.PrometheusError as exc:
        log.warning("monitoring: no node/GPU figures: %s", exc)
        spool.put("monitoring/cluster.json", {"error": str(exc), "selector": selector})
        return {}
    log.info("monitoring: %d node/GPU figures from %s; energy source: %s", len(figures), profile.prometheus_url,
             detail["energy"]["source"] or "none")
    spool.put("monitoring/cluster.json", detail)
    return figures

"""The Grafana dashboards as code: their JSON parses, they use the provisioned datasource's uid, every
query is valid PromQL (promtool, offline), and every metric they name is one the platform produces:
the set is derived from the code that pushes, queries and scrapes, not written down here."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from factorybench.monitoring import names, prom, push

REPO = Path(__file__).resolve().parents[3]
GRAFANA = REPO / "deploy" / "grafana"
BOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left",
            "group_right", "inf", "nan", "Inf", "NaN"}


def produced() -> set[str]:
    return push.produced_names() | set(prom.EXPORTER_NAMES) | names.all_names()


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (not functions, labels, keywords or numbers)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    found = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        if text[m.end():].lstrip().startswith("("):
            continue  # a function
        if m.group() not in KEYWORDS and not re.fullmatch(r"[0-9.e]+", m.group()):
            found.add(m.group())
    return found


def queries(board: dict) -> list[str]:
    out = []
    for panel in board["panels"]:
        out += [t["expr"] for t in panel.get("targets", [])]
    for var in board["templating"]["list"]:
        m = re.fullmatch(r"label_values\((.+),\s*[A-Za-z_]+\)", var["query"]["query"])
        assert m, f"{board['uid']}: variable {var['name']} is not a label_values() query"
        out.append(m.group(1))
    return out


def datasource_uid() -> str:
    doc = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yaml").read_text())
    (ds,) = doc["datasources"]
    assert ds["type"] == "prometheus"
    return ds["uid"]


def test_three_dashboards_with_unique_uids():
    boards = [json.loads(p.read_text()) for p in BOARDS]
    assert {b["uid"] for b in boards} == {"fb-live-run", "fb-nightly-trends", "fb-gpu-node-energy"}
    for b in boards:
        assert b["title"].startswith("factorybench") and b["panels"]


def test_every_panel_target_and_variable_uses_the_provisioned_datasource():
    uid = datasource_uid()
    for path in BOARDS:
        board = json.loads(path.read_text())
        refs = [p["datasource"] for p in board["panels"] if p["type"] != "row"]
        refs += [t["datasource"] for p in board["panels"] for t in p.get("targets", [])]
        refs += [v["datasource"] for v in board["templating"]["list"]]
        assert refs and all(r == {"type": "prometheus", "uid": uid} for r in refs), path.name


@pytest.mark.parametrize("path", BOARDS, ids=lambda p: p.stem)
def test_dashboards_read_only_metrics_the_platform_produces(path):
    board = json.loads(path.read_text())
    used = set().union(*(metric_names(q) for q in queries(board)))
    assert len(used) >= 5, used
    unknown = used - produced()
    assert not unknown, f"{path.name} reads metrics nothing in factorybench produces: {sorted(unknown)}"


def test_the_name_extraction_itself():
    assert metric_names('1 - avg by (node) (rate(node_cpu_seconds_total{mode="idle",a=~"$x"}[1m]))') == {
        "node_cpu_seconds_total"}
    assert metric_names('max by (recipe) (fb_run_verdict{job="x"}) == -1 and on(recipe) up') == {"fb_run_verdict",
                                                                                                "up"}
    assert "fb_not_a_real_metric" not in produced() and "fb_output_tokens_per_s" in produced()
    assert {"vllm:num_requests_running", "llamacpp:requests_deferred", "DCGM_FI_DEV_POWER_USAGE"} <= produced()


def test_every_query_is_valid_promql(tmp_path):
    """promtool (scripts/monitoring/ensure.sh) parses each query as a recording rule, offline."""
    rules = []
    for path in BOARDS:
        for i, q in enumerate(queries(json.loads(path.read_text()))):
            expr = re.sub(r"\$\{?[A-Za-z_]+\}?", ".*", q)
            rules.append({"record": f"fb:{path.stem.replace('-', '_')}:{i}", "expr": expr})
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    out = subprocess.run(["promtool", "check", "rules", str(tmp_path / "rules.yml")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{len(rules)} rules found" in out.stdout


def test_the_dashboard_provider_path_is_where_compose_mounts_them():
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "factorybench.yaml").read_text())
    path = provider["providers"][0]["options"]["path"]
    compose = yaml.safe_load((REPO / "docker-compose.yaml").read_text())
    volumes = compose["services"]["grafana"]["volumes"]
    assert f"./deploy/grafana/dashboards:{path}:ro" in volumes
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in volumes
    assert "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in \
        compose["services"]["prometheus"]["volumes"]

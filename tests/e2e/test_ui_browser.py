"""The factorybench UI inside Airflow's own UI, in a real browser.

The real Airflow stack (the `airflow_stack` fixture) runs the smoke DAG through the REST API;
headless Chromium logs in on Airflow's login page (SimpleAuthManager) and opens the run's
Benchmark tab, the Benchmarks page, a trend page and the cluster view, inside Airflow's pages
(iframes), and checks the numbers they show against the results database. A second run with a
long load is watched live and cancelled from its tab: the DAG run fails and its SLURM job leaves
the queue. Screenshots go to .cache/test-artifacts/ui-browser/ (docs/img/ holds a few).
"""

from __future__ import annotations

import subprocess
import time

import pytest
import requests
from chromium import artifacts_dir, chromium

from factorybench.plan import run_tag
from factorybench.results.query import Results
from factorybench.ui.svg import fmt

pytestmark = [pytest.mark.cluster, pytest.mark.airflow, pytest.mark.slow, pytest.mark.timeout(1200)]
DAG = "factorybench_smoke"
PRIMARY = ("request_rate", "output_tokens_per_s", "ttft_p50_ms", "ttft_p99_ms", "itl_p50_ms", "e2e_p50_ms")


def trigger(stack, run_id: str, conf: dict) -> None:
    resp = stack.call("POST", f"/api/v2/dags/{DAG}/dagRuns", json={"dag_run_id": run_id, "logical_date": None,
                                                                    "conf": conf})
    assert resp.status_code == 200, resp.text


def wait_state(stack, run_id: str, done: tuple[str, ...], timeout: float) -> str:
    deadline = time.time() + timeout
    while True:
        state = stack.call("GET", f"/api/v2/dags/{DAG}/dagRuns/{run_id}").json()["state"]
        if state in done or time.time() > deadline:
            return state
        time.sleep(3)


def task_states(stack, run_id: str) -> dict[str, str]:
    tis = stack.call("GET", f"/api/v2/dags/{DAG}/dagRuns/{run_id}/taskInstances").json()["task_instances"]
    return {t["task_id"]: t["state"] for t in tis}


def squeue_names() -> list[str]:
    return subprocess.run(["squeue", "-h", "-o", "%j"], capture_output=True, text=True, check=True).stdout.split()


@pytest.fixture(scope="module")
def smoke_run(airflow_stack) -> str:
    airflow_stack.wait_for_dag(DAG)
    assert airflow_stack.call("PATCH", f"/api/v2/dags/{DAG}", json={"is_paused": False}).ok
    run_id = f"ui-{int(time.time())}"
    trigger(airflow_stack, run_id, {"max_requests": 24})
    state = wait_state(airflow_stack, run_id, ("success", "failed"), 360)
    assert state == "success", task_states(airflow_stack, run_id)
    return run_id


@pytest.fixture(scope="module")
def results(airflow_stack) -> Results:
    return Results(airflow_stack.env["FB_RESULTS_URL"])


@pytest.fixture(scope="module")
def browser(airflow_stack, tmp_path_factory):
    """Chromium, logged in through Airflow's own login page."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with chromium(tmp_path_factory.mktemp("ui-chromium"), 1400, 1000) as drv:
        drv.get(f"{airflow_stack.base}/auth/login")
        WebDriverWait(drv, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "input[name=username]"))
        drv.find_element(By.CSS_SELECTOR, "input[name=username]").send_keys(airflow_stack.user)
        drv.find_element(By.CSS_SELECTOR, "input[name=password]").send_keys(airflow_stack.password)
        drv.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        WebDriverWait(drv, 60).until(lambda d: any(c["name"] == "_token" for c in d.get_cookies()))
        yield drv


def open_view(browser, stack, path: str, title: str) -> str:
    """An Airflow page, then into the iframe Airflow shows the plugin view in; returns its src."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.switch_to.default_content()
    browser.get(stack.base + path)
    frame = WebDriverWait(browser, 60).until(lambda d: d.find_element(By.CSS_SELECTOR, f"iframe[title='{title}']"))
    src = frame.get_attribute("src")
    browser.switch_to.frame(frame)
    WebDriverWait(browser, 90).until(lambda d: d.find_elements(By.CSS_SELECTOR, "main h1"))
    return src


def cells(browser, table: str) -> list[dict[str, str]]:
    """A table's body rows, by header text."""
    return browser.execute_script("""
        const t = document.getElementById(arguments[0]);
        const head = [...t.querySelectorAll('thead th')].map(th => th.textContent.trim());
        return [...t.querySelectorAll('tbody tr, :scope > tr')].filter(tr => tr.querySelector('td')).map(tr =>
          Object.fromEntries([...tr.children].map((td, i) => [head[i], td.textContent.replace(/\\s+/g, ' ').trim()])));
        """, table)


def shot(browser, name: str, height: int = 1000) -> None:
    """The whole Airflow page, frame included (`height`: a taller window shows more of the frame)."""
    browser.switch_to.default_content()
    browser.set_window_size(1400, height)
    path = artifacts_dir("ui-browser") / f"{name}.png"
    try:
        time.sleep(0.5)  # the frame lays out again at the new size
        assert browser.save_screenshot(str(path)) and path.stat().st_size > 10_000
    finally:
        browser.set_window_size(1400, 1000)
    print(f"screenshot: {path}")


def test_anonymous_requests_are_refused(airflow_stack, smoke_run):
    base = airflow_stack.base
    for method, path in (("GET", "/factorybench/"), ("GET", f"/factorybench/runs/{DAG}/{smoke_run}"),
                         ("GET", f"/factorybench/runs/{DAG}/{smoke_run}/report"), ("GET", "/factorybench/clusters"),
                         ("POST", f"/factorybench/runs/{DAG}/{smoke_run}/cancel"),
                         ("POST", "/factorybench/recipes/smoke/accept")):
        assert requests.request(method, base + path, timeout=30).status_code == 401, path
    assert airflow_stack.call("GET", f"/factorybench/runs/{DAG}/{smoke_run}").status_code == 200


def test_the_benchmark_tab_of_a_run_shows_what_was_measured(browser, airflow_stack, smoke_run, results):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    detail = results.run_by_dag_run(DAG, smoke_run)
    src = open_view(browser, airflow_stack, f"/dags/{DAG}/runs/{smoke_run}/plugin/benchmark", "Benchmark")
    assert src.endswith(f"/factorybench/runs/{DAG}/{smoke_run}")
    text = browser.find_element(By.TAG_NAME, "main").text
    assert detail.run.verdict_line in text
    assert all(job in text for job in detail.run.job_ids) and all(node in text for node in detail.run.nodes)
    shown = {r["Metric"]: r["Value"] for r in cells(browser, "summary")}
    measured = {m.name: m for m in detail.metrics if m.step_index is None}
    assert set(shown) == set(PRIMARY)
    for name in PRIMARY:
        assert shown[name] == fmt(measured[name].value, measured[name].unit), name
    logs = browser.find_elements(By.CSS_SELECTOR, "details.log")
    assert logs and "service.out" in logs[0].text and "factorybench-sim listening" in logs[0].text
    report = browser.find_element(By.CSS_SELECTOR, "iframe.report")
    assert report.size["width"] > 600 and report.size["height"] > 500
    browser.switch_to.frame(report)
    assert len(browser.find_elements(By.CSS_SELECTOR, "figure.plot svg")) >= 3  # the archived report.html
    shot(browser, "run-tab", 1700)

    # Re-run with changed parameters: Airflow's own trigger form opens, with this run's parameters in it.
    browser.switch_to.frame(browser.find_element(By.CSS_SELECTOR, "iframe[title='Benchmark']"))
    browser.find_element(By.CSS_SELECTOR, "a[data-trigger-form]").click()
    browser.switch_to.default_content()
    dialog = WebDriverWait(browser, 30).until(lambda d: [e for e in d.find_elements(
        By.CSS_SELECTOR, "[role=dialog][data-state=open]") if "Trigger Dag" in e.text])[0]
    assert "max_requests" in dialog.text and browser.current_url.endswith(f"/runs/{smoke_run}/plugin/benchmark")
    assert "24" in [i.get_property("value") for i in dialog.find_elements(By.TAG_NAME, "input")]
    shot(browser, "rerun-form")
    ActionChains(browser).send_keys(Keys.ESCAPE).perform()


def test_the_benchmarks_page_and_a_trend(browser, airflow_stack, smoke_run, results):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    open_view(browser, airflow_stack, "/plugin/benchmarks", "Benchmarks")
    (row,) = [r for r in cells(browser, "recipes") if r["Recipe"].startswith("smoke")]
    last = {r.recipe: r for r in results.recipes()}["smoke"]
    assert last.last_dag_run_id in row["Last run"]
    for name in ("request_rate", "ttft_p50_ms"):
        series = [p for p in results.series("smoke", name) if p.valid and p.value is not None]
        unit = {m["name"]: m["unit"] for m in results.metric_names("smoke")}[name]
        assert f"{name} {fmt(series[-1].value, unit)}" in row["Primary metrics, last 30 runs"]
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg.spark")) >= 4
    shot(browser, "benchmarks")

    browser.switch_to.frame(browser.find_element(By.CSS_SELECTOR, "iframe[title='Benchmarks']"))
    browser.find_element(By.LINK_TEXT, "smoke").click()  # navigates inside the frame; Airflow's URL follows
    WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "svg.trend"))
    series = results.series("smoke", "request_rate")
    points = browser.find_elements(By.CSS_SELECTOR, "svg.trend circle.pt")
    assert len(points) == len([p for p in series if p.value is not None]) >= 1
    links = [a.get_dom_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "svg.trend a.pt-link")]
    assert links[-1].endswith(f"/factorybench/runs/{DAG}/{series[-1].dag_run_id}")
    browser.switch_to.default_content()
    assert browser.current_url.endswith("/plugin/benchmarks/factorybench/recipes/smoke")
    shot(browser, "trend", 1300)



def test_a_running_benchmark_live_then_cancelled_from_its_tab(browser, airflow_stack, smoke_run):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    run_id = f"ui-long-{int(time.time())}"
    trigger(airflow_stack, run_id, {"duration_s": 120, "max_requests": None})
    open_view(browser, airflow_stack, f"/dags/{DAG}/runs/{run_id}/plugin/benchmark", "Benchmark")
    # The tab reloads itself every few seconds; the load's figures appear once run_load has begun.
    WebDriverWait(browser, 240, poll_frequency=1).until(lambda d: d.find_elements(By.ID, "live-requests"))
    first = int(browser.find_element(By.ID, "live-requests").text)
    WebDriverWait(browser, 30, poll_frequency=1).until(
        lambda d: d.find_elements(By.ID, "live-requests") and int(d.find_element(By.ID, "live-requests").text) > first)
    jobs = cells(browser, "jobs")
    name = f"fb-smoke-svc-{run_tag(run_id)}"
    assert [j["Name"] for j in jobs] == [name] and name in squeue_names()
    shot(browser, "live")

    # The cluster view: partitions, the node, and the queue with this run's job linked to its run.
    open_view(browser, airflow_stack, "/plugin/slurm-clusters", "SLURM clusters")
    assert [r["Partition"] for r in cells(browser, "partitions")] == ["cpu (default)", "gpu"]
    (node,) = [n for n in cells(browser, "nodes") if n["Partitions"] == "cpu, gpu"]
    assert node["State"] in ("mixed", "allocated") and int(node["CPUs in use"].split("/")[0]) >= 1
    (queued,) = [q for q in cells(browser, "queue") if q["Name"] == name]
    assert queued["Job"] == jobs[0]["Job"] and queued["State"] == "running" and queued["Run"] == run_id
    shot(browser, "clusters")

    open_view(browser, airflow_stack, f"/dags/{DAG}/runs/{run_id}/plugin/benchmark", "Benchmark")
    browser.switch_to.default_content()
    browser.switch_to.frame(browser.find_element(By.CSS_SELECTOR, "iframe[title='Benchmark']"))
    browser.find_element(By.CSS_SELECTOR, "details.danger summary").click()
    browser.find_element(By.CSS_SELECTOR, "details.danger button[type=submit]").click()
    notice = WebDriverWait(browser, 120).until(lambda d: d.find_elements(By.CSS_SELECTOR, "div.notice"))[0].text
    assert "is now marked failed" in notice and jobs[0]["Job"] in notice, notice
    assert wait_state(airflow_stack, run_id, ("failed",), 30) == "failed"
    deadline = time.time() + 60
    while [n for n in squeue_names() if n.endswith(run_tag(run_id))] and time.time() < deadline:
        time.sleep(2)
    assert not [n for n in squeue_names() if n.endswith(run_tag(run_id))]
    shot(browser, "cancelled")

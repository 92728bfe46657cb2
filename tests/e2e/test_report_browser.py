"""The HTML reports in a real browser: headless Debian Chromium through selenium and chromedriver.

A recipe's history (several runs in a temporary SQLite database and archive, one judged
regression, an accepted change) with a sweep as the current run; its run report and its
comparison against the baseline open with no console message, every plot draws at a non-zero
size, nothing is fetched, and full-page screenshots are kept for people to look at.
scripts/ensure-browser.sh installs the browser (scripts/test.sh runs it).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from chromium import chromium
from chromium import artifacts_dir as _artifacts

from factorybench.report import RunReportData, render_comparison, render_run_report
from factorybench.report.synthetic import record_history
from factorybench.results.database import dispose_all
from factorybench.results.query import Results

RUN_PLOTS = {"plot-cdf", "plot-percentiles", "plot-sweep", "plot-timeline", "plot-trend"}


def artifacts_dir() -> Path:
    return _artifacts("report-browser")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as drv:
        yield drv


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    root = tmp_path_factory.mktemp("report-browser")
    url = f"sqlite:///{root}/results.db"
    current = record_history(url, str(root / "archive"), sweep=True, current_n=3000)
    results = Results(url)
    run = RunReportData.from_results(results, current["dag_run_id"])
    base = RunReportData.baseline(results, current["dag_run_id"])
    out = artifacts_dir()
    paths = {"run-report": out / "run-report.html", "comparison": out / "comparison.html"}
    paths["run-report"].write_text(render_run_report(run))
    paths["comparison"].write_text(render_comparison(base, run))
    print(f"\nreport browser test artifacts (HTML and PNG): {out}")
    yield paths
    dispose_all()


def open_page(browser, path: Path) -> list[dict]:
    browser.get_log("browser")  # drop what an earlier page left
    browser.get(path.as_uri())
    assert browser.execute_script("return document.readyState") == "complete"
    return browser.get_log("browser")


def plot_sizes(browser) -> dict[str, tuple[float, float]]:
    return browser.execute_script("""
        const out = {};
        for (const f of document.querySelectorAll('figure.plot')) {
          const svgs = f.querySelectorAll(':scope > svg');
          const r = svgs.length === 1 ? svgs[0].getBoundingClientRect() : {width: 0, height: 0};
          out[f.id] = [r.width, r.height, svgs[0] ? svgs[0].querySelectorAll('path, use').length : 0];
        }
        return out;""")


def screenshot(browser, name: str) -> Path:
    """The whole page: the window grows to the document's height first."""
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1300, min(height + 40, 16000))
    path = artifacts_dir() / f"{name}.png"
    assert browser.save_screenshot(str(path)) and path.stat().st_size > 10_000
    browser.set_window_size(1300, 900)
    return path


@pytest.mark.parametrize("name, plots", [("run-report", RUN_PLOTS), ("comparison", {"plot-cdf", "plot-percentiles"})])
def test_report_renders_cleanly(browser, reports, name, plots):
    logs = open_page(browser, reports[name])
    assert logs == [], f"console messages: {logs}"
    sizes = plot_sizes(browser)
    assert set(sizes) == plots
    for plot, (width, height, marks) in sizes.items():
        assert width > 600 and height > 150, f"{plot} drawn at {width}x{height}"
        assert marks > 10, f"{plot} has almost nothing drawn in it"
    fetched = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert fetched == [], f"the page fetched {fetched}"
    links = browser.execute_script(
        "return [...document.querySelectorAll('a[download]')].map(a => [a.download, a.href.slice(0, 30)])")
    assert links and all(href.startswith(("data:text/csv", "data:application/json")) for _, href in links)
    shot = screenshot(browser, name)
    print(f"screenshot: {shot}")


def test_sections_screenshots(browser, reports):
    """Close-ups of the parts people look at first, for the docs and for review."""
    from selenium.webdriver.common.by import By

    open_page(browser, reports["run-report"])
    for section in ("verdicts", "sweep", "trend", "timeline"):
        element = browser.find_element(By.ID, section)
        browser.execute_script("arguments[0].scrollIntoView()", element)
        path = artifacts_dir() / f"run-report-{section}.png"
        assert element.screenshot(str(path)) and path.stat().st_size > 5_000

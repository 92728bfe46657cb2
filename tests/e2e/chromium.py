"""Headless Debian Chromium through selenium and chromedriver, for the browser tests (the report
pages, and the UI inside Airflow). scripts/ensure-browser.sh installs both; selenium never
downloads a browser or a driver."""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parents[2]
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--hide-scrollbars", "--window-size=1300,900")


def artifacts_dir(name: str) -> Path:
    """Where a test's screenshots go: $FB_TEST_ARTIFACTS/<name>, or .cache/test-artifacts/<name> (gitignored)."""
    base = Path(os.environ.get("FB_TEST_ARTIFACTS") or REPO / ".cache" / "test-artifacts")
    out = base / name
    out.mkdir(parents=True, exist_ok=True)
    return out


@contextmanager
def chromium(profile_dir: Path, width: int = 1300, height: int = 900) -> Iterator:
    chrome, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chrome or not driver:  # a failure, never a skip: the browser is part of the test setup
        pytest.fail("chromium and chromedriver are required: run scripts/ensure-browser.sh")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = chrome
    for flag in (*FLAGS, f"--window-size={width},{height}", f"--user-data-dir={profile_dir}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SE_OFFLINE", "true")  # selenium must never try to download a browser or a driver
        drv = webdriver.Chrome(service=Service(driver), options=options)
    drv.set_page_load_timeout(60)
    try:
        yield drv
    finally:
        drv.quit()

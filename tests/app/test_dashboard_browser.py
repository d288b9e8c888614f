"""One real-browser test: `streamlit run` the dashboard on a free localhost port, open the Backtest page in
headless Chromium (selenium), wait for the equity chart to render, save a screenshot.

Needs Debian's ``chromium`` and ``chromium-driver`` (``apt-get install chromium chromium-driver``). Without
them the test is SKIPPED with the reason and the install command; CI installs them and sets
``DREX_REQUIRE_BROWSER=1``, which turns a missing browser into a failure. ``DREX_SKIP_BROWSER=1`` skips it even
where chromium is installed.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from app.dashboard.launch import streamlit_command

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHART_TIMEOUT_S = 90
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "img" / "dashboard.png"

pytestmark = pytest.mark.browser


def _require_browser() -> None:
    if os.environ.get("DREX_SKIP_BROWSER") == "1":
        pytest.skip("DREX_SKIP_BROWSER=1")
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not (os.path.isfile(p) and os.access(p, os.X_OK))]
    if not missing:
        return
    why = (f"{', '.join(missing)} not found: `apt-get install chromium chromium-driver` to run this browser "
           "test")
    if os.environ.get("DREX_REQUIRE_BROWSER") == "1":
        pytest.fail(f"DREX_REQUIRE_BROWSER=1 but {why}")
    pytest.skip(why)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the server's whole process group, then SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture
def dashboard_url(tmp_path):
    _require_browser()
    port = _free_port()
    log = open(tmp_path / "streamlit.log", "wb")  # noqa: SIM115 - outlives this statement; closed below
    proc = subprocess.Popen(streamlit_command("127.0.0.1", port, headless=True), stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp_path, env=dict(os.environ))
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"streamlit exited with {proc.returncode}: {(tmp_path / 'streamlit.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("streamlit did not answer /_stcore/health within 60 s")
            time.sleep(0.3)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(proc)
        log.close()


@pytest.fixture
def driver(tmp_path):
    _require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1500,1900", f"--user-data-dir={tmp_path / 'chrome'}"):
        opts.add_argument(arg)
    drv = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        yield drv
    finally:
        drv.quit()


def test_backtest_page_renders_the_equity_chart_in_a_real_browser(dashboard_url, driver, tmp_path):
    from selenium.webdriver.common.by import By

    driver.get(f"{dashboard_url}/")  # the Backtest page is the default page, served at the root
    deadline = time.monotonic() + CHART_TIMEOUT_S
    charts, problems = [], []
    while time.monotonic() < deadline:
        problems = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
        problems += [e for e in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stAlertContentError"]')]
        if problems:
            break
        charts = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stPlotlyChart"] .js-plotly-plot .main-svg')
        running = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stSpinner"]')
        if len(charts) >= 3 and not running:  # equity, drawdown, exposure
            break
        time.sleep(0.5)
    time.sleep(1.0)  # let plotly finish drawing before the screenshot
    shot = tmp_path / "dashboard.png"
    driver.save_screenshot(str(shot))
    body = driver.find_element(By.TAG_NAME, "body").text
    assert "Page not found" not in body and "Traceback" not in body, body[:500]
    assert not problems, f"the page shows an error: {problems[0].text[:500]} (screenshot {shot})"
    assert charts, f"no plotly chart rendered within {CHART_TIMEOUT_S} s (screenshot {shot})"
    titles = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stPlotlyChart"] .gtitle')
    assert any("Equity" in t.text for t in titles), [t.text for t in titles]
    nav = driver.find_element(By.CSS_SELECTOR, '[data-testid="stSidebarNav"]').text
    assert all(t in nav for t in ("Backtest", "Sweep", "Training monitor", "Paper trading")), nav
    assert shot.stat().st_size > 20_000
    if os.environ.get("DREX_SAVE_SCREENSHOT") == "1":  # refresh the README image on purpose only
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)

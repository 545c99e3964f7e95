"""The dashboard in a real browser: Debian's chromium driven by Playwright against `streamlit run`.

Two servers run as subprocesses on free loopback ports: one on a seeded database
(every page, a filter click) and one on an empty folder (the one-click demo).
Screenshots go to artifacts/screenshots/ (gitignored). Every request the page
makes must stay on 127.0.0.1; no page may show a Streamlit exception box.
Chromium missing is a failure with a message, never a skip: CI installs it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import urlopen

import pytest
from test_dashboard import seed_results_db

from bench.sandbox import start_sandbox

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
SHOTS = ROOT / "artifacts" / "screenshots"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PAGES = {"decide": "", "results": "results", "compare": "compare", "load": "load", "quality": "quality",
         "catalog": "catalog",
         "credits": "credits",
         "run": "run", "export": "export"}
CHART = '[data-testid="stVegaLiteChart"] canvas, [data-testid="stVegaLiteChart"] svg'
IDLE = "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`streamlit run dashboard/app.py` on a free port with its own database."""

    def __init__(self, db: Path, base_url: str, log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENROUTER_", "ORBENCH_"))}
        env["ORBENCH_DEMO_LOCAL"] = "0"  # keep the demo to the sandbox here (fast, deterministic)
        env |= {"ORBENCH_DB": str(db), "OPENROUTER_BASE_URL": base_url}
        self._log = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard" / "app.py"),
             "--server.port", str(self.port)],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def wait_healthy(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"streamlit exited with {self.proc.returncode}"
            try:
                with urlopen(self.url + "/_stcore/health", timeout=2) as r:
                    if r.read() == b"ok":
                        return
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"streamlit did not become healthy on {self.url}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium); "
                    "CI installs it", pytrace=False)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is missing: pip install playwright (never `playwright install`)",
                    pytrace=False)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Server]]:
    """Both servers start together (each needs a few seconds) against one sandbox."""
    tmp = tmp_path_factory.mktemp("browser")
    seeded = tmp / "seeded" / "orbench.duckdb"
    seeded.parent.mkdir()
    seed_results_db(seeded)
    with start_sandbox(seed=2, time_scale=0.1) as sb:
        running = {
            "seeded": Server(seeded, sb.base_url, tmp / "seeded.log"),
            "empty": Server(tmp / "empty" / "orbench.duckdb", sb.base_url, tmp / "empty.log"),
        }
        try:
            for s in running.values():
                s.wait_healthy()
            yield running
        finally:
            for s in running.values():
                s.stop()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh tab that records every URL it requests."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 2200})
    tab = ctx.new_page()
    tab.requested = []
    tab.on("request", lambda r: tab.requested.append(r.url))
    yield tab
    ctx.close()


def _settle(tab: Any, chart: bool) -> None:
    tab.wait_for_selector('[data-testid="stMainBlockContainer"] h1', timeout=60_000)
    if chart:
        tab.wait_for_selector(CHART, timeout=60_000)
    tab.wait_for_function(IDLE, timeout=60_000)
    tab.wait_for_timeout(400)  # let the last charts paint


def _check(tab: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(SHOTS / f"{name}.png"))
    assert tab.locator('[data-testid="stException"]').count() == 0, f"{name}: exception on the page"
    hosts = {urlsplit(u).hostname for u in tab.requested if u.startswith("http")}
    assert hosts <= {"127.0.0.1"}, f"{name}: requests left the machine: {hosts}"


def test_every_page_renders_with_charts(servers: dict[str, Server], page: Any) -> None:
    for name, path in PAGES.items():
        page.goto(f"{servers['seeded'].url}/{path}", wait_until="domcontentloaded")
        _settle(page, chart=name not in ("run", "load"))  # the seeded runs include no sweep: Load's empty state
        assert "Simulated" in page.inner_text('[data-testid="stMainBlockContainer"]'), name
        _check(page, name)


def test_model_filter_click_narrows_results(servers: dict[str, Server], page: Any) -> None:
    page.goto(f"{servers['seeded'].url}/results", wait_until="domcontentloaded")
    _settle(page, chart=True)
    requests = page.get_by_test_id("stMetric").first
    assert "120" in requests.inner_text()
    sidebar = page.get_by_test_id("stSidebar")
    sidebar.get_by_test_id("stMultiSelect").nth(1).click()  # Runs, then Models
    page.get_by_role("option", name="openai/gpt-4o-mini").click()
    page.keyboard.press("Escape")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=\"stMetric\"]').innerText.includes('60')",
        timeout=60_000)
    _settle(page, chart=True)
    _check(page, "results-filtered")


def test_demo_run_fills_an_empty_database(servers: dict[str, Server], page: Any) -> None:
    page.goto(servers["empty"].url, wait_until="domcontentloaded")
    page.wait_for_selector("text=no database file yet", timeout=60_000)
    _check(page, "empty")
    page.get_by_role("button", name="Run a demo on the sandbox").click()
    page.wait_for_selector(CHART, timeout=90_000)
    _settle(page, chart=True)
    _check(page, "demo-results")

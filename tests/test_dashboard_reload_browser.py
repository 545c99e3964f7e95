"""A reload in a real browser keeps a dashboard-started run; Credits agrees with the runs.

One `streamlit run` server with no key and no OPENROUTER_BASE_URL: the dashboard starts
its own sandbox at its real (unscaled) speed, so a 240-request run takes minutes and
there is time to reload. The database already holds a `orbench run --sandbox` run made
by another process (whose sandbox is gone), the situation that used to show $0.0000.
Screenshots go to artifacts/screenshots/reload-*.png.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import test_dashboard_browser as shared
from test_dashboard_browser import ROOT, Server, _check, _settle

from bench.store.store import Store

browser = shared.browser  # the same fixtures: Debian's chromium, a fresh tab that records requests
page = shared.page

pytestmark = pytest.mark.browser

SMOKE = ROOT / "data" / "suites" / "smoke.yaml"
CANCEL = 'button:has-text("Cancel the run")'


@pytest.fixture(scope="module")
def keyless(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    """A database with one CLI sandbox run, and a server on it with no key and no base URL."""
    tmp = tmp_path_factory.mktemp("reload")
    db = tmp / "orbench.duckdb"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENROUTER_", "ORBENCH_"))}
    done = subprocess.run([sys.executable, "-m", "bench", "run", str(SMOKE), "--sandbox", "--db", str(db),
                           "--repeat", "1"], cwd=ROOT, env=env | {"PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    server = Server(db, "", tmp / "server.log")  # an empty OPENROUTER_BASE_URL is the default: keyless
    try:
        server.wait_healthy()
        yield server, db
    finally:
        server.stop()


def _progress_text(tab: Any) -> str:
    return str(tab.locator('[data-testid="stProgress"]').first.inner_text())


def test_reload_keeps_the_run_and_cancel_works(keyless: tuple[Server, Path], page: Any, browser: Any) -> None:
    server, db = keyless
    page.goto(f"{server.url}/run", wait_until="domcontentloaded")
    _settle(page, chart=False)
    repeats = page.get_by_label("Repeats per case")
    repeats.fill("40")
    repeats.press("Enter")
    concurrency = page.get_by_label("Concurrency (requests in flight)")
    concurrency.fill("2")
    concurrency.press("Enter")
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')")
    page.get_by_role("button", name="Start run").click()
    page.wait_for_selector(CANCEL, timeout=60_000)
    page.wait_for_function(
        "() => /running: [1-9]\\d*\\/\\d+ done/.test(document.querySelector('[data-testid=\"stProgress\"]')"
        "?.innerText || '')", timeout=60_000)
    before = _progress_text(page)
    _check(page, "reload-1-running")

    page.reload(wait_until="domcontentloaded")
    _settle(page, chart=False)
    page.wait_for_selector(CANCEL, timeout=30_000)  # the reloaded page still has the run and its Cancel
    after = _progress_text(page)
    assert after.startswith("running:"), after
    done_before = int(before.split(": ")[1].split("/")[0])
    page.wait_for_function(
        f"() => parseInt((document.querySelector('[data-testid=\"stProgress\"]')?.innerText || '')"
        f".split(': ')[1]) > {done_before}", timeout=60_000)  # and it keeps moving
    _check(page, "reload-2-after-reload")

    other = browser.new_context(viewport={"width": 1400, "height": 1400}).new_page()  # a second tab
    other.goto(f"{server.url}/run", wait_until="domcontentloaded")
    other.wait_for_selector(CANCEL, timeout=60_000)
    other.close()

    page.locator(CANCEL).click()
    page.wait_for_selector("text=ended cancelled", timeout=60_000)
    _settle(page, chart=False)
    _check(page, "reload-3-cancelled")
    runs = Store(db).list_runs()
    assert sorted(runs["status"].to_list()) == ["cancelled", "finished"]


def test_credits_match_the_simulated_spend_of_the_runs(keyless: tuple[Server, Path], page: Any) -> None:
    server, db = keyless
    spent = Store(db).simulated_spend()["usd"]
    billed = Store(db).query("SELECT sum(cost_usd) AS usd FROM requests")["usd"][0]
    assert spent > 0 and spent == billed
    page.goto(f"{server.url}/credits", wait_until="domcontentloaded")
    _settle(page, chart=True)
    tile = page.get_by_test_id("stMetric").filter(has_text="Key usage (simulated)")
    value = tile.get_by_test_id("stMetricValue").inner_text().strip()
    assert value == f"${float(spent):,.4f}", (value, spent)
    assert value != "$0.0000"
    _check(page, "reload-4-credits")

"""The dashboard on ``--team`` in a real browser: runs of two origins, the origin filter, a cross-origin compare.

Two machines (data folders) push to a throwaway PostgreSQL; ``orbench dashboard --team URL`` on a third,
empty folder pulls through its local cache. A run pushed after the page opened appears within the
10 s refresh. Chromium missing is a failure, never a skip (CI installs it).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_dashboard_browser import ARGS, CHROMIUM, IDLE, SHOTS, _free_port
from test_team import _seed

from bench.store.store import Store
from bench.store.team.push import push
from bench.store.team.schema import init_schema
from bench.store.team.url import parse_team_url

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parent.parent
RUN_A, RUN_B, RUN_C = "20261206-100000-a0a0a0a0a0a0", "20261206-100100-b0b0b0b0b0b0", "20261206-100200-c0c0c0c0c0c0"


@pytest.fixture(scope="module")
def team_dashboard(pg_cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("team-browser")
    pg_cluster.sql("DROP DATABASE IF EXISTS team_browser WITH (FORCE)")
    pg_cluster.sql("CREATE DATABASE team_browser")
    url = pg_cluster.url("team_browser")
    team = parse_team_url(url)
    init_schema(team)
    machines = {}
    for run_id, origin in ((RUN_A, "ci-eu-west"), (RUN_B, "laptop-ana")):
        db = tmp / origin / "orbench.duckdb"
        _seed(db, run_id, 60, origin)
        push(Store(db), team, None, origin=origin)
        machines[origin] = db
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENROUTER_", "ORBENCH_"))}
    log = (tmp / "dashboard.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "bench", "dashboard", "--team", url, "--port", str(port),
                             "--db", str(tmp / "reader" / "orbench.duckdb")],
                            cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield {"url": f"http://127.0.0.1:{port}", "team": team, "machines": machines, "tmp": tmp}
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


@pytest.fixture
def tab() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (CI installs it)", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 2200})
        page.requested = []
        page.on("request", lambda r: page.requested.append(r.url))
        yield page
        browser.close()


def _open(tab: Any, url: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            tab.goto(url, wait_until="domcontentloaded")
            break
        except Exception:  # noqa: BLE001 - the server is still starting
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    tab.wait_for_selector('[data-testid="stMainBlockContainer"] h1', timeout=60_000)
    tab.wait_for_function(IDLE, timeout=60_000)


def test_team_dashboard_lists_both_origins_filters_and_compares(team_dashboard: dict[str, Any], tab: Any) -> None:
    base = team_dashboard["url"]
    _open(tab, f"{base}/compare")
    tab.get_by_text("team: 127.0.0.1/team_browser, 2 runs from 2 origins").wait_for(timeout=30_000)
    body = tab.get_by_test_id("stMainBlockContainer")
    tab.get_by_test_id("stVegaLiteChart").first.wait_for(timeout=30_000)
    tab.wait_for_function(IDLE, timeout=60_000)
    SHOTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(SHOTS / "team-compare.png"))
    # run A vs run B across origins: the two pickers name each run's origin, the diff chart is drawn
    tab.get_by_text("Run B vs run A").wait_for(timeout=30_000)
    text = tab.evaluate("() => document.body.innerText + [...document.querySelectorAll('input')]"
                        ".map(i => i.value + ' ' + (i.getAttribute('aria-label') || '')).join(' ')")
    assert f"{RUN_A} @ ci-eu-west" in text and f"{RUN_B} @ laptop-ana" in text
    assert tab.get_by_test_id("stVegaLiteChart").count() >= 3
    # the origin filter keeps one machine's runs
    sidebar = tab.get_by_test_id("stSidebar")
    sidebar.get_by_test_id("stMultiSelect").first.click()  # Origins, above Runs
    tab.get_by_role("option", name="laptop-ana").click()
    tab.wait_for_function(IDLE, timeout=60_000)
    tab.keyboard.press("Escape")
    tab.wait_for_timeout(500)
    assert "origin=laptop-ana" in tab.url
    tab.get_by_text("Two runs are needed for a comparison.").wait_for(timeout=30_000)
    assert "ci-eu-west" not in body.inner_text()
    tab.screenshot(path=str(SHOTS / "team-origin-filter.png"))
    # a third machine pushes now: the open page shows it within the 10 s refresh
    db = team_dashboard["tmp"] / "ci-us-east" / "orbench.duckdb"
    _seed(db, RUN_C, 30, "ci-us-east")
    push(Store(db), team_dashboard["team"], None, origin="ci-us-east")
    tab.get_by_text("3 runs from 3 origins").wait_for(timeout=25_000)
    assert all(u.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:", "about:"))
               for u in tab.requested), [u for u in tab.requested if "127.0.0.1" not in u][:5]

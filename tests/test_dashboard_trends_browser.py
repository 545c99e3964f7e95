"""The Trends page in a real browser: ``/trends?monitor=watch&since=7d`` over a seeded monitor
history (scripts/seed_monitor_history.py, 400 ticks), served by `streamlit run`, opened by Debian's
chromium through Playwright. It opens on "now" (the open incident), draws the three metric
charts (Vega canvas or svg), keeps the view in the URL, and every request stays on 127.0.0.1.
The screenshot goes to /tmp/trends_page.png (and artifacts/screenshots/trends-from-url.png)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from test_dashboard_browser import CHART, SHOTS, Server, _check, _settle, browser, page  # noqa: F401 - fixtures
from test_dashboard_trends import seed_history

pytestmark = pytest.mark.browser

SCREENSHOT = Path("/tmp/trends_page.png")


@pytest.fixture(scope="module")
def trends_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("trends-browser")
    db = tmp / "orbench.duckdb"
    seed_history.seed(db, 400, per_target=20)
    server = Server(db, "http://127.0.0.1:9/api/v1", tmp / "streamlit.log")  # the page never calls the API
    try:
        server.wait_healthy()
        yield server
    finally:
        server.stop()


def test_trends_page_from_a_shared_link(trends_server: Server, page: Any) -> None:  # noqa: F811
    page.set_viewport_size({"width": 1400, "height": 2400})
    page.goto(f"{trends_server.url}/trends?monitor=watch&since=7d", wait_until="domcontentloaded")
    _settle(page, chart=True)
    page.wait_for_function(f"() => document.querySelectorAll({json.dumps(CHART)}).length >= 3", timeout=60_000)
    page.wait_for_selector('[data-testid="stDataFrame"]', timeout=60_000)
    page.wait_for_timeout(600)  # the last chart's paint
    text = page.get_by_test_id("stMainBlockContainer").inner_text()
    assert "Now" in text and "catalog" in text and "open since tick" in text
    assert page.locator('[data-testid="stVegaLiteChart"]').count() == 3
    kept = parse_qs(urlsplit(page.url).query)
    assert kept["monitor"] == ["watch"] and kept["since"] == ["7d"], kept
    _check(page, "trends-from-url")
    shutil.copyfile(SHOTS / "trends-from-url.png", SCREENSHOT)

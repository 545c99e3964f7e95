"""The Load page in a real browser: ``/load?sweep=<id>`` on a sweep made by ``orbench sweep``.

The sweep runs against a sandbox that serves 4 requests at once (80 requests per step, so the
p95s have intervals); `streamlit run` serves the database and Debian's chromium, through
Playwright, opens the shared link. Both charts must render (Vega canvas or svg), the knee line
must be the one ``orbench sweep --json`` gives, every request must stay on 127.0.0.1. The
screenshot goes to /tmp/load_page.png (and artifacts/screenshots/load-from-url.png).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from test_dashboard_browser import CHART, SHOTS, Server, _check, _settle, browser, page  # noqa: F401 - fixtures

from bench.run.sweep import summary_lines
from bench.sandbox import start_sandbox
from tests.conftest import invoke

pytestmark = pytest.mark.browser

SUITE = Path(__file__).resolve().parents[1] / "data" / "suites" / "sweep.yaml"
SCREENSHOT = Path("/tmp/load_page.png")


@pytest.fixture(scope="module")
def load_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, Any]]]:
    tmp = tmp_path_factory.mktemp("load-browser")
    db = tmp / "orbench.duckdb"
    with start_sandbox(time_scale=0.05, max_concurrent=4) as sb, pytest.MonkeyPatch.context() as mp:
        for k in list(os.environ):
            if k.startswith(("OPENROUTER_", "ORBENCH_")):
                mp.delenv(k)
        code, out, err = invoke("sweep", str(SUITE), "--json", "--base-url", sb.base_url, "--db", str(db),
                                "--concurrency", "1,2,4,8,16", "--requests-per-step", "80",
                                "--slo", "ttft_p95_ms<=150")
        assert code == 0, err
        result = json.loads(out)
        assert result["knee"], f"the sweep found no knee: {result['steps']}"
        server = Server(db, sb.base_url, tmp / "streamlit.log")
        try:
            server.wait_healthy()
            yield server, result
        finally:
            server.stop()


def test_load_page_from_a_shared_link(load_server: tuple[Server, dict[str, Any]], page: Any) -> None:  # noqa: F811
    server, result = load_server
    page.set_viewport_size({"width": 1400, "height": 2300})
    page.goto(f"{server.url}/load?sweep={result['sweep_id']}", wait_until="domcontentloaded")
    _settle(page, chart=True)
    page.wait_for_function(f"() => document.querySelectorAll({json.dumps(CHART)}).length >= 2", timeout=60_000)
    page.wait_for_selector('[data-testid="stDataFrame"]', timeout=60_000)
    page.wait_for_timeout(600)  # the second chart's last paint
    main = page.get_by_test_id("stMainBlockContainer")
    text = main.inner_text()
    assert "Simulated" in text and "simulated** sandbox" not in text  # markdown rendered, not shown raw
    for line in summary_lines(result):
        assert line in text, (line, text[:2000])
    assert "knee at concurrency" in text and "not reached" not in text
    assert page.locator('[data-testid="stVegaLiteChart"]').count() == 2
    kept = parse_qs(urlsplit(page.url).query)
    assert kept["sweep"] == [result["sweep_id"]], kept
    _check(page, "load-from-url")
    shutil.copyfile(SHOTS / "load-from-url.png", SCREENSHOT)

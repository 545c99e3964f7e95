"""The Decide page in a real browser: constraints from the URL, the table, the sentence, the chart.

`streamlit run` on a database of two sandbox runs (made through the CLI, 30 repeats so a p95
has an interval), Debian's chromium
through Playwright; every request must stay on 127.0.0.1. The screenshot goes to
artifacts/screenshots/decide-from-url.png.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from test_dashboard_browser import CHART, Server, _check, _settle, browser, page  # noqa: F401 - fixtures

from bench.sandbox import start_sandbox
from tests.conftest import invoke

pytestmark = pytest.mark.browser

SUITES = Path(__file__).resolve().parents[1] / "data" / "suites"


@pytest.fixture(scope="module")
def decide_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, list[str]]]:
    tmp = tmp_path_factory.mktemp("decide-browser")
    db = tmp / "orbench.duckdb"
    with start_sandbox(seed=4, time_scale=0.01) as sb, pytest.MonkeyPatch.context() as mp:
        for k in list(os.environ):
            if k.startswith(("OPENROUTER_", "ORBENCH_")):
                mp.delenv(k)
        runs = []
        for suite in ("arithmetic", "classification"):
            code, out, err = invoke("run", str(SUITES / f"{suite}.yaml"), "--base-url", sb.base_url,
                                    "--db", str(db), "--json", "--repeat", "30", "-c", "16")
            assert code == 0, err
            runs.append(str(json.loads(out)["run_id"]))
        server = Server(db, sb.base_url, tmp / "streamlit.log")
        try:
            server.wait_healthy()
            yield server, runs
        finally:
            server.stop()


def test_decide_page_from_a_url(decide_server: tuple[Server, list[str]], page: Any) -> None:  # noqa: F811
    server, runs = decide_server
    query = "&".join(f"run={r}" for r in runs) + "&min_pass_rate=0.8&max_ttft_p95_ms=1500&objective=cost"
    page.goto(f"{server.url}/?{query}", wait_until="domcontentloaded")
    _settle(page, chart=True)
    main = page.get_by_test_id("stMainBlockContainer")
    assert "Simulated" in main.inner_text()
    assert page.get_by_label("pass_rate at least").input_value() == "0.800"
    assert page.get_by_label("ttft_p95_ms at most").input_value() == "1500.0"
    page.wait_for_selector('[data-testid="stDataFrame"]', timeout=60_000)
    sentence = page.get_by_test_id("stAlert").filter(has_text="Recommended:").inner_text()
    assert "Recommended: " in sentence and "per 1,000 requests" in sentence, sentence
    assert page.locator(CHART).count() >= 1
    assert "### orbench decide: cost (simulated)" in page.get_by_test_id("stCode").inner_text()
    kept = parse_qs(urlsplit(page.url).query)  # the view stays in the address bar, ready to share
    assert kept["run"] == runs and kept["min_pass_rate"] == ["0.8"] and kept["objective"] == ["cost"], kept
    _check(page, "decide-from-url")

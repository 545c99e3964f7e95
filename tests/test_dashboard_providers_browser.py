"""The Providers page in a real browser: a sandbox verify's matrix and a drill-down opened from a URL.

`streamlit run` on a database holding one verify (through the CLI, on a sandbox on 127.0.0.1),
Debian's chromium through Playwright; every request must stay on 127.0.0.1. The screenshot goes to
artifacts/screenshots/providers-from-url.png.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from test_dashboard_browser import Server, _check, _settle, browser, page  # noqa: F401 - fixtures

pytestmark = pytest.mark.browser



@pytest.fixture(scope="module")
def providers_server(verified: dict[str, Any],
                     tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    """streamlit run on the session's verify database (tests/conftest.py ``verified``)."""
    server = Server(verified["db"], verified["sandbox"].base_url,
                    tmp_path_factory.mktemp("providers-browser") / "streamlit.log")
    try:
        server.wait_healthy()
        yield server, verified["run_id"]
    finally:
        server.stop()


def test_providers_page_from_a_url(providers_server: tuple[Server, str], page: Any) -> None:  # noqa: F811
    server, run_id = providers_server
    page.goto(f"{server.url}/providers?verify={run_id}&vprovider=sim-toolbreak&dimension=tool_calls",
              wait_until="domcontentloaded")
    _settle(page, chart=False)
    page.wait_for_selector('[data-testid="stDataFrame"]', timeout=60_000)
    main = page.get_by_test_id("stMainBlockContainer")
    text = main.inner_text()
    assert "Simulated" in text
    assert "4 of 5 providers deviate from the reference" in text, text[:500]
    assert "sim-toolbreak · tool_calls: deviates" in text
    assert "failing answer(s)" in text and "reference sim-faithful" in text
    kept = parse_qs(urlsplit(page.url).query)
    assert kept["verify"] == [run_id] and kept["vprovider"] == ["sim-toolbreak"] and kept["dimension"] == ["tool_calls"]
    _check(page, "providers-from-url")

"""`orbench report`: one self-contained HTML file from real sandbox runs, opened in a real browser.

Runs go through the real CLI into a DuckDB file in tmp_path, against sandboxes on
127.0.0.1 (a fast one and a slower one, so a baseline comparison has a change beyond
the noise). The suite's answers carry HTML and a `</script>` so escaping is tested on
real stored data. The browser test opens the file in Debian's chromium with every
request except the file itself aborted and recorded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from conftest import invoke
from streamlit.testing.v1 import AppTest

from bench.results import summary
from bench.sandbox import start_sandbox
from bench.store.store import Store

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
EVIL = "</script><img src=x onerror=alert(1)> <b>bold</b> & done"
SUITE = f"""
name: "report <i>test</i> & co"
models: [openai/gpt-4o-mini, google/gemini-2.5-flash]
repeats: {{repeats}}
defaults: {{{{max_tokens: 16}}}}
cases:
  - id: pass
    prompt: "Say ok. [[answer: ok]]"
    checks: [{{{{contains: ok}}}}]
  - id: fail
    prompt: "Say it. [[answer: {EVIL}]]"
    checks: [{{{{contains: "never there"}}}}]
"""


class Tags(HTMLParser):
    """Every start tag with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags(page: str) -> list[tuple[str, dict[str, str | None]]]:
    p = Tags()
    p.feed(page)
    return p.tags


def specs(page: str) -> dict[str, Any]:
    m = re.search(r"<script type='application/json' id='orbench-specs'>(.*?)</script>", page, re.S)
    assert m, "no chart specs in the page"
    return json.loads(m.group(1))


def _run(db: Path, suite: Path, base_url: str, *extra: str) -> str:
    code, _, err = invoke("run", str(suite), "--base-url", base_url, "--db", str(db), *extra)
    assert code == 0, err
    return Store(db).resolve_run("latest")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Run A on a fast sandbox, run B on one 10x slower: 2 models x 2 cases x 6 repeats each."""
    tmp = tmp_path_factory.mktemp("report")
    db, suite = tmp / "orbench.duckdb", tmp / "s.yaml"
    suite.write_text(SUITE.format(repeats=6))
    with pytest.MonkeyPatch.context() as mp:
        for k in ("OPENROUTER_API_KEY", "OPENROUTER_BASE_URL", "ORBENCH_DB"):
            mp.delenv(k, raising=False)
        with start_sandbox(seed=1, time_scale=0.02) as fast:
            run_a = _run(db, suite, fast.base_url)
        with start_sandbox(seed=1, time_scale=0.2) as slow:
            run_b = _run(db, suite, slow.base_url)
        yield {"db": db, "tmp": tmp, "a": run_a, "b": run_b}


def write_report(runs: dict[str, Any], name: str, *args: str) -> str:
    out = runs["tmp"] / name
    code, _, err = invoke("report", *args, "--db", str(runs["db"]), "-o", str(out))
    assert code == 0, err
    assert f"wrote {out}" in err
    return out.read_text(encoding="utf-8")


# ------------------------------------------------------------------- the file
def test_report_is_one_file_that_requests_nothing(runs: dict[str, Any]) -> None:
    page = write_report(runs, "a.html", runs["a"][:-3])  # a unique prefix resolves
    found = tags(page)
    for tag, attrs in found:
        for name, value in attrs.items():
            assert not (value or "").strip().lower().startswith(("http:", "https:", "//")), (tag, name, value)
        assert tag not in ("link", "img", "iframe", "object", "embed"), tag
        if tag == "script":
            assert "src" not in attrs
    csp = next(a["content"] for t, a in found if t == "meta" and a.get("http-equiv") == "Content-Security-Policy")
    assert "default-src 'none'" in csp and "connect-src 'none'" in csp
    assert len(page.encode()) < 2_000_000


def test_report_holds_metadata_summary_and_every_chart(runs: dict[str, Any]) -> None:
    page = write_report(runs, "a2.html", runs["a"])
    run = Store(runs["db"]).get_run(runs["a"])
    for value in (run.run_id, run.suite_hash, run.tool_version, run.status, "SIMULATED"):
        assert value in page, value
    assert "&quot;concurrency&quot;: 4" in page  # the settings, escaped too
    titles = [json.dumps(s) for s in specs(page).values()]
    for title in ("Time to first token", "End to end", "Decode tokens/s", "Cost per 1,000 requests",
                  "Cost vs latency", "Quality x latency x cost", "Run timeline", "Drift over the run"):
        assert sum(title in t for t in titles) == 1, title
    # the summary is bench.results.summary's: the TOTAL row's n and TTFT p50 with its interval
    total = summary.run_summary(Store(runs["db"]), runs["a"])[-1]
    from bench.results.html_report import fmt_ci

    cell = fmt_ci(total["ttft_p50_ms"], total["ttft_p50_ci_lo_ms"], total["ttft_p50_ci_hi_ms"])
    assert re.search(rf"<td>TOTAL</td><td>{total['n']}</td><td>{total['ok']}</td>.*?<td>{re.escape(cell)}</td>", page)
    assert total["n"] == 24 and "[n too small]" not in cell
    assert "Changes against baseline" not in page  # no --baseline, no section


def test_failed_answers_carry_reasons_and_every_string_is_escaped(runs: dict[str, Any]) -> None:
    page = write_report(runs, "a3.html", runs["a"])
    assert f"{runs['a']}: 12 failed" in page  # the 'fail' case, 2 models x 6 repeats
    assert "<td>contains: &#x27;never there&#x27; not found in the answer</td>" in page
    # the answer as stored (max_tokens cuts it), escaped
    assert "<td>&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt; &lt;b&gt;" in page
    assert "report &lt;i&gt;test&lt;/i&gt; &amp; co" in page  # the suite name
    assert "<img src=x" not in page and "<i>test</i>" not in page
    # only the three scripts orbench writes: the Vega bundle, the chart specs, the renderer
    assert [t for t, _ in tags(page)].count("script") == 3
    assert not [a for t, a in tags(page) if t == "img"]


def test_baseline_changes_are_marked_beyond_the_noise_as_compare_says(runs: dict[str, Any]) -> None:
    page = write_report(runs, "b.html", runs["b"], "--baseline", runs["a"])
    assert f"Changes against baseline {runs['a']}" in page
    code, out, err = invoke("compare", runs["a"], runs["b"], "--db", str(runs["db"]), "--json")
    assert code == 0, err
    verdicts = {(r["group"], r["metric"]): r["verdict"] for r in json.loads(out) if r.get("verdict")}
    rows = re.findall(r"<tr( class=\"[^\"]*\")?><td>([^<]*)</td><td>([^<]*)</td>(?:<td>[^<]*</td>){4}"
                      r"<td>([^<]*)</td></tr>", page.split("Changes against baseline")[1].split("Failed answers")[0])
    shown = {(g, m): (cls, v) for cls, g, m, v in rows if m != "error rate"}
    assert set(shown) == set(verdicts)
    for key, verdict in verdicts.items():
        cls, text = shown[key]
        assert (verdict in text) and (("beyond" in cls) == (verdict == "beyond noise")), (key, cls, text)
    # the 10x slower sandbox: TTFT is worse beyond the noise for both models
    ttft = [shown[k] for k in shown if k[1] == "TTFT ms"]
    assert len(ttft) == 2 and all(cls == ' class="beyond worse"' and text.startswith("▲") for cls, text in ttft)


def test_bad_runs_and_outputs_are_one_line_errors(runs: dict[str, Any], tmp_path: Path) -> None:
    db = str(runs["db"])
    for args, msg in ((["nope"], "no run matches 'nope'"),
                      ([runs["a"], "--baseline", "zzz"], "no run matches 'zzz'"),
                      ([runs["a"], "-o", str(tmp_path / "missing" / "r.html")], "cannot write")):
        code, _, err = invoke("report", *args, "--db", db, *([] if "-o" in args else ["-o", str(tmp_path / "r.html")]))
        assert code == 1 and msg in err and len(err.strip().splitlines()) == 1, err
    code, _, err = invoke("report", "latest", "--db", str(tmp_path / "none.duckdb"))
    assert code == 1 and "no database yet" in err
    code, _, err = invoke("report")
    assert code == 2 and "RUNS" in err


# ------------------------------------------------------------------- size
def test_a_1000_request_run_fits_in_2_mb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    db, suite = tmp_path / "big.duckdb", tmp_path / "big.yaml"
    suite.write_text(SUITE.format(repeats=250))  # 2 models x 2 cases x 250 = 1,000 requests
    with start_sandbox(time_scale=0) as sb:
        run_id = _run(db, suite, sb.base_url, "--concurrency", "16")
    out = tmp_path / "big.html"
    code, _, err = invoke("report", run_id, "--db", str(db), "-o", str(out))
    assert code == 0, err
    size = out.stat().st_size
    print(f"report of a 1,000-request run: {size:,} bytes")
    assert size <= 2_000_000
    page = out.read_text()
    timeline = next(s for s in specs(page).values() if "Run timeline" in json.dumps(s.get("title")))
    assert sum(len(v) for v in timeline["datasets"].values()) == 1000  # every request drawn
    assert "The first 100 of 500 are listed" in page


# ------------------------------------------------------------------- browser
def test_report_renders_every_chart_offline_in_chromium(runs: dict[str, Any], tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), "Debian's chromium is missing: apt-get install chromium"
    page_path = runs["tmp"] / "browser.html"
    write_report(runs, "browser.html", runs["b"], "--baseline", runs["a"])
    url = page_path.as_uri()
    left: list[str] = []
    console: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--no-first-run",
                                          "--disable-background-networking", "--disable-component-update"])
        try:
            ctx = browser.new_context(viewport={"width": 1300, "height": 1000})
            ctx.route("**/*", lambda route: route.continue_() if route.request.url == url
                      else (left.append(route.request.url), route.abort()))
            page = ctx.new_page()
            page.on("console", lambda m: console.append(m.text) if m.type in ("error", "warning") else None)
            page.goto(url)
            page.wait_for_function("() => window.orbenchCharts && "
                                   "orbenchCharts.rendered + orbenchCharts.failed === orbenchCharts.total",
                                   timeout=30_000)
            state = page.evaluate("() => window.orbenchCharts")
            drawn = page.evaluate("() => [...document.querySelectorAll('.chart')]"
                                  ".map(d => d.querySelectorAll('svg, canvas').length)")
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            browser.close()
    assert state == {"total": 8, "rendered": 8, "failed": 0}
    assert len(drawn) == 8 and all(n > 0 for n in drawn), drawn
    assert left == [] and console == [], (left, console)
    assert (tmp_path / "report.png").stat().st_size > 50_000


# ------------------------------------------------------------------- dashboard
def test_export_page_offers_the_report(runs: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    with start_sandbox(time_scale=0) as sb:
        monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
        monkeypatch.setenv("OPENROUTER_BASE_URL", sb.base_url)
        monkeypatch.setenv("ORBENCH_DB", str(runs["db"]))
        st.cache_data.clear()
        at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=60)
        at.switch_page("app_pages/export.py")
        at.run()
        assert not at.exception, [e.message for e in at.exception]
        button = next(b for b in at.get("download_button") if b.proto.label == "Report as HTML")
        assert button.proto.deferred_file_id  # built on click by html_report.build_report
        at.selectbox(key="export-baseline").select(runs["a"]).run()
        assert not at.exception
        caption = " ".join(c.value for c in at.caption)
        assert runs["b"] in caption and "changes against the baseline" in caption


def test_export_page_download_is_the_report(runs: dict[str, Any], tmp_path: Path) -> None:
    """A real `streamlit run`: clicking "Report as HTML" downloads the report of the selected run."""
    from playwright.sync_api import sync_playwright
    from test_dashboard_browser import ARGS, IDLE, Server

    with start_sandbox(time_scale=0) as sb:
        server = Server(runs["db"], sb.base_url, tmp_path / "streamlit.log")
        try:
            server.wait_healthy()
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
                try:
                    page = browser.new_page(viewport={"width": 1400, "height": 2400})
                    page.goto(server.url + "/export", wait_until="domcontentloaded")
                    button = page.get_by_role("button", name="Report as HTML")
                    button.wait_for(timeout=60_000)
                    page.wait_for_function(IDLE)
                    with page.expect_download(timeout=60_000) as dl:
                        button.click()
                    dl.value.save_as(tmp_path / "dl.html")
                    name = dl.value.suggested_filename
                finally:
                    browser.close()
        finally:
            server.stop()
    got = (tmp_path / "dl.html").read_text(encoding="utf-8")
    assert name == "orbench-report.html"
    cli = write_report(runs, "cli-latest.html", runs["b"])
    assert f"<title>orbench report: {runs['b']}</title>" in got
    assert specs(got) == specs(cli)  # the same charts over the same data

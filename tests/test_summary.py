"""The one summary (bench.results.summary): its definitions, and every view showing the same numbers.

Real DuckDB files in tmp_path; the agreement test runs the real CLI against the tests' own
OpenRouter-compatible server on 127.0.0.1 (tests/fake_openrouter.py), which answers some
requests with a 200 stream that sends its usage (cost included) and then an error event, and
one with a stream cut off before any usage: failed rows that carry tokens and money.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from bench.records import RequestRow
from bench.results import summary, summary_fields
from bench.results.filters import Filters
from bench.store.store import Store
from tests._rows import write_rows
from tests.conftest import invoke
from tests.fake_openrouter import start_fake

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "dashboard" / "app.py")
D = Decimal


def row(idx: int, **kw: Any) -> RequestRow:
    base: dict[str, Any] = dict(run_id="run-a", request_idx=idx, model="acme/alpha", provider_variant="default",
                                endpoint="openrouter", case_id="c1", repeat=0, is_warmup=False, outcome="ok")
    base.update(kw)
    return RequestRow(**base)


# ------------------------------------------------------------------- the definitions
def test_summary_matches_hand_computed_values(tmp_path: Path) -> None:
    """Moved from test_store (Store.summary is gone). Changed by the one definition: cost per
    request divides by requests sent (was: rows with a reported cost), billed − list is the
    difference of the two sums (was: over rows with both prices), providers is one string."""
    store = Store(tmp_path / "s.duckdb")
    store.init()
    store.create_run("run-a")
    rows = [
        row(0, is_warmup=True, repeat=-1, ttft_ms=9999.0, cost_usd=D("1")),  # never counted
        row(1, ttft_ms=100.0, tpot_ms=10.0, decode_tps=100.0, e2e_ms=1000.0, provider="B",
            prompt_tokens=10, completion_tokens=20, cost_usd=D("0.001"), list_cost_usd=D("0.0008")),
        row(2, ttft_ms=200.0, tpot_ms=20.0, decode_tps=50.0, e2e_ms=2000.0, provider="A",
            prompt_tokens=10, completion_tokens=30, cost_usd=D("0.002"), list_cost_usd=D("0.002")),
        row(3, ttft_ms=300.0, tpot_ms=30.0, decode_tps=40.0, e2e_ms=3000.0, provider="A",
            prompt_tokens=10, completion_tokens=40, cost_usd=D("0.003")),
        row(4, ttft_ms=400.0, tpot_ms=40.0, decode_tps=20.0, e2e_ms=4000.0, provider="A",
            prompt_tokens=10, completion_tokens=50, cost_usd=D("0.004"), list_cost_usd=D("0.005")),
        row(5, outcome="rate_limited", ttft_ms=1.0),  # latency of failures is ignored
        row(6, outcome="provider_error", prompt_tokens=10, completion_tokens=5, cost_usd=D("0.0005")),
        row(7, outcome="not_run"),
        row(8, model="acme/beta", ttft_ms=50.0),
    ]  # fmt: skip
    write_rows(store, rows)
    groups = summary.run_summary(store, "run-a")
    assert [g["model"] for g in groups] == ["acme/alpha", "acme/beta", "TOTAL"]
    s = groups[0]
    assert (s["n"], s["ok"], s["n"] - s["ok"], s["rate_limited"], s["not_sent"]) == (6, 4, 2, 1, 1)
    assert s["planned"] == 7
    assert s["error_rate"] == pytest.approx(2 / 6)
    assert s["rate_limited_rate"] == pytest.approx(1 / 6)
    # linear interpolation over 100, 200, 300, 400: position (n-1) * q
    assert s["ttft_p50_ms"] == pytest.approx(250.0)
    assert s["ttft_p90_ms"] == pytest.approx(370.0)
    assert s["ttft_p95_ms"] == pytest.approx(385.0)
    assert s["ttft_p99_ms"] == pytest.approx(397.0)
    assert s["tpot_p50_ms"] == pytest.approx(25.0)
    assert s["decode_tps_p50"] == pytest.approx(45.0)
    assert (s["e2e_p50_ms"], s["e2e_p95_ms"]) == (pytest.approx(2500.0), pytest.approx(3850.0))
    # tokens billed: every row with tokens (the failed one too); tokens for speed: ok rows
    assert (s["prompt_tokens"], s["completion_tokens"]) == (50, 145)
    assert (s["ok_prompt_tokens"], s["ok_completion_tokens"]) == (40, 140)
    assert s["cost_usd"] == D("0.0105") and s["n_billed"] == 5
    assert s["cost_per_request_usd"] == D("0.0105") / 6
    assert s["cost_per_1k_requests_usd"] == D("0.0105") * 1000 / 6
    assert s["list_cost_usd"] == D("0.0078")
    assert s["billed_minus_list_usd"] == D("0.0027")
    assert s["providers"] == "A,B"
    warmup = store.query("SELECT warmup_cost_usd FROM runs_summary WHERE run_id = 'run-a'").item()
    assert warmup == D("1")  # the warm-up's money is on the run, not in the summary
    beta = groups[1]
    assert (beta["n"], beta["ttft_p99_ms"], beta["providers"]) == (1, 50.0, "")
    total = groups[2]
    assert (total["n"], total["ok"], total["cost_usd"], total["prompt_tokens"]) == (7, 5, D("0.0105"), 50)


def test_missing_is_none_never_zero(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.duckdb")
    store.init()
    write_rows(store, [row(0, outcome="budget_skipped"), row(1, outcome="timeout")])
    (g, _) = summary.run_summary(store, "run-a")
    assert (g["n"], g["ok"], g["not_sent"]) == (1, 0, 1)
    assert g["cost_usd"] is None and g["cost_per_request_usd"] is None and g["prompt_tokens"] is None
    assert g["ttft_p50_ms"] is None and g["error_rate"] == 1.0 and g["pass_rate"] is None


def test_summarize_frame_runs_the_same_sql(tmp_path: Path) -> None:
    """``decide`` summarizes rows in memory; it gets the store's numbers for the same rows."""
    store = Store(tmp_path / "s.duckdb")
    store.init()
    write_rows(store, [row(i, ttft_ms=10.0 * i, e2e_ms=100.0 * i, prompt_tokens=i, cost_usd=D("0.001") * i,
                           outcome="ok" if i % 3 else "provider_error") for i in range(1, 10)])
    from_store = [g for g in summary.run_summary(store, "run-a") if g["group"] != "TOTAL"]
    from_frame = summary.summarize_frame(store.requests_frame("run-a"))
    assert len(from_frame) == len(from_store) == 1
    for key, value in from_frame[0].items():
        assert from_store[0][key] == value, key


# ------------------------------------------------------------------- the field table
def test_every_summary_key_is_a_field_of_the_table_and_of_summary_row(tmp_path: Path) -> None:
    """``derive`` (both groupings, intervals included) makes exactly the table's fields; the
    TypedDict and the empty frame's schema are the same table."""
    store = Store(tmp_path / "s.duckdb")
    store.init()
    write_rows(store, [row(i, ttft_ms=10.0 * i, e2e_ms=100.0 * i, tpot_ms=1.0 * i, decode_tps=5.0 * i,
                           passed=i % 2 == 0, outcome="ok" if i % 4 else "provider_error") for i in range(1, 30)])
    metrics = [col for col, _, _ in summary_fields.SUMMARY_METRICS]
    by_target = summary.summarize(store, Filters(("run-a",)), by="target", total=True, cis=metrics,
                                  min_rows=summary.EXACT_ONLY)
    by_provider = summary.summarize(store, Filters(("run-a",)), by="provider", cis=metrics,
                                    min_rows=summary.EXACT_ONLY)
    fields = {f.name: f for f in summary_fields.FIELDS}
    for rows, other in ((by_target, "provider"), (by_provider, "target")):
        for r in rows:
            assert set(r) == {name for name, f in fields.items() if f.keys != other}
    assert set(summary_fields.SummaryRow.__annotations__) == set(fields)
    assert list(summary_fields.SummaryRow.__annotations__) == list(fields)  # same order as the table
    assert summary.frame([]).schema == pl.Schema(summary_fields.empty_schema())
    assert "ttft_p95_ms" in fields and fields["ttft_p95_ms"].unit == "ms"


def test_mypy_refuses_a_misspelled_summary_key(tmp_path: Path) -> None:
    """``SummaryRow`` makes a typo in a summary key a type error, not a KeyError at run time."""
    planted = tmp_path / "planted_summary_key.py"
    planted.write_text("from bench.results.summary import run_summary\n"
                       "from bench.store.store import Store\n\n\n"
                       "def p95(store: Store) -> float | None:\n"
                       "    good = run_summary(store, 'r')[0]['ttft_p95_ms']\n"
                       "    return good or run_summary(store, 'r')[0]['ttft_p95_mss']\n")
    res = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
                          str(planted)], cwd=ROOT, capture_output=True, text=True)
    errors = [line for line in res.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 1, res.stdout + res.stderr
    assert 'TypedDict "SummaryRow" has no key "ttft_p95_mss"' in errors[0] and ":7:" in errors[0]


# ------------------------------------------------------------------- one database, every view
@pytest.fixture(scope="module")
def failed_with_usage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A CLI run where acme/flaky has two billed provider errors (usage, then an error event)
    and one truncated stream (tokens estimated, no cost), beside a clean acme/alpha."""
    tmp = tmp_path_factory.mktemp("agree")
    db, suite = tmp / "orbench.duckdb", tmp / "s.yaml"
    suite.write_text("name: agree\nmodels: [acme/alpha, acme/flaky]\nrepeats: 4\ndefaults: {max_tokens: 8}\n"
                     "cases:\n  - id: a\n    prompt: hello there\n  - id: b\n    prompt: second case\n")
    server = start_fake(ttft_s=0.01, token_gap_s=0.001,
                        behaviours={"acme/flaky": ["ok", "ok", "usage_error", "ok", "truncate", "ok"]})
    try:
        with pytest.MonkeyPatch.context() as mp:
            for k in ("OPENROUTER_BASE_URL", "ORBENCH_DB"):
                mp.delenv(k, raising=False)
            mp.setenv("OPENROUTER_API_KEY", "sk-or-v1-test")
            code, out, err = invoke("run", str(suite), "--base-url", server.base_url, "--db", str(db), "--json")
        assert code == 0, err
        yield {"db": db, "run_id": json.loads(out)["run_id"], "tmp": tmp}
    finally:
        server.shutdown()


def test_show_export_and_the_results_page_agree(failed_with_usage: dict[str, Any],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    db, run_id = failed_with_usage["db"], failed_with_usage["run_id"]
    con = duckdb.connect(str(db), read_only=True)
    try:
        truth = {m: (n, ok, p, c, cost) for m, n, ok, p, c, cost in con.sql(
            "SELECT model, count(*) FILTER (WHERE outcome <> 'budget_skipped'), "
            "count(*) FILTER (WHERE outcome = 'ok'), "
            "sum(prompt_tokens), sum(completion_tokens), sum(cost_usd) FROM requests "
            "WHERE NOT is_warmup GROUP BY model").fetchall()}
        failed = con.sql("SELECT outcome, token_source, cost_usd IS NOT NULL FROM requests "
                         "WHERE model = 'acme/flaky' AND outcome <> 'ok' ORDER BY outcome").fetchall()
    finally:
        con.close()
    # the seeded database has what the test is about: failed rows carrying tokens, two of them billed
    assert failed == [("provider_error", "usage", True), ("provider_error", "usage", True),
                      ("truncated", "estimate", False)]

    code, out, err = invoke("show", run_id, "--db", str(db), "--json")
    assert code == 0, err
    shown = {g["model"]: g for g in json.loads(out) if g["group"] != "TOTAL"}
    code, out, err = invoke("export", run_id, "--db", str(db), "--summary", "--format", "json")
    assert code == 0, err
    exported = {g["model"]: g for g in json.loads(out) if g["group"] != "TOTAL"}

    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    monkeypatch.setenv("OPENROUTER_BASE_URL", "http://127.0.0.1:9/api/v1")  # never contacted here
    monkeypatch.setenv("ORBENCH_DB", str(db))
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("app_pages/results.py").run()
    assert not at.exception, [e.message for e in at.exception]
    page = next(d.value for d in at.dataframe if "USD / request" in d.value.columns)
    on_page = {r["group"].split(" · ")[0]: r for r in page.to_dict("records")}
    metrics = {m.label: m.value for m in at.metric}
    st.cache_data.clear()

    assert set(shown) == set(exported) == set(on_page) == set(truth) == {"acme/alpha", "acme/flaky"}
    for model, (n, ok, prompt, completion, cost) in truth.items():
        cli, csv, web = shown[model], exported[model], on_page[model]
        assert (cli["n"], cli["ok"]) == (csv["n"], csv["ok"]) == (web["n"], web["ok"]) == (n, ok), model
        assert (cli["prompt_tokens"], cli["completion_tokens"]) == (prompt, completion), model
        assert (csv["prompt_tokens"], csv["completion_tokens"]) == (prompt, completion), model
        assert (web["prompt tokens"], web["completion tokens"]) == (prompt, completion), model
        assert D(cli["cost_usd"]) == D(csv["cost_usd"]) == cost, model
        assert web["billed USD"] == pytest.approx(float(cost)), model
        per_request = cost / n
        assert D(cli["cost_per_request_usd"]) == D(csv["cost_per_request_usd"]) == per_request, model
        assert web["USD / request"] == pytest.approx(float(per_request)), model
    flaky = shown["acme/flaky"]
    assert (flaky["n"], flaky["ok"]) == (8, 5)
    assert flaky["prompt_tokens"] > flaky["ok_prompt_tokens"]  # the failed rows' tokens are billed
    assert flaky["completion_tokens"] > flaky["ok_completion_tokens"]
    assert metrics["Requests sent (excl. warm-up)"] == f"{sum(t[0] for t in truth.values()):,}"


def test_a_stopped_runs_unsent_requests_count_the_same_from_rows_and_aggregates(tmp_path: Path) -> None:
    """``planned``/``not_sent`` include requests the run never recorded (requests_current's plan rows),
    warm-ups left out, whether the numbers come from the rows or from the per-run aggregates."""
    store = Store(tmp_path / "s.duckdb")
    store.init()
    plan = [{"request_idx": i, "model": "acme/alpha", "provider_variant": "default", "endpoint": "openrouter",
             "case_id": "c1", "repeat": i - 1, "is_warmup": i == 0} for i in range(6)]
    store.create_run("run-a", plan=plan, status="running")
    write_rows(store, [row(1, ttft_ms=10.0, cost_usd=D("0.01")), row(2, outcome="timeout")])
    store.update_run("run-a", status="stopped", status_reason="test")
    f = summary.Filters(("run-a",))
    exact = summary.summarize(store, f, min_rows=summary.EXACT_ONLY)
    sketched = summary.summarize(store, f, min_rows=0)
    assert [r["sketched"] for r in exact + sketched] == [False, True]
    for r in (exact[0], sketched[0]):
        assert (r["planned"], r["n"], r["ok"], r["not_sent"]) == (5, 2, 1, 3)
        assert r["cost_per_request_usd"] == D("0.005")

"""Dashboard pages under streamlit.testing's AppTest, against seeded DuckDB files in tmp_path.

The database is seeded through ``bench.store.Store`` with ``RequestRow`` objects
(known latencies, errors, costs and one suspicious output text); the app reads
it through ``ORBENCH_DB`` and talks to a real sandbox on 127.0.0.1 through
``OPENROUTER_BASE_URL``. Charts are checked through the datasets Streamlit
ships to the browser, not through our own functions.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from bench.api.catalog import parse_models
from bench.records import RequestRow
from bench.results import analytics, stats, summary
from bench.sandbox import start_sandbox
from bench.store.store import Store
from tests._rows import write_rows
from tests.conftest import invoke

Seeded = tuple[Path, dict[str, Any]]
APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")
MODELS = ["openai/gpt-4o-mini", "google/gemini-2.5-flash"]
VARIANTS = {"default": "OpenAI (simulated)", "fast": "Groq (simulated)"}
CASES = ["hello", "capital", "json"]
REPEATS = 10
HTML_TEXT = "**not bold** <b>not html</b> <script>alert(1)</script>"


# ------------------------------------------------------------------- seeding
def _ttft(run: int, m: int, v: int, i: int) -> float:
    base = 300.0 + 150 * m + 60 * v + 7 * (i % 13)
    if run == 1 and m == 1 and v == 1:
        base *= 1.5  # run B: gemini on the fast variant got much slower
    return base


def seed_results_db(path: Path, runs: int = 2) -> dict[str, Any]:
    """Two finished runs of 2 models x 2 variants x 3 cases x 10 repeats (+ warm-ups).

    In every group request 3 is rate-limited and request 7 a provider error; run B's
    gemini/fast TTFT is 50 % higher. Returns the expected figures.
    """
    store = Store(path, write_timeout_s=10, read_timeout_s=2)
    store.init()
    start = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    expected: dict[str, Any] = {"run_ids": [], "ttft": {}}
    for r in range(runs):
        run_id = f"run-{'ab'[r]}"
        expected["run_ids"].append(run_id)
        store.create_run(run_id, name=f"seeded {'AB'[r]}", suite_name="seeded", status="finished",
                         started_at=start + timedelta(hours=r), simulated=True,
                         settings={"concurrency": 4})
        rows: list[RequestRow] = []
        idx = 0
        for m, model in enumerate(MODELS):
            for v, (variant, served) in enumerate(VARIANTS.items()):
                rows.append(RequestRow(run_id, idx, model, variant, "openrouter", CASES[0], -1, True,
                                       outcome="ok", provider=served, ttft_ms=5000.0, e2e_ms=6000.0,
                                       t_start_ms=0.0, done_ms=6000.0, cost_usd=Decimal("0.001")))
                idx += 1
        for i in range(REPEATS * len(CASES)):
            for m, model in enumerate(MODELS):
                for v, (variant, served) in enumerate(VARIANTS.items()):
                    case = CASES[i % len(CASES)]
                    outcome = "rate_limited" if i == 3 else "provider_error" if i == 7 else "ok"
                    ok = outcome == "ok"
                    ttft = _ttft(r, m, v, i)
                    e2e = ttft + 800 + 10 * i
                    if ok:
                        expected["ttft"].setdefault((run_id, model, variant), []).append(ttft)
                    rows.append(RequestRow(
                        run_id, idx, model, variant, "openrouter", case, i // len(CASES), False,
                        outcome=outcome, served_model=model, provider=served,
                        http_status=200 if ok else 429 if i == 3 else 502, attempts=1,
                        started_at=(start + timedelta(seconds=i)).isoformat(), t_start_ms=250.0 * i + 10 * m,
                        ttft_ms=ttft if ok else None, e2e_ms=e2e if ok else None,
                        done_ms=e2e + 5 if ok else 30.0, decode_tps=90.0 - 10 * m + v if ok else None,
                        tpot_ms=11.0 if ok else None, prompt_tokens=20 if ok else None,
                        completion_tokens=60 if ok else None, token_source="usage" if ok else None,
                        cost_usd=Decimal("0.00002") * (m + 1) if ok else None,
                        list_cost_usd=Decimal("0.000021") * (m + 1) if ok else None,
                        cost_source="reported" if ok else None,
                        output_text=(HTML_TEXT if i == 0 else f"answer {i}") if ok else None,
                        error=None if ok else f"HTTP {429 if i == 3 else 502}: simulated",
                        passed=(i % 2 == 0) if ok and case == "json" else None,
                        check_detail=json.dumps([{"kind": "json_valid", "passed": i % 2 == 0,
                                                  "score": float(i % 2 == 0), "weight": 1.0,
                                                  "reason": None if i % 2 == 0 else f"not JSON (answer {i})"}])
                        if ok and case == "json" else None,
                    ))
                    idx += 1
        write_rows(store, rows)
    catalog = parse_models({"data": [
        {"id": m, "name": m, "pricing": {"prompt": "0.00000015", "completion": "0.0000006"}}
        for m in MODELS]})
    store.save_catalog_snapshot(catalog, "http://127.0.0.1/api/v1", simulated=True)
    store.close()
    return expected


# ------------------------------------------------------------------- fixtures and helpers
@pytest.fixture(scope="module")
def sandbox() -> Iterator[Any]:
    with start_sandbox(seed=1, time_scale=0.1) as sb:
        yield sb


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    path = tmp_path_factory.mktemp("seeded") / "orbench.duckdb"
    return path, seed_results_db(path)


@pytest.fixture(autouse=True)
def app_env(monkeypatch: pytest.MonkeyPatch, sandbox: Any) -> Iterator[None]:
    """No key (so: simulated), the test sandbox as the API, fresh caches."""
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    monkeypatch.setenv("OPENROUTER_BASE_URL", sandbox.base_url)
    monkeypatch.setenv("ORBENCH_DEMO_LOCAL", "0")  # the real-model demo is tested under -m local
    st.cache_data.clear()
    yield
    st.cache_data.clear()


def open_page(db: Path, monkeypatch: pytest.MonkeyPatch, page: str | None = "results") -> AppTest:
    """Run the app on ``page`` (Results by default; None: the default page, Decide); every page
    must say it is simulated."""
    monkeypatch.setenv("ORBENCH_DB", str(db))
    at = AppTest.from_file(APP, default_timeout=60)
    if page:
        at.switch_page(f"app_pages/{page}.py")
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert any("Simulated" in w for w in texts(at, "warning")), f"{page}: no simulated banner"
    return at


@pytest.fixture(scope="module")
def results_page(seeded: tuple[Path, dict[str, Any]], sandbox: Any) -> Iterator[AppTest]:
    """The Results page as first opened, shared by the tests that only read it."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("OPENROUTER_API_KEY", raising=False)
        mp.setenv("OPENROUTER_BASE_URL", sandbox.base_url)
        st.cache_data.clear()
        yield open_page(seeded[0], mp)


def _title(spec: Any) -> str | None:
    if isinstance(spec, dict):
        t = spec.get("title")
        if isinstance(t, str):
            return t
        for key in ("hconcat", "vconcat", "layer"):
            for sub in spec.get(key, []):
                found = _title(sub)
                if found:
                    return found
    return None


def charts(at: AppTest) -> dict[str, list[pl.DataFrame]]:
    """Chart title -> the datasets Streamlit sends to the browser for that chart."""
    out: dict[str, list[pl.DataFrame]] = {}
    for el in at.get("vega_lite_chart"):
        spec = json.loads(el.proto.spec)
        frames = [pl.from_arrow(pa.ipc.open_stream(d.data.data).read_all()) for d in el.proto.datasets]
        out[_title(spec) or "?"] = frames  # type: ignore[assignment]  # from_arrow(Table) is a DataFrame
    return out


def chart(at: AppTest, prefix: str) -> list[pl.DataFrame]:
    found = [v for k, v in charts(at).items() if k.startswith(prefix)]
    assert found, f"no chart titled {prefix!r}; have {list(charts(at))}"
    return found[0]


def frame_with(frames: list[pl.DataFrame], column: str) -> pl.DataFrame:
    return next(f for f in frames if column in f.columns)


def table(at: AppTest, column: str) -> Any:
    """The first st.dataframe (as pandas) that has ``column``."""
    for df in at.dataframe:
        if column in df.value.columns:
            return df.value
    raise AssertionError(f"no table with a {column!r} column")


def texts(at: AppTest, kind: str) -> list[str]:
    return [str(e.value) for e in getattr(at, kind)]


# ------------------------------------------------------------------- Results
def test_results_box_plots_carry_n_and_exact_medians(results_page: AppTest, seeded: Seeded) -> None:
    _, expected = seeded
    at = results_page
    box = frame_with(chart(at, "Time to first token"), "median")
    assert box.height == len(MODELS) * len(VARIANTS)
    for row in box.iter_rows(named=True):
        values = expected["ttft"][("run-b", row["model"], row["provider"])]
        assert row["n"] == len(values) == REPEATS * len(CASES) - 2
        assert row["median"] == pytest.approx(stats.percentile(values, 50))
    rates = frame_with(chart(at, "Time to first token"), "rate")
    assert set(rates["kind"]) == {"errors (all)", "429 rate-limited"}
    err = rates.filter(pl.col("kind") == "errors (all)")["rate"]
    assert err.to_list() == pytest.approx([2 / 30] * 4)


def test_results_model_filter_narrows_every_chart(seeded: tuple[Path, dict[str, Any]],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    db, _ = seeded
    at = open_page(db, monkeypatch)
    at.multiselect(key="results-models").select(MODELS[0]).run()
    assert not at.exception
    for title in ("Time to first token", "End to end", "Cost per 1,000"):
        frames = chart(at, title)
        models = set(pl.concat([f.select("group") for f in frames if "group" in f.columns])["group"])
        assert models and all(g.startswith(MODELS[0]) for g in models), (title, models)


def test_results_served_provider_switch_regroups(seeded: tuple[Path, dict[str, Any]],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    db, _ = seeded
    at = open_page(db, monkeypatch)
    at.radio(key="results-provider-by").set_value("served").run()
    box = frame_with(chart(at, "Time to first token"), "median")
    assert set(box["provider"]) == set(VARIANTS.values())


def test_results_percentile_table_shows_intervals_and_small_n(results_page: AppTest, seeded: Seeded) -> None:
    _, expected = seeded
    pct = table(results_page, "p50 95% CI")
    row = pct[pct["group"] == f"{MODELS[0]} · default"].iloc[0]
    ci = stats.percentile_ci(expected["ttft"][("run-b", MODELS[0], "default")], 50)
    assert row["p50 95% CI"] == f"{ci.lo:,.1f} – {ci.hi:,.1f}"
    assert row["p99 95% CI"] == "n too small"  # 28 values cannot bound p99


def test_results_timeline_packs_one_run_into_slots(results_page: AppTest, seeded: Seeded) -> None:
    at = results_page
    tl = frame_with(chart(at, "Run timeline"), "slot")
    assert tl.height == REPEATS * len(CASES) * len(MODELS) * len(VARIANTS)
    assert (tl["t_end_ms"] >= tl["t_start_ms"]).all()
    assert set(tl["outcome"]) == {"ok", "rate_limited", "provider_error"}
    drift = frame_with(chart(at, "Drift over the run"), "median_ms")
    assert set(drift["metric"]) == {"TTFT", "end-to-end"}


def test_results_output_text_is_plain_text(results_page: AppTest, seeded: Seeded) -> None:
    at = results_page
    assert HTML_TEXT in texts(at, "text")
    assert not any("not bold" in m for m in texts(at, "markdown"))


# ------------------------------------------------------------------- Compare
def test_compare_marks_frontier_and_beyond_noise_change(seeded: tuple[Path, dict[str, Any]],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    db, _ = seeded
    at = open_page(db, monkeypatch, "compare")
    pts = max((f for f in chart(at, "Cost vs latency") if "on_frontier" in f.columns), key=len)
    assert pts.height == 4 and pts["on_frontier"].any()
    fastest_cheapest = pts.sort(["p50_ms", "cost_per_request_usd"]).row(0, named=True)
    assert fastest_cheapest["on_frontier"]
    diff = table(at, "verdict")
    slow = diff[(diff["group"] == f"{MODELS[1]} · fast") & (diff["metric"] == "TTFT ms")].iloc[0]
    assert slow["verdict"] == "beyond noise" and slow["change_pct"] > 30
    same = diff[(diff["group"] == f"{MODELS[0]} · default") & (diff["metric"] == "TTFT ms")].iloc[0]
    assert same["verdict"] == "within noise"


def test_quality_page_pass_rates_frontier_and_failed_answers(seeded: tuple[Path, dict[str, Any]],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    db, _ = seeded
    at = open_page(db, monkeypatch, "quality")
    pts = max((f for f in chart(at, "Quality x latency x cost") if "on_frontier" in f.columns), key=len)
    assert pts.height == 4 and pts["on_frontier"].any()
    # json cases are i = 2, 5, 8, ... (i % 3 == 2); ok unless i is 3 or 7; passed when i is even
    ok_json = [i for i in range(REPEATS * len(CASES)) if i % 3 == 2 and i not in (3, 7)]
    expected = sum(1 for i in ok_json if i % 2 == 0) / len(ok_json)
    assert all(abs(r - expected) < 1e-9 for r in pts["pass_rate"].to_list())
    q = table(at, "cost_per_correct_usd")
    assert (q["pass_rate_ci_lo"] < q["pass_rate"]).all() and (q["pass_rate"] < q["pass_rate_ci_hi"]).all()
    texts = [t.value for t in at.text]
    assert any("not JSON (answer 5)" in t for t in texts)  # reasons of failed answers, as plain text
    assert at.selectbox(key="q-case").value == "json"


def test_compare_measured_next_to_advertised(seeded: tuple[Path, dict[str, Any]],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    db, _ = seeded
    at = open_page(db, monkeypatch, "compare")
    at.selectbox(key="cmp-adv-model").select(MODELS[0]).run()
    adv = frame_with(chart(at, f"{MODELS[0]}: measured vs advertised"), "source")
    assert set(adv["source"]) == {"measured TTFT p50", "advertised p50 (last 30 min)"}
    measured = adv.filter(pl.col("source") == "measured TTFT p50")
    assert set(measured["provider"]) == set(VARIANTS.values())


# ------------------------------------------------------------------- Catalog
def test_catalog_search_filters_the_live_list(seeded: tuple[Path, dict[str, Any]],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    db, _ = seeded
    at = open_page(db, monkeypatch, "catalog")
    everything = table(at, "prompt_usd_per_m")
    at.text_input(key="cat-search").input("gpt-4o").run()
    some = table(at, "prompt_usd_per_m")
    assert 0 < len(some) < len(everything)
    assert all("gpt-4o" in i for i in some["id"])
    at.multiselect(key="cat-params").select("tools").run()
    assert table(at, "prompt_usd_per_m")["tools"].all()


def test_catalog_page_and_orbench_models_filter_by_one_rule(seeded: tuple[Path, dict[str, Any]], sandbox: Any,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """``bench.catalog.filter_models`` serves both: the same filters pick the same models."""
    db, _ = seeded
    at = open_page(db, monkeypatch, "catalog")
    at.multiselect(key="cat-modalities").select("image").run()
    at.number_input(key="cat-price").set_value(0.5).run()
    at.number_input(key="cat-context").set_value(131072).run()
    on_page = set(table(at, "prompt_usd_per_m")["id"])
    code, out, err = invoke("models", "--base-url", sandbox.base_url, "--json", "--modality", "image",
                            "--max-price", "0.5", "--min-context", "131072")
    assert code == 0, err
    from_cli = {m["id"] for m in json.loads(out)}
    assert on_page == from_cli and 0 < len(from_cli) < 20


def test_catalog_modality_rule_reads_inputs_and_outputs() -> None:
    from bench.api.catalog import filter_models

    def model(mid: str, inputs: list[str], outputs: list[str], prompt: str = "0.0000001") -> Any:
        return parse_models({"data": [{"id": mid, "name": mid, "context_length": 8192,
                                       "architecture": {"input_modalities": inputs, "output_modalities": outputs},
                                       "pricing": {"prompt": prompt, "completion": "0"}}]})[0]

    models = [model("a/vision", ["text", "image"], ["text"]), model("a/painter", ["text"], ["image"]),
              model("a/text", ["text"], ["text"]), model("a/router", ["text", "image"], ["text"], "-1")]
    ids = [m.id for m in filter_models(models, modalities=["image"])]
    assert ids == ["a/vision", "a/painter", "a/router"]
    assert [m.id for m in filter_models(models, modalities=["image", "text"], max_prompt_usd_per_m=Decimal(1))] \
        == ["a/vision", "a/painter"]  # a variable (router) price never passes a ceiling


def test_catalog_providers_history_and_calculator(seeded: tuple[Path, dict[str, Any]],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    db, _ = seeded
    at = open_page(db, monkeypatch, "catalog")
    at.selectbox(key="cat-model").select(MODELS[0]).run()
    eps = table(at, "quantization")
    assert len(eps) >= 1 and eps["latency_p50_ms"].notna().all()
    hist = frame_with(chart(at, f"{MODELS[0]}: list price history"), "usd_per_m")
    assert sorted(hist["usd_per_m"].to_list()) == pytest.approx([0.15, 0.6])
    at.multiselect(key="calc-models").set_value([MODELS[0]]).run()
    at.number_input(key="calc-per-day").set_value(1000).run()
    monthly = table(at, "monthly_usd")
    # 1000 prompt x 0.15/M + 300 completion x 0.6/M = 0.00033 USD; x 1000 x 30
    assert monthly["monthly_usd"].tolist() == pytest.approx([0.00033 * 1000 * 30], rel=0.05)


# ------------------------------------------------------------------- Credits
def test_credits_shows_key_limit_and_credit_message(seeded: tuple[Path, dict[str, Any]],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    db, _ = seeded
    at = open_page(db, monkeypatch, "credits")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Key limit"] == "$10.00"
    assert any("HTTP 403" in i for i in texts(at, "info"))  # /credits needs a management key
    spend = frame_with(chart(at, "Spend per run"), "usd")
    assert set(spend["key"]) == {"run-a", "run-b"}
    at.number_input(key="credits-planned").set_value(50.0).run()
    assert any("more than" in w for w in texts(at, "warning"))


def test_key_from_secrets_is_used_and_never_shown(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a key in st.secrets the app is not "simulated", and the key appears nowhere on the page."""
    key = "sk-or-v1-" + "k3y" * 12
    monkeypatch.setenv("ORBENCH_DB", str(seeded[0]))
    # the test sandbox is not openrouter.ai: the OpenRouter key goes there only when named
    monkeypatch.setenv("ORBENCH_BASE_URL_KEY_ENV", "OPENROUTER_API_KEY")
    at = AppTest.from_file(APP, default_timeout=60)
    at.secrets["OPENROUTER_API_KEY"] = key
    at.switch_page("app_pages/credits.py").run()
    assert not at.exception
    assert not any("Simulated" in w for w in texts(at, "warning"))
    assert {m.label: m.value for m in at.metric}["Key limit"] == "$10.00"  # /key answered with it
    assert at.title[0].value == "Credits"
    shown = repr(at.main) + repr(at.sidebar) + " ".join(
        str(e.value) for kind in ("markdown", "text", "info", "warning", "error", "caption", "metric")
        for e in getattr(at, kind))
    assert "k3yk3y" not in shown


# ------------------------------------------------------------------- Run
def test_run_estimate_shows_plan_and_bad_budget_is_a_message(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_page(tmp_path / "run.duckdb", monkeypatch, "run")
    at.button(key="run-estimate").click().run()
    assert any("Worst case" in i for i in texts(at, "info")), texts(at, "info")
    at.text_input(key="run-provider-json").input("{not json").run()
    at.button(key="run-estimate").click().run()
    assert any("not valid JSON" in e for e in texts(at, "error")), texts(at, "error")
    at.text_input(key="run-budget").input("ten dollars").run()
    assert any("not a number of USD" in e for e in texts(at, "error"))
    assert not at.exception


def test_run_starts_in_background_and_lands_in_results(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "run.duckdb"
    at = open_page(db, monkeypatch, "run")
    at.number_input(key="run-repeats").set_value(1).run()
    at.button(key="run-start").click().run()
    from dashboard import jobs

    job = jobs.registry().jobs()[0]  # the server's registry, not the session, holds the job
    state = job.wait(60)
    assert state.phase == "finished", state
    at.run()
    assert any("finished" in s for s in texts(at, "success"))
    assert {m.label: m.value for m in at.metric}["Done"] == str(state.total)
    at.switch_page("app_pages/results.py").run()
    assert not at.exception
    box = frame_with(chart(at, "Time to first token"), "median")
    assert box.height == 3 and box["n"].sum() == 6  # smoke: 3 models x 2 cases x 1 repeat


# ------------------------------------------------------------------- Export
def test_export_offers_rows_summary_and_images(seeded: tuple[Path, dict[str, Any]],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    db, _ = seeded
    at = open_page(db, monkeypatch, "export")
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels == ["Rows as CSV", "Rows as Parquet", "Summary as CSV", "Summary as Parquet", "PNG", "SVG",
                      "Report as HTML"]
    assert "120 rows match" in " ".join(texts(at, "markdown"))
    at.selectbox(key="export-chart").select("Cost per 1,000 requests").run()
    assert not at.exception
    assert chart(at, "Cost per 1,000 requests")


# ------------------------------------------------------------------- empty, missing, locked
def test_missing_db_offers_demo_that_fills_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "nothing-here" / "orbench.duckdb"
    at = open_page(db, monkeypatch)
    assert any("no database file yet" in i for i in texts(at, "info"))
    assert not at.get("vega_lite_chart")
    at.button(key="demo-run").click().run(timeout=120)
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, texts(at, "error")
    # the demo lands on Decide with a minimum pass rate set: verdicts, not "no constraints given"
    assert at.title[0].value == "Decide"
    assert {n.label: n.value for n in at.number_input}["pass_rate at least"] == 0.8
    table = at.dataframe[0].value
    assert table.shape[0] == 3 and set(map(str, table["verdict"])) <= {"meets", "uncertain", "fails"}
    assert any("per correct answer" in s for s in texts(at, "success"))
    assert Store(db).list_runs()["simulated"].to_list() == [True]
    rows = Store(db).requests_frame(Store(db).list_runs()["run_id"][0]).filter(~pl.col("is_warmup"))
    assert rows.group_by("model").len()["len"].to_list() == [40, 40, 40]


def test_locked_db_is_a_warning_with_retry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "locked.duckdb"
    seed_results_db(db, runs=1)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); print('locked', flush=True); "
         "time.sleep(60)", str(db)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        at = open_page(db, monkeypatch)
        assert any("database is busy" in w for w in texts(at, "warning"))
        assert at.button(key="store-busy-retry")
    finally:
        holder.kill()
        holder.wait()
    at.button(key="store-busy-retry").click().run()
    assert not at.exception
    assert chart(at, "Time to first token")


WRITER = """
import sys, time
from bench.records import RequestRow
from bench.store.store import Store
from tests._rows import write_rows
store = Store(sys.argv[1], write_timeout_s=30)
print("writing", flush=True)
i = 10_000
while True:
    write_rows(store, [RequestRow("run-a", i, "openai/gpt-4o-mini", "default", "openrouter", "hello", 0,
                                 False, outcome="ok", ttft_ms=300.0, e2e_ms=900.0, t_start_ms=1.0 * i)])
    i += 1
    time.sleep(0.05)
"""


def test_pages_keep_working_while_a_run_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer in another process opens, inserts and closes in a loop; every read still lands."""
    db = tmp_path / "busy.duckdb"
    seed_results_db(db, runs=1)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(db)], stdout=subprocess.PIPE, text=True,
                              cwd=Path(APP).parent.parent)
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "writing"
        at = open_page(db, monkeypatch)
        counts = []
        for _ in range(2):
            st.cache_data.clear()
            at.run()
            assert not at.exception and not at.error
            busy = any("database is busy" in w for w in texts(at, "warning"))
            if not busy:
                counts.append(int(frame_with(chart(at, "Time to first token"), "median")["n"].sum()))
        assert counts, "every read hit the lock"
    finally:
        writer.kill()
        writer.wait()
    assert writer.returncode is not None


# ------------------------------------------------------------------- bench.results.analytics
def test_ci_ranks_match_bench_stats() -> None:
    """The windowed ranks equal the exact ones, including n where the window matters."""
    for n in (6, 50, 367, 368, 2001, 2500, 10_000):
        for q in (50, 90, 95, 99):
            assert analytics.ci_ranks(n, q) == stats.order_statistic_ranks(n, q), (n, q)


def test_percentile_table_equals_percentile_ci(seeded: tuple[Path, dict[str, Any]]) -> None:
    db, expected = seeded
    f = analytics.Filters(("run-a",))
    rows = summary.summarize(Store(db), f, cis=("ttft_ms",))
    table = analytics.percentile_view(summary.frame(rows), "ttft_ms")
    for row in table.iter_rows(named=True):
        values = expected["ttft"][("run-a", row["model"], row["provider"])]
        for q in (50, 90, 99):
            ci = stats.percentile_ci(values, q)
            assert ci is not None
            assert row[f"p{q}"] == pytest.approx(ci.estimate)
            assert (row[f"p{q}_ci_lo"], row[f"p{q}_ci_hi"]) == (ci.lo, ci.hi)  # both None when small_n


def test_pack_slots_reuses_freed_slots() -> None:
    assert analytics.pack_slots([0, 1, 2, 3, 10], [5, 3, 4, 11, 12]) == [0, 1, 2, 1, 0]


def test_group_stats_money_stays_decimal(seeded: tuple[Path, dict[str, Any]]) -> None:
    db, _ = seeded
    g = summary.frame(summary.summarize(Store(db), analytics.Filters(("run-a",), models=(MODELS[1],))))
    assert g["cost_usd"].to_list() == [Decimal("0.00112")] * 2  # 28 ok x 0.00004
    assert g["n"].to_list() == [30, 30] and g["rate_limited"].to_list() == [1, 1]


def test_timeline_window_moves_along_the_run(seeded: tuple[Path, dict[str, Any]]) -> None:
    db, _ = seeded
    s, f = Store(db), analytics.Filters(("run-a",))
    head, total = analytics.timeline(s, f, "run-a", 0, 50)
    tail, _ = analytics.timeline(s, f, "run-a", 100, 50)
    assert total == 120 and head.height == 50 and tail.height == 20
    assert head["t_start_ms"].max() <= tail["t_start_ms"].min()

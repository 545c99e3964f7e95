"""The Load page under AppTest, on real sweeps made by ``orbench sweep`` against the sandbox.

The sandbox serves 4 requests at once at full speed (``max_concurrent=4``), so the sweep's
knee is at concurrency 4; the page must show what ``orbench sweep --json`` printed for the
same database (knee, max goodput, every step), pick the sweep named in ``?sweep=``, and say
how to make a sweep when there is none.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from bench.run.sweep import summary_lines
from bench.sandbox import start_sandbox
from bench.store.store import Store
from tests.conftest import invoke

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "dashboard" / "app.py")
SUITE = ROOT / "data" / "suites" / "sweep.yaml"
KEY = "openai/gpt-4o-mini [default]"


def run_sweep(db: Path, base_url: str, *args: str) -> dict[str, Any]:
    code, out, err = invoke("sweep", str(SUITE), "--json", "--base-url", base_url, "--db", str(db), *args)
    assert code == 0, err
    return dict(json.loads(out))


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Any], dict[str, Any]]]:
    """(db, the knee sweep's JSON, a newer two-step sweep's JSON), both through ``orbench sweep``."""
    db = tmp_path_factory.mktemp("load-page") / "orbench.duckdb"
    with pytest.MonkeyPatch.context() as mp:
        for k in list(os.environ):
            if k.startswith(("OPENROUTER_", "ORBENCH_")):
                mp.delenv(k)
        with start_sandbox(time_scale=0.2, max_concurrent=4) as sb:
            knee = run_sweep(db, sb.base_url, "--concurrency", "2,4,8,16", "--requests-per-step", "16",
                             "--slo", "ttft_p95_ms<=400")
            newer = run_sweep(db, sb.base_url, "--concurrency", "1,2", "--requests-per-step", "4")
    assert knee["knee"] == {KEY: 4}, knee["knee"]  # the capacity, as the sandbox was told
    yield db, knee, newer


@pytest.fixture(autouse=True)
def app_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for k in list(os.environ):
        if k.startswith(("OPENROUTER_", "ORBENCH_")):
            monkeypatch.delenv(k)
    monkeypatch.setenv("ORBENCH_DEMO_LOCAL", "0")
    st.cache_data.clear()
    yield
    st.cache_data.clear()


def open_load(db: Path, monkeypatch: pytest.MonkeyPatch, **params: str) -> AppTest:
    monkeypatch.setenv("ORBENCH_DB", str(db))
    at = AppTest.from_file(APP, default_timeout=60)
    for k, v in params.items():
        at.query_params[k] = v
    at.switch_page("app_pages/load.py")
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


CHARTS = {"chart-load-curve": "Throughput vs latency", "chart-load-goodput": "Goodput"}


def datasets(at: AppTest, key: str) -> list[pl.DataFrame]:
    """The data frames Streamlit sends to the browser for the chart ``key`` (found by its title)."""
    for el in at.get("vega_lite_chart"):
        title = json.loads(el.proto.spec).get("title")
        text = title.get("text") if isinstance(title, dict) else title
        if str(text).startswith(CHARTS[key]):
            return [pl.from_arrow(pa.ipc.open_stream(d.data.data).read_all())  # type: ignore[misc]  # from_arrow of a Table is a DataFrame, typed DataFrame | Series
                    for d in el.proto.datasets]
    raise AssertionError(f"no chart {key!r}")


def with_columns(frames: list[pl.DataFrame], *columns: str) -> list[pl.DataFrame]:
    return [f for f in frames if set(columns) <= set(f.columns)]


def texts(at: AppTest, kind: str) -> list[str]:
    return [str(e.value) for e in getattr(at, kind)]


def test_load_page_shows_the_knee_and_the_steps_of_sweep_json(sweeps: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    db, knee, _ = sweeps
    at = open_load(db, monkeypatch, sweep=knee["sweep_id"])
    assert at.title[0].value == "Load"
    assert texts(at, "success") == summary_lines(knee) == [f"{KEY}: knee at concurrency 4, max goodput at "
                                                           f"{knee['max_goodput'][KEY]}"]
    assert any("**simulated** sandbox" in c for c in texts(at, "caption"))
    table = pl.from_pandas(at.dataframe[0].value)
    assert table["concurrency"].to_list() == [2, 4, 8, 16]
    for row, step in zip(table.iter_rows(named=True), knee["steps"], strict=True):
        for field in ("concurrency", "model", "provider", "n", "req_per_s", "output_tok_per_s", "ttft_p50_ms",
                      "ttft_p95_ms", "tpot_p50_ms", "goodput_req_per_s", "error_rate", "run_id"):
            assert row[field] == step[field], (field, row[field], step[field])
    # queued requests miss the TTFT objective: at 16 goodput falls behind req/s
    assert table["goodput_req_per_s"][-1] < table["req_per_s"][-1]


def test_load_charts_draw_sweep_json_with_the_knee_and_the_slo(sweeps: Any,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    db, knee, _ = sweeps
    at = open_load(db, monkeypatch, sweep=knee["sweep_id"])
    steps = {s["concurrency"]: s for s in knee["steps"]}
    curve = datasets(at, "chart-load-curve")
    points = with_columns(curve, "throughput", "latency", "label")[0].sort("level")
    assert points["label"].to_list() == ["c=2", "c=4", "c=8", "c=16"]
    assert points["throughput"].to_list() == [steps[c]["req_per_s"] for c in (2, 4, 8, 16)]
    assert points["latency"].to_list() == [steps[c]["ttft_p95_ms"] for c in (2, 4, 8, 16)]
    slo = [f for f in curve if "slo" in f.columns]
    assert slo and slo[0]["latency"].to_list() == [400.0] and slo[0]["slo"].to_list() == ["SLO ttft_p95_ms<=400"]
    goodput = datasets(at, "chart-load-goodput")
    marks = {m: f["level"].to_list() for f in with_columns(goodput, "mark") for m in f["mark"].unique()}
    assert marks["knee c=4"] == [4.0]
    assert marks["max goodput"] == [float(knee["max_goodput"][KEY])]
    series = with_columns(goodput, "series")[0]
    got = series.filter(pl.col("series") == "goodput").sort("level")["req_per_s"].to_list()
    assert got == [steps[c]["goodput_req_per_s"] for c in (2, 4, 8, 16)]


def test_load_latency_choice_redraws_with_its_intervals(sweeps: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    db, knee, _ = sweeps
    at = open_load(db, monkeypatch, sweep=knee["sweep_id"])
    at.radio(key="load-latency").set_value("tpot_p50_ms").run()
    at.radio(key="load-throughput").set_value("output_tok_per_s").run()
    assert not at.exception
    curve = datasets(at, "chart-load-curve")
    bars = with_columns(curve, "latency_lo", "latency_hi", "throughput")[0].sort("level")
    steps = sorted(knee["steps"], key=lambda s: s["concurrency"])
    assert bars["latency"].to_list() == [s["tpot_p50_ms"] for s in steps]
    assert bars["latency_lo"].to_list() == [s["tpot_p50_ci_lo_ms"] for s in steps]  # n=16 has a p50 interval
    assert bars["latency_hi"].to_list() == [s["tpot_p50_ci_hi_ms"] for s in steps]
    assert bars["throughput"].to_list() == [s["output_tok_per_s"] for s in steps]
    assert not [f for f in curve if "slo" in f.columns]  # the SLO is on TTFT, not on this axis
    assert any("SLOs on other metrics" in c and "ttft_p95_ms<=400" in c for c in texts(at, "caption"))


def test_load_sweep_comes_from_the_url_and_goes_back_into_it(sweeps: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    db, knee, newer = sweeps
    listed = Store(db).list_sweeps()
    assert listed["sweep_id"].to_list() == [newer["sweep_id"], knee["sweep_id"]]  # newest first
    assert listed["steps"].to_list() == [2, 4] and listed["simulated"].all()
    at = open_load(db, monkeypatch)  # no parameter: the newest, named in the URL for sharing
    assert at.query_params["sweep"] == [newer["sweep_id"]] or at.query_params["sweep"] == newer["sweep_id"]
    assert texts(at, "info") == [f"{KEY}: knee at concurrency not reached, max goodput at "
                                 f"{newer['max_goodput'][KEY]}"]
    at.selectbox(key="load-sweep").set_value(knee["sweep_id"]).run()
    assert at.query_params["sweep"] in (knee["sweep_id"], [knee["sweep_id"]])
    assert "knee at concurrency 4" in texts(at, "success")[0]
    bad = open_load(db, monkeypatch, sweep="sweep-nonexistent")
    assert any("URL parameter sweep='sweep-nonexistent'" in w for w in texts(bad, "warning"))
    assert pl.from_pandas(bad.dataframe[0].value)["run_id"].to_list() == [s["run_id"] for s in newer["steps"]]


def test_load_empty_state_says_how_to_make_a_sweep(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with start_sandbox(time_scale=0) as sb:  # a database with a run but no sweep, then no file at all
        monkeypatch.setenv("OPENROUTER_BASE_URL", sb.base_url)
        db = tmp_path / "runs.duckdb"
        code, _, err = invoke("run", str(SUITE), "--base-url", sb.base_url, "--db", str(db), "--json")
        assert code == 0, err
        for path in (db, tmp_path / "missing.duckdb"):
            at = open_load(path, monkeypatch)
            assert any("no sweeps yet" in i for i in texts(at, "info")), texts(at, "info")
            assert "orbench sweep data/suites/sweep.yaml --concurrency" in at.code[0].value
            assert f"--db {path}" in at.code[0].value
            assert not at.get("vega_lite_chart")

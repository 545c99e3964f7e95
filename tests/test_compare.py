"""Run A vs run B (bench.results.compare): one implementation behind ``orbench compare``, the HTML report's
baseline and the dashboard's Compare page, over every ok value (no sample cap)."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from bench.records import RequestRow
from bench.results import compare, stats
from bench.store.store import Store
from tests._rows import write_rows
from tests.conftest import invoke

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "dashboard" / "app.py")
N = 450  # more ok requests per group than the dashboard's old 300-value cap


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[str, list[float]]]]:
    """Run A, then run B 25 % slower on variant "slow" and unchanged on "same"; 450 ok rows per group."""
    db = tmp_path_factory.mktemp("cmp") / "orbench.duckdb"
    store = Store(db)
    store.init()
    rng = random.Random(3)
    values: dict[str, dict[str, list[float]]] = {}
    for r, run_id in enumerate(("run-a", "run-b")):
        store.create_run(run_id, status="finished", started_at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=r),
                         simulated=True)
        rows = []
        for i in range(2 * N):
            variant = "slow" if i % 2 else "same"
            ttft = rng.lognormvariate(6, 0.3) * (1.25 if r and variant == "slow" else 1.0)
            values.setdefault(run_id, {}).setdefault(variant, []).append(ttft)
            rows.append(RequestRow(run_id, i, "acme/alpha", variant, "openrouter", "c", i // 2, False, outcome="ok",
                                   provider="Prov", ttft_ms=ttft, e2e_ms=ttft + 500, t_start_ms=float(i)))
        rows.append(RequestRow(run_id, 2 * N, "acme/alpha", "same", "openrouter", "c", 0, False,
                               outcome="provider_error"))
        write_rows(store, rows)
    return db, values


def test_every_ok_value_counts_and_the_change_is_judged_against_the_noise(two_runs: tuple[Path, dict]) -> None:
    db, values = two_runs
    rows = compare.compare_runs(Store(db), "run-a", "run-b", metrics=("ttft_ms",))
    ttft = {r["group"]: r for r in rows if r["metric"] == "TTFT ms"}
    assert set(ttft) == {"acme/alpha [same]", "acme/alpha [slow]"}
    for variant in ("same", "slow"):
        r, a, b = ttft[f"acme/alpha [{variant}]"], values["run-a"][variant], values["run-b"][variant]
        assert (r["n_a"], r["n_b"]) == (N, N)
        assert r["p50_a"] == pytest.approx(stats.percentile(a, 50))
        assert r["p50_b"] == pytest.approx(stats.percentile(b, 50))
    assert ttft["acme/alpha [slow]"]["verdict"] == "beyond noise" and ttft["acme/alpha [slow]"]["direction"] == "worse"
    assert ttft["acme/alpha [same]"]["verdict"] == "within noise"
    errors = {r["group"]: r for r in rows if r["metric"] == "error rate"}
    assert errors["acme/alpha [same]"]["p50_a"] == pytest.approx(1 / (N + 1))  # over requests sent


def test_cli_and_compare_page_show_the_same_changes(two_runs: tuple[Path, dict],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    db, _ = two_runs
    code, out, err = invoke("compare", "run-a", "run-b", "--db", str(db), "--json")
    assert code == 0, err
    cli = {(r["group"].replace(" [", " · ").rstrip("]"), r["metric"]): r for r in json.loads(out)}
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    monkeypatch.setenv("OPENROUTER_BASE_URL", "http://127.0.0.1:9/api/v1")  # never contacted here
    monkeypatch.setenv("ORBENCH_DB", str(db))
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("app_pages/compare.py").run()
    assert not at.exception, [e.message for e in at.exception]
    page = next(d.value for d in at.dataframe if "ci_lo_pct" in d.value.columns)
    st.cache_data.clear()
    labels = {"TTFT ms": "TTFT ms", "end-to-end ms": "e2e ms"}
    assert len(page) == 4
    for r in page.to_dict("records"):
        c = cli[(r["group"], labels[r["metric"]])]
        assert (r["n_a"], r["n_b"]) == (c["n_a"], c["n_b"]) == (N, N)
        assert r["p50_a"] == pytest.approx(c["p50_a"]) and r["change"] == pytest.approx(c["change"])
        assert r["ci_lo_pct"] == pytest.approx(100 * c["ci_lo"] / c["p50_a"])  # the same bootstrap
        assert r["verdict"] == c["verdict"]

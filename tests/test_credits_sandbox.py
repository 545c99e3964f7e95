"""Sandbox credits that add up: the simulated key's usage is the simulated spend in the database.

Runs are real ``orbench run --sandbox`` runs (each starts, and forgets, its own
sandbox); the dashboard then starts a fresh sandbox of its own, with no
``OPENROUTER_BASE_URL``, exactly as a user without a key gets it.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import streamlit as st
from conftest import invoke
from streamlit.testing.v1 import AppTest
from test_dashboard import APP, texts

from bench.records import RequestRow
from bench.sandbox import start_sandbox
from bench.store.store import Store
from dashboard import data
from tests._rows import write_rows

SMOKE = str(Path(__file__).resolve().parent.parent / "data" / "suites" / "smoke.yaml")


def sandbox_run(db: Path) -> None:
    code, _, err = invoke("run", SMOKE, "--sandbox", "--db", str(db), "--repeat", "1")
    assert code == 0, err


def credits_page(db: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("ORBENCH_DB", str(db))
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("app_pages/credits.py").run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_credits_key_usage_is_the_runs_simulated_spend(cli_db: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    db = cli_db.parent / "credits.duckdb"
    sandbox_run(db)
    spent = Store(db).simulated_spend()["usd"]
    billed = Store(db).query("SELECT sum(cost_usd) AS usd FROM requests")["usd"][0]
    assert spent > 0 and spent == billed  # smoke has no judge, nothing replaced
    data._sandbox.clear()
    at = credits_page(db, monkeypatch)
    shown = metrics(at)
    assert shown["Key usage (simulated)"] == f"${float(spent):,.4f}"
    assert shown["Remaining under the limit"] == f"${float(Decimal(10) - spent):,.4f}"
    assert any("simulated spend this database recorded" in c for c in texts(at, "caption"))
    # the dashboard's own sandbox (a fresh process-level one) also starts from that spend
    base_url = data._sandbox(str(db)).base_url
    key = httpx.get(base_url + "/key", timeout=5).json()["data"]
    assert Decimal(str(key["usage"])) == spent


def test_credits_follow_a_cli_run_made_after_the_dashboard_started(cli_db: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    db = cli_db.parent / "later.duckdb"
    sandbox_run(db)
    data._sandbox.clear()
    first = metrics(credits_page(db, monkeypatch))["Key usage (simulated)"]
    sandbox_run(db)  # another process, another sandbox: the dashboard's never saw it
    spent = Store(db).simulated_spend()["usd"]
    after = metrics(credits_page(db, monkeypatch))["Key usage (simulated)"]
    assert after == f"${float(spent):,.4f}" and after != first


def test_simulated_spend_leaves_real_runs_out_and_counts_judges(cli_db: Path) -> None:
    db = cli_db.parent / "mixed.duckdb"
    store = Store(db)
    store.init()
    store.create_run("sim", status="finished", simulated=True)
    store.create_run("real", status="finished", simulated=False)
    write_rows(store, [
        RequestRow("sim", 0, "m", "default", "openrouter", "c", 0, False, outcome="ok",
                   cost_usd=Decimal("0.0005")),
        RequestRow("sim", 1, "m", "default", "openrouter", "c", 0, True, outcome="ok",
                   cost_usd=Decimal("0.0001")),  # a warm-up is billed too
        RequestRow("real", 0, "m", "default", "openrouter", "c", 0, False, outcome="ok",
                   cost_usd=Decimal("7")),
    ])
    store.add_judge_cost("sim", 1, 10, 5, Decimal("0.0002"))
    got = store.simulated_spend()
    assert got["requests_usd"] == Decimal("0.0006")
    assert got["other_usd"] == Decimal("0.0002")
    assert got["usd"] == Decimal("0.0008") and got["runs"] == 1


def test_sandbox_starts_with_the_initial_usage() -> None:
    with start_sandbox(seed=1, time_scale=0, initial_usage_usd="1.25") as sb:
        key = httpx.get(sb.base_url + "/key", timeout=5).json()["data"]
        assert Decimal(str(key["usage"])) == Decimal("1.25")
        assert Decimal(str(key["limit_remaining"])) == Decimal("8.75")
        legacy = httpx.get(sb.base_url + "/auth/key", timeout=5).json()["data"]
        assert Decimal(str(legacy["usage"])) == Decimal("1.25")
    with pytest.raises(ValueError, match="initial_usage_usd"):
        start_sandbox(initial_usage_usd="-1")

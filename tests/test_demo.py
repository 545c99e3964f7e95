"""``orbench demo``: the demo suite on the sandbox gives intervals, pass rates and a verdict per model."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from bench.results.summary import run_summary
from bench.store.store import Store
from tests.conftest import invoke


def test_demo_runs_three_models_forty_checked_requests_each_then_decides(cli_db: Path) -> None:
    code, out, err = invoke("demo")
    assert code in (0, 3), err  # 3: nothing met the limit (decide's gate); the sandbox makes that unlikely
    store = Store(cli_db)
    run_id = store.list_runs()["run_id"][0]
    rows = store.requests_frame(run_id).filter(~pl.col("is_warmup"))
    assert sorted(rows.group_by("model").len()["len"].to_list()) == [40, 40, 40]
    groups = [g for g in run_summary(store, run_id) if g["group"] != "TOTAL"]
    assert all(g["ok"] >= 30 and g["n_checked"] == g["ok"] for g in groups)
    assert all(g["ttft_p50_ci_lo_ms"] is not None and g["pass_rate_ci_lo"] is not None for g in groups)
    assert all(g["cost_per_correct_usd"] is not None for g in groups if g["n_passed"])
    assert "pass_rate>=0.8" in out and "per correct answer" in out
    assert "orbench dashboard" in err

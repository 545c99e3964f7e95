"""Per-run aggregates (m011, bench.results.aggregates): the Results page's numbers at team scale.

A real DuckDB file seeded by scripts/seed_big_db.py (240,000 rows in 3 runs, over the
200,000-row threshold), the aggregate-backed figures against the exact per-request
queries on the same file: exact fields equal, percentiles within the sketch's 0.5 %.
"""

from __future__ import annotations

import importlib.util
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from bench.results import aggregates, analytics, summary, summary_fields
from bench.store.store import Store
from tests.conftest import invoke

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "dashboard" / "app.py")
ALPHA = aggregates.ALPHA
TOL = ALPHA * (1 + 1e-9)  # the bound, plus float rounding of ln() at a bin edge

_spec = importlib.util.spec_from_file_location("seed_big_db", ROOT / "scripts" / "seed_big_db.py")
assert _spec is not None and _spec.loader is not None
seed_big_db = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(seed_big_db)

SKETCHED_COLUMNS = {summary_fields.metric_field(p, q, u) for _, p, u in summary_fields.SUMMARY_METRICS
                    for q in summary_fields.QUANTILES} | {
    "e2e_p50_correct_ms"}


def group_stats(store: Store, f: analytics.Filters, min_rows: int | None = None) -> pl.DataFrame:
    """The one summary per model x provider, as the dashboard reads it."""
    return summary.frame(summary.summarize(store, f, min_rows=min_rows))


def percentile_table(store: Store, f: analytics.Filters, groups: pl.DataFrame, metric: str) -> pl.DataFrame:
    """The Results page's percentile table: intervals added to the groups as ``dashboard.data`` does."""
    rows = groups.to_dicts()
    summary.add_cis(store, f, rows, metric)
    return analytics.percentile_view(summary.frame(rows), metric)


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("agg") / "big.duckdb"
    seed_big_db.seed(path, 240_000, 3)
    return path


@pytest.fixture
def small(tmp_path: Path) -> Path:
    path = tmp_path / "small.duckdb"
    seed_big_db.seed(path, 6_000, 2)
    return path


def run_ids(db: Path) -> tuple[str, ...]:
    return tuple(analytics.runs(Store(db))["run_id"].to_list())


def builds(db: Path) -> dict[str, int]:
    frame = Store(db).query("SELECT run_id, rows FROM run_aggregate_builds ORDER BY run_id")
    return dict(zip(frame["run_id"].to_list(), frame["rows"].to_list()))


def assert_close(sketched: Any, exact: Any, what: str) -> None:
    if exact is None:
        assert sketched is None, what
        return
    assert sketched is not None, what
    assert abs(sketched - exact) <= TOL * abs(exact), f"{what}: {sketched} vs exact {exact}"


def assert_groups_match(sk: pl.DataFrame, ex: pl.DataFrame) -> None:
    assert sk["sketched"].all() and not ex["sketched"].any()
    assert sk.columns == ex.columns and sk.dtypes == ex.dtypes
    assert sk.height == ex.height > 0
    for col in sk.columns:
        if col == "sketched":
            continue
        if col in SKETCHED_COLUMNS:
            for g, a, b in zip(ex["group"], sk[col], ex[col]):
                assert_close(a, b, f"{g} {col}")
        else:  # counts, rates, tokens, money (Decimal), token sources: identical
            assert sk[col].to_list() == ex[col].to_list(), col


@pytest.mark.parametrize("provider_by", ["variant", "served"])
@pytest.mark.parametrize("narrow", [False, True])
def test_aggregates_equal_the_exact_computation(big: Path, provider_by: str, narrow: bool) -> None:
    store = Store(big)
    ids = run_ids(big)
    opts = analytics.filter_options(store, ids, min_rows=0)
    assert opts == analytics.filter_options(store, ids, min_rows=analytics.EXACT_ONLY)
    assert len(opts["cases"]) == 40 and len(opts["models"]) == 6
    models = tuple(opts["models"][:2]) if narrow else ()
    providers = tuple(opts[provider_by][1:]) if narrow else ()
    f = analytics.Filters(ids, models, providers, provider_by=provider_by)
    sk = group_stats(store, f, min_rows=0)
    ex = group_stats(store, f, min_rows=analytics.EXACT_ONLY)
    assert_groups_match(sk, ex)
    assert isinstance(sk["cost_usd"][0], Decimal) and sk["n"].sum() == ex["n"].sum()
    for metric in ("ttft_ms", "e2e_ms", "decode_tps"):
        pk = percentile_table(store, f, sk, metric)
        pe = percentile_table(store, f, ex, metric)
        assert pk["n"].to_list() == pe["n"].to_list()
        for col in pk.columns[4:]:
            for g, a, b in zip(pe["group"], pk[col], pe[col]):
                assert_close(a, b, f"{metric} {g} {col}")
        assert pe["p99_ci_lo"].null_count() == 0  # thousands per group: every interval exists


def test_the_default_threshold_picks_sketches_only_for_big_ended_selections(big: Path, tmp_path: Path) -> None:
    store = Store(big)
    ids = run_ids(big)
    assert group_stats(store, analytics.Filters(ids))["sketched"].all()  # 240,000 rows
    assert not group_stats(store, analytics.Filters(ids[:1]))["sketched"].any()  # 80,000
    with_case = analytics.Filters(ids, cases=("case-03",))
    assert not group_stats(store, with_case)["sketched"].any()  # cases are not a sketch key
    running = tmp_path / "running.duckdb"
    shutil.copy(big, running)
    Store(running).update_run(ids[0], status="running")
    assert not group_stats(Store(running), analytics.Filters(ids))["sketched"].any()


def test_a_write_to_a_run_drops_its_aggregates_and_the_next_read_rebuilds_them(small: Path) -> None:
    ids = run_ids(small)
    assert set(builds(small)) == set(ids)  # the seed script builds them, as a run's end does
    store = Store(small)
    rows = store.query("SELECT request_idx, session FROM requests WHERE run_id = $r AND outcome = 'ok' "
                       "AND passed IS NOT NULL ORDER BY request_idx LIMIT 500", {"r": ids[0]})
    store.update_checks(ids[0], [(i, s, True, 1.0, None) for i, s in rows.iter_rows()])
    assert set(builds(small)) == set(ids) - {ids[0]}
    f = analytics.Filters(ids)
    sk = group_stats(store, f, min_rows=0)  # rebuilds the missing run, then reads it
    assert set(builds(small)) == set(ids)
    assert_groups_match(sk, group_stats(store, f, min_rows=analytics.EXACT_ONLY))


def test_a_database_without_aggregates_gets_them_on_the_first_big_read(tmp_path: Path) -> None:
    path = tmp_path / "bare.duckdb"
    seed_big_db.seed(path, 4_000, 2, aggregates=False)
    assert builds(path) == {}
    f = analytics.Filters(run_ids(path))
    assert group_stats(Store(path), f, min_rows=0)["sketched"].all()
    assert builds(path) == dict.fromkeys(run_ids(path), 2_000)


def test_a_finished_cli_run_writes_its_aggregates(cli_db: Path) -> None:
    code, _, err = invoke("run", "data/suites/smoke.yaml", "--sandbox")
    assert code == 0, err
    (run_id,) = run_ids(cli_db)
    con = duckdb.connect(str(cli_db), read_only=True)
    try:
        measured = con.sql("SELECT count(*) FROM requests WHERE run_id = ? AND NOT is_warmup",
                           params=[run_id]).fetchall()[0][0]
        billed = con.sql("SELECT sum(billed_usd) FROM run_aggregates WHERE run_id = ?",
                         params=[run_id]).fetchall()[0][0]
        exact = con.sql("SELECT sum(cost_usd) FROM requests WHERE run_id = ? AND NOT is_warmup",
                        params=[run_id]).fetchall()[0][0]
    finally:
        con.close()
    assert builds(cli_db) == {run_id: measured} and measured > 0
    assert billed == exact
    f = analytics.Filters((run_id,))
    assert_groups_match(group_stats(Store(cli_db), f, min_rows=0),
                        group_stats(Store(cli_db), f))


def test_results_page_says_when_percentiles_are_sketched(big: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    monkeypatch.setenv("OPENROUTER_BASE_URL", "http://127.0.0.1:9/api/v1")  # never contacted here
    monkeypatch.setenv("ORBENCH_DB", str(big))
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=120)
    at.switch_page("app_pages/results.py").run()
    assert not at.exception, [e.message for e in at.exception]

    def sketch_captions() -> list[str]:
        return [c.value for c in at.caption if "sketches" in c.value]

    assert sketch_captions() == []  # one run, 80,000 rows: exact
    ids = list(run_ids(big))
    at.multiselect(key="results-runs").set_value(ids).run()
    assert not at.exception, [e.message for e in at.exception]
    found = sketch_captions()
    assert len(found) == 2 and "±0.5 %" in found[0] and "exact" in found[0]
    requests = next(m for m in at.metric if m.label.startswith("Requests"))
    assert requests.value == f"{240_000:,}"  # the count stays exact
    st.cache_data.clear()

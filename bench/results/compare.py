"""Two runs side by side, per group: ok samples of a metric, error rates, and the median change
with its bootstrap interval (``bench.results.stats.compare``)."""

from __future__ import annotations

from typing import Any

from bench.records import FINISHED_OUTCOMES
from bench.results import stats
from bench.results.analytics import _metric, group_label
from bench.results.filters import PROVIDER_COLUMNS
from bench.store.store import Store


def run_samples(store: Store, run_id: str, metric: str, provider_by: str,
                cap: int) -> dict[tuple[str, str], list[float]]:
    """Up to ``cap`` ok values of ``metric`` per group of one run (a fixed pseudo-random subset)."""
    prov, metric = PROVIDER_COLUMNS[provider_by], _metric(metric)
    sql = f"""
        WITH s AS (
            SELECT model, {prov} AS provider, {metric} AS x FROM requests
            WHERE run_id = $run_id AND NOT is_warmup AND outcome = 'ok' AND {metric} IS NOT NULL
            QUALIFY row_number() OVER (PARTITION BY model, {prov} ORDER BY hash(request_idx)) <= $cap
        )
        SELECT model, provider, list(x) AS xs FROM s GROUP BY ALL
    """
    frame = store.query(sql, {"run_id": run_id, "cap": cap})
    return {(r["model"], r["provider"]): list(r["xs"]) for r in frame.iter_rows(named=True)}


def error_rates_by_group(store: Store, run_id: str, provider_by: str) -> dict[tuple[str, str], float | None]:
    """Error rate over requests sent per group of one run."""
    prov = PROVIDER_COLUMNS[provider_by]
    frame = store.query(
        f"""
        SELECT model, {prov} AS provider,
               count(*) FILTER (WHERE list_contains($finished, outcome)) AS sent,
               count(*) FILTER (WHERE outcome = 'ok') AS ok
        FROM requests WHERE run_id = $run_id AND NOT is_warmup GROUP BY ALL
        """,
        {"run_id": run_id, "finished": sorted(FINISHED_OUTCOMES)},
    )
    return {(r["model"], r["provider"]): ((r["sent"] - r["ok"]) / r["sent"] if r["sent"] else None)
            for r in frame.iter_rows(named=True)}


def compare_runs(a: dict[tuple[str, str], list[float]], b: dict[tuple[str, str], list[float]],
                 metric_label: str, n_resamples: int = 500, seed: int = 0) -> list[dict[str, Any]]:
    """``bench.results.stats.compare`` (median change with bootstrap CI) for every group both runs have."""
    rows = []
    for key in sorted(set(a) & set(b)):
        c = stats.compare(a[key], b[key], n_resamples=n_resamples, seed=seed)
        ref = c.median_a or None
        rows.append({
            "group": group_label(*key), "metric": metric_label, "n_a": c.n_a, "n_b": c.n_b,
            "p50_a": c.median_a, "p50_b": c.median_b, "change": c.diff,
            "change_pct": None if c.rel_change is None else 100 * c.rel_change,
            "ci_lo_pct": None if c.ci_lo is None or not ref else 100 * c.ci_lo / ref,
            "ci_hi_pct": None if c.ci_hi is None or not ref else 100 * c.ci_hi / ref,
            "verdict": "beyond noise" if c.significant else "within noise",
        })
    return rows

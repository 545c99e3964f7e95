"""Per-run aggregates for the dashboard at team scale: exact sums, sketched percentiles.

Why: with 10 million request rows the Results page spent seconds re-reading every
row of every selected run for numbers that cannot change once a run has ended.
``Store.build_aggregates`` (called when a run ends, and lazily from here for runs
without one: older databases, ``scripts/seed_big_db.py``) writes, per run x model x
provider variant x endpoint x served provider:

- ``run_aggregates``: one row per outcome class with exact counts, token sums and
  money sums (DECIMAL), check verdict counts, the distinct token sources and case ids;
- ``run_aggregate_bins``: for ok rows, DDSketch-style log-bucket counts of
  ``ttft_ms``, ``e2e_ms``, ``decode_tps`` and ``tpot_ms``: a value x > 0 falls in bin
  ``ceil(ln x / ln gamma)`` with ``gamma = (1 + ALPHA) / (1 - ALPHA)``, and the bin is
  read back as ``2 gamma^k / (gamma + 1)``, within ``ALPHA`` (0.5 %) of every value in
  it. Bins add across runs, so any selection of runs merges exactly.

What is exact from aggregates: n, sent, ok, 429s, error and 429 rates, the count of
values behind every percentile, token sums, billed and list USD (and per request /
per 1,000), pass counts and pass rate. What is not: every percentile (p05 ... p99,
TPOT p50) and every percentile interval bound is within ``ALPHA`` relative of the
exact value (the interval *ranks* are exact; the value read at a rank is sketched).

``plan`` decides per selection: aggregates are used only when every selected run
has ended, no case filter is set (cases are not a key of the sketches) and the
selection has at least ``MIN_ROWS`` rows; below that the exact per-request queries
of ``bench.results.summary`` are fast enough and are used instead. Every field the summary derives
from counts and sums (``n`` = requests sent, tokens billed over every outcome, tokens for
speed over ``ok``, money over every row) reads the same from either source.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from typing import TYPE_CHECKING, Any

import duckdb
import polars as pl

from bench.errors import BenchError
from bench.records import FINISHED_OUTCOMES
from bench.store.runs import AGGREGATE_METRICS, AGGREGATE_VERSION, SKETCH_ALPHA, SKETCH_GAMMA, TERMINAL_STATUSES

if TYPE_CHECKING:
    from bench.results.filters import Filters
    from bench.store.store import Store

ALPHA = SKETCH_ALPHA
MIN_ROWS = 200_000
"""Selections smaller than this are summarized from the request rows, exactly."""
EXACT_ONLY = 2**62
"""A ``min_rows`` no selection reaches: always the exact per-request queries."""
METRICS = AGGREGATE_METRICS
PASSED_E2E = "e2e_ms_passed"
"""The sketch of ``e2e_ms`` over ok rows that passed their checks (latency of correct answers)."""

_WHERE = """
    list_contains($run_ids, run_id)
    AND (len($models) = 0 OR list_contains($models, model))
    AND (len($providers) = 0 OR list_contains($providers, {prov}))
"""

_BUILDS = """
SELECT r.run_id, r.status, b.rows, b.version
FROM runs AS r LEFT JOIN run_aggregate_builds AS b USING (run_id)
WHERE list_contains($run_ids, r.run_id)
"""

_COUNTS = """
WITH a AS (SELECT *, {prov} AS prov, provider AS served FROM run_aggregates WHERE {where}),
-- requests a stopped run planned and never recorded (read from the plans of runs short of rows only)
u AS (SELECT model, {prov} AS prov, count(*) AS n FROM requests_current
      WHERE NOT recorded AND NOT is_warmup AND {where} GROUP BY ALL),
g AS (
SELECT model, prov AS provider,
    CAST(sum(n) AS BIGINT) AS recorded,
    CAST(coalesce(sum(n) FILTER (WHERE list_contains($finished, outcome)), 0) AS BIGINT) AS n,
    CAST(coalesce(sum(n) FILTER (WHERE outcome = 'ok'), 0) AS BIGINT) AS ok,
    CAST(coalesce(sum(n) FILTER (WHERE outcome = 'rate_limited'), 0) AS BIGINT) AS rate_limited,
    CAST(sum(retries_429) AS BIGINT) AS retries_429,
    CAST(coalesce(sum(n_cold) FILTER (WHERE outcome = 'ok'), 0) AS BIGINT) AS cold_connections,
    CAST(coalesce(sum(n_fresh) FILTER (WHERE list_contains($finished, outcome)), 0) AS BIGINT)
        AS fresh_connections,
    CAST(sum(prompt_tokens) AS BIGINT) AS prompt_tokens,
    CAST(sum(completion_tokens) AS BIGINT) AS completion_tokens,
    CAST(sum(cached_tokens) AS BIGINT) AS cached_tokens,
    CAST(sum(prompt_tokens) FILTER (WHERE outcome = 'ok') AS BIGINT) AS ok_prompt_tokens,
    CAST(sum(completion_tokens) FILTER (WHERE outcome = 'ok') AS BIGINT) AS ok_completion_tokens,
    CAST(sum(billed_usd) AS DECIMAL(38,18)) AS cost_usd, CAST(sum(n_billed) AS BIGINT) AS n_billed,
    CAST(sum(list_usd) AS DECIMAL(38,18)) AS list_cost_usd, CAST(sum(n_list) AS BIGINT) AS n_list,
    CAST(sum(n_checked) AS BIGINT) AS n_checked,
    CAST(sum(n_passed) AS BIGINT) AS n_passed,
    list_sort(list_distinct(flatten(list(token_sources)))) AS token_source,
    list_sort(list(DISTINCT served) FILTER (WHERE served IS NOT NULL)) AS providers
FROM a GROUP BY model, prov
)
SELECT g.* EXCLUDE (recorded), g.recorded + coalesce(u.n, 0) AS planned
FROM g LEFT JOIN u ON u.model IS NOT DISTINCT FROM g.model AND u.prov IS NOT DISTINCT FROM g.provider
ORDER BY g.model, g.provider
"""

_BINS = """
SELECT model, {prov} AS provider, metric, bin, CAST(sum(n) AS BIGINT) AS n
FROM run_aggregate_bins WHERE {where} AND list_contains($metrics, metric)
GROUP BY ALL ORDER BY model, provider, metric, bin NULLS FIRST
"""

_OPTIONS = """
SELECT list_sort(list(DISTINCT model)) AS models,
       list_sort(list(DISTINCT {variant})) AS variant,
       list_sort(list(DISTINCT {served})) AS served,
       list_sort(list_distinct(flatten(list(case_ids)))) AS cases
FROM run_aggregates WHERE list_contains($run_ids, run_id)
"""


# ------------------------------------------------------------------- the sketch
def bin_value(k: int | None) -> float:
    """The value a bin stands for: within ALPHA of every x in (gamma^(k-1), gamma^k]."""
    if k is None:
        return 0.0  # x <= 0 (the runner never records a negative time)
    return 2 * SKETCH_GAMMA ** k / (SKETCH_GAMMA + 1)


class Sketch:
    """One group's merged bins of one metric: values at ranks, quantiles."""

    def __init__(self, bins: list[int | None], counts: list[int]) -> None:
        self.values = [bin_value(k) for k in bins]
        self.cum: list[int] = []
        total = 0
        for c in counts:
            total += c
            self.cum.append(total)
        self.n = total

    def at(self, index: int) -> float:
        """The value of the ``index``-th smallest (0-based) of the n values."""
        return self.values[bisect_right(self.cum, index)]

    def quantile(self, q: float) -> float | None:
        """``quantile_cont``: linear between the order statistics around (n - 1) q."""
        if not self.n:
            return None
        h = (self.n - 1) * q
        lo = math.floor(h)
        a, b = self.at(lo), self.at(min(lo + 1, self.n - 1))
        return a + (h - lo) * (b - a)


# ------------------------------------------------------------------- when to use them
def plan(store: Store, f: Filters, min_rows: int | None = None) -> bool:
    """True when the aggregates answer this selection (building missing ones now).

    False (read the request rows, exactly) for a case filter, a run still going, a
    selection under ``min_rows`` rows, or aggregates that cannot be written now (the
    file is busy: a run is writing; the next page view tries again).
    """
    if f.cases or not f.run_ids:
        return False
    min_rows = MIN_ROWS if min_rows is None else min_rows
    params = {"run_ids": list(f.run_ids)}
    try:
        builds = store.query(_BUILDS, params)
    except duckdb.CatalogException:  # a file from before m011: build() migrates it
        builds = store.query("SELECT run_id, status, NULL::BIGINT AS rows, NULL::INTEGER AS version "
                             "FROM runs WHERE list_contains($run_ids, run_id)", params)
    if builds.height < len(set(f.run_ids)) or not builds["status"].is_in(list(TERMINAL_STATUSES)).all():
        return False
    built = builds.filter(pl.col("version") == AGGREGATE_VERSION)
    missing = sorted(set(builds["run_id"].to_list()) - set(built["run_id"].to_list()))
    rows = int(built["rows"].sum() or 0)
    if missing:
        rows += int(store.query("SELECT count(*) AS n FROM requests WHERE list_contains($ids, run_id) "
                                "AND NOT is_warmup", {"ids": missing})["n"][0])
    if rows < min_rows:
        return False
    if missing:
        try:
            done = store.build_aggregates(missing, timeout_s=store.read_timeout_s)
        except (BenchError, duckdb.Error):
            return False
        return set(done) == set(missing)
    return True


# ------------------------------------------------------------------- reads
def _params(f: Filters) -> dict[str, Any]:
    return {"run_ids": list(f.run_ids), "models": list(f.models), "providers": list(f.providers)}


def sketches(store: Store, f: Filters, metrics: tuple[str, ...] = METRICS) -> dict[tuple[str, str, str], Sketch]:
    """Merged sketches per (model, provider, metric) over the selected runs."""
    sql = _BINS.format(prov=f.prov, where=_WHERE.format(prov=f.prov))
    frame = store.query(sql, _params(f) | {"metrics": list(metrics)})
    out: dict[tuple[str, str, str], Sketch] = {}
    for key, part in frame.group_by(["model", "provider", "metric"], maintain_order=True):
        out[(str(key[0]), str(key[1]), str(key[2]))] = Sketch(part["bin"].to_list(), part["n"].to_list())
    return out


def group_frame(store: Store, f: Filters, quantiles: list[float]) -> pl.DataFrame:
    """``bench.results.summary``'s raw group query, answered from the aggregates (same columns).

    ``planned`` adds the requests a stopped run never recorded (``requests_current``'s
    plan rows: read from the plan of runs short of rows only, so cheap), in the same query."""
    sql = _COUNTS.format(prov=f.prov, where=_WHERE.format(prov=f.prov))
    counts = store.query(sql, _params(f) | {"finished": sorted(FINISHED_OUTCOMES)})
    if counts.is_empty():
        return counts
    sk = sketches(store, f, METRICS + (PASSED_E2E,))
    keys = list(zip(counts["model"], counts["provider"]))
    cols: dict[str, pl.Series] = {}
    for metric, prefix in (("ttft_ms", "ttft"), ("e2e_ms", "e2e"), ("decode_tps", "decode_tps"),
                           ("tpot_ms", "tpot")):
        found = [sk.get((m, p, metric)) for m, p in keys]
        cols[f"n_{prefix}"] = pl.Series([s.n if s else 0 for s in found], dtype=pl.Int64)
        cols[f"_q_{prefix}"] = pl.Series([[s.quantile(q) for q in quantiles] if s else None for s in found],
                                         dtype=pl.List(pl.Float64))
    passed = [sk.get((m, p, PASSED_E2E)) for m, p in keys]
    cols["e2e_p50_correct_ms"] = pl.Series([s.quantile(0.5) if s else None for s in passed], dtype=pl.Float64)
    return counts.with_columns(**cols)


def filter_options(store: Store, run_ids: tuple[str, ...], variant: str, served: str) -> pl.DataFrame:
    return store.query(_OPTIONS.format(variant=variant, served=served), {"run_ids": list(run_ids)})

"""Read-only views for the dashboard and the HTML report, over ``bench.results.summary``'s groups.

The summary itself (counts, rates, percentiles, tokens, money: one definition) lives in
``bench.results.summary``; this module shapes its group frame for charts and tables (box plots, rates,
costs, the Pareto frontier, provider comparisons) and holds the queries that are not a summary:
runs, filter options, the timeline and drift of one run, spend, export rows, answers. Every
query goes through ``Store.query`` (a short read-only connection; ``StoreBusy`` when the file is
locked). SQL text is fixed; the only pieces chosen at run time are identifiers from the
whitelists, never values.
"""

from __future__ import annotations

import heapq
from decimal import Decimal
from typing import Any

import polars as pl

from bench.results import aggregates
from bench.results.pass_rates import pareto_flags
from bench.results.summary import EXACT_ONLY, PROVIDER_COLUMNS, ci_ranks
from bench.results.summary import Filters as Filters  # re-exported: the dashboard builds them
from bench.results.summary_fields import CI_PERCENTILES, SUMMARY_METRICS, metric_field
from bench.store.store import Store

__all__ = ["CI_PERCENTILES", "EXACT_ONLY", "PROVIDER_COLUMNS", "Filters", "ci_ranks"]  # re-exported

METRIC_LABELS = {
    "ttft_ms": "TTFT ms",
    "e2e_ms": "end-to-end ms",
    "decode_tps": "decode tokens/s",
    "tpot_ms": "TPOT ms",
}
"""Per-request measures a chart may summarise (whitelisted column names) -> their axis label."""

_PREFIX = {col: (prefix, unit) for col, prefix, unit in SUMMARY_METRICS}


def _q(metric: str, q: int) -> str:
    """The summary field of percentile ``q`` of ``metric``: ``ttft_ms``, 50 -> ``ttft_p50_ms``."""
    prefix, unit = _PREFIX[_metric(metric)]
    return metric_field(prefix, q, unit)


def _n(metric: str) -> str:
    return f"n_{_PREFIX[_metric(metric)][0]}"


def _metric(name: str) -> str:
    if name not in METRIC_LABELS:
        raise ValueError(f"unknown metric {name!r}")
    return name


def group_label(model: str, provider: str) -> str:
    return f"{model} · {provider}"


# ------------------------------------------------------------------- runs and options
def runs(store: Store) -> pl.DataFrame:
    """Stored runs, newest first (the runs table only: ``Store.list_runs`` also scans every request)."""
    return store.query(
        "SELECT * EXCLUDE (plan) FROM runs "
        "ORDER BY coalesce(started_at, created_at) DESC, created_at DESC, run_id DESC"
    )


def filter_options(store: Store, run_ids: tuple[str, ...],
                   min_rows: int | None = None) -> dict[str, list[str]]:
    """Distinct models, provider variants, served providers and cases of the runs."""
    if aggregates.plan(store, Filters(run_ids), min_rows):
        frame = aggregates.filter_options(store, run_ids, PROVIDER_COLUMNS["variant"],
                                          PROVIDER_COLUMNS["served"])
    else:
        frame = _raw_filter_options(store, run_ids)
    if frame.is_empty():
        return {"models": [], "variant": [], "served": [], "cases": []}
    row = frame.row(0, named=True)
    return {k: list(v or []) for k, v in row.items()}


def _raw_filter_options(store: Store, run_ids: tuple[str, ...]) -> pl.DataFrame:
    return store.query(
        f"""
        SELECT list_sort(list(DISTINCT model)) AS models,
               list_sort(list(DISTINCT {PROVIDER_COLUMNS['variant']})) AS variant,
               list_sort(list(DISTINCT {PROVIDER_COLUMNS['served']})) AS served,
               list_sort(list(DISTINCT case_id)) AS cases
        FROM requests WHERE list_contains($run_ids, run_id) AND NOT is_warmup
        """,
        {"run_ids": list(run_ids)},
    )


def box_stats(groups: pl.DataFrame, metric: str) -> pl.DataFrame:
    """The box-plot columns of one metric (group, model, provider, n, p05..p95) from the summary."""
    if groups.is_empty():
        return pl.DataFrame(schema={"group": pl.String, "model": pl.String, "n": pl.Int64})
    return groups.select(
        "group", "model", "provider", pl.col(_n(metric)).alias("n"),
        *[pl.col(_q(metric, q)).alias(name) for q, name in ((5, "p05"), (25, "q1"), (50, "median"),
                                                            (75, "q3"), (95, "p95"))],
    )


def rates(groups: pl.DataFrame) -> pl.DataFrame:
    """group, sent (the summary's n: requests sent), error_rate, rate_limited_rate."""
    if groups.is_empty():
        return pl.DataFrame(schema={"group": pl.String, "sent": pl.Int64, "error_rate": pl.Float64,
                                    "rate_limited_rate": pl.Float64})
    return groups.select("group", pl.col("n").alias("sent"), "error_rate", "rate_limited_rate")


def cost_frame(groups: pl.DataFrame) -> pl.DataFrame:
    """Per group USD per 1,000 requests sent, billed and list, as floats for charts."""
    if groups.is_empty():
        return pl.DataFrame(schema={"group": pl.String, "billed_per_1k_usd": pl.Float64,
                                    "list_per_1k_usd": pl.Float64, "sent": pl.Int64})
    return groups.select(
        "group", "model", pl.col("n").alias("sent"),
        pl.col("cost_per_1k_requests_usd").cast(pl.Float64).alias("billed_per_1k_usd"),
        pl.col("list_cost_per_1k_requests_usd").cast(pl.Float64).alias("list_per_1k_usd"),
    )


def percentile_view(groups: pl.DataFrame, metric: str) -> pl.DataFrame:
    """p50/p90/p95/p99 of ``metric`` per group with their 95 % intervals (``summary.add_cis``
    filled them; "n too small" leaves the bounds empty)."""
    metric = _metric(metric)
    schema = {"group": pl.String, "model": pl.String, "provider": pl.String, "n": pl.Int64}
    for q in CI_PERCENTILES:
        schema |= {f"p{q}": pl.Float64, f"p{q}_ci_lo": pl.Float64, f"p{q}_ci_hi": pl.Float64}
    if groups.is_empty():
        return pl.DataFrame(schema=schema)
    prefix, unit = _PREFIX[metric]
    cols = [pl.col("group"), pl.col("model"), pl.col("provider"), pl.col(_n(metric)).alias("n")]
    for q in CI_PERCENTILES:
        cols += [pl.col(_q(metric, q)).alias(f"p{q}"),
                 pl.col(f"{prefix}_p{q}_ci_lo{unit}").alias(f"p{q}_ci_lo"),
                 pl.col(f"{prefix}_p{q}_ci_hi{unit}").alias(f"p{q}_ci_hi")]
    return groups.select(cols).cast(schema)  # type: ignore[arg-type]  # polars accepts a name->dtype map


# ------------------------------------------------------------------- timeline
_TIMELINE = """
WITH cur AS (
    SELECT request_idx, model, {prov} AS provider, case_id, outcome, t_start_ms, ttft_ms,
           t_start_ms + coalesce(done_ms, e2e_ms, ttft_ms, ttfb_ms, 0) AS t_end_ms
    FROM requests WHERE {where} AND t_start_ms IS NOT NULL
)
SELECT *, (SELECT count(*) FROM cur) AS total FROM cur
ORDER BY t_start_ms, request_idx LIMIT $limit OFFSET $first
"""


def timeline(store: Store, f: Filters, run_id: str, first: int = 0,
             limit: int = 2000) -> tuple[pl.DataFrame, int]:
    """A window of one run's requests in start order (``first`` .. ``first + limit``), each
    given the in-flight ``slot`` it occupied; returns the rows and the run's request count.

    Slots are packed greedily (a request takes the lowest slot free at its start), so
    there are as many rows as requests were ever in flight at once.
    """
    one = Filters((run_id,), f.models, f.providers, f.cases, f.provider_by)
    sql = _TIMELINE.format(prov=one.prov, where=one.where())
    frame = store.query(sql, one.params() | {"first": first, "limit": limit})
    if frame.is_empty():
        return frame.with_columns(pl.lit(0).alias("slot")).drop("total"), 0
    total = int(frame["total"][0])
    return frame.drop("total").with_columns(
        pl.Series("slot", pack_slots(frame["t_start_ms"].to_list(), frame["t_end_ms"].to_list()),
                  dtype=pl.Int64)), total


def pack_slots(starts: list[float], ends: list[float]) -> list[int]:
    """Lowest free slot per interval, intervals given in start order (interval graph colouring)."""
    busy: list[tuple[float, int]] = []  # heap of (end, slot) in use
    free: list[int] = []  # heap of released slots
    n_slots = 0
    out = []
    for start, end in zip(starts, ends):
        while busy and busy[0][0] <= start:
            heapq.heappush(free, heapq.heappop(busy)[1])
        if free:
            slot = heapq.heappop(free)
        else:
            slot, n_slots = n_slots, n_slots + 1
        heapq.heappush(busy, (max(end, start), slot))
        out.append(slot)
    return out


_DRIFT = """
WITH cur AS (
    SELECT model, t_start_ms, ttft_ms, e2e_ms FROM requests
    WHERE {where} AND outcome = 'ok' AND t_start_ms IS NOT NULL
), span AS (SELECT greatest(max(t_start_ms), 1) AS hi FROM cur)
SELECT model,
       least(CAST(floor(t_start_ms / span.hi * $bins) AS BIGINT), $bins - 1) AS bin,
       any_value(span.hi) AS hi, count(*) AS n,
       quantile_cont(ttft_ms, 0.5) AS ttft, quantile_cont(e2e_ms, 0.5) AS e2e
FROM cur, span GROUP BY ALL ORDER BY model, bin
"""


def drift(store: Store, f: Filters, run_id: str, bins: int = 40) -> pl.DataFrame:
    """Median TTFT and e2e per model and start-time bin of one run (long format)."""
    one = Filters((run_id,), f.models, f.providers, f.cases, f.provider_by)
    frame = store.query(_DRIFT.format(where=one.where()), one.params() | {"bins": bins})
    if frame.is_empty():
        return pl.DataFrame(schema={"start_s": pl.Float64, "model": pl.String, "metric": pl.String,
                                    "median_ms": pl.Float64, "n": pl.Int64})
    frame = frame.with_columns(((pl.col("bin") + 0.5) * pl.col("hi") / bins / 1000).alias("start_s"))
    return frame.unpivot(index=["start_s", "model", "n"], on=["ttft", "e2e"], variable_name="metric",
                         value_name="median_ms").with_columns(
        pl.col("metric").replace({"ttft": "TTFT", "e2e": "end-to-end"}))


# ------------------------------------------------------------------- frontier
def pareto_points(groups: pl.DataFrame, metric: str = "ttft_ms") -> pl.DataFrame:
    """Cost per request vs p50 latency per group; ``on_frontier`` marks the non-dominated ones
    (``pareto_flags``: lower is better on both)."""
    if groups.is_empty():
        return pl.DataFrame(schema={"group": pl.String, "p50_ms": pl.Float64,
                                    "cost_per_request_usd": pl.Float64, "on_frontier": pl.Boolean})
    pts = groups.select(
        "group", "model", "provider", pl.col("ok").alias("n_ok"), "pass_rate",
        pl.col(_q(metric, 50)).alias("p50_ms"),
        pl.col("cost_per_request_usd").cast(pl.Float64),
    )
    flags = pareto_flags(list(zip(pts["p50_ms"], pts["cost_per_request_usd"])), ("low", "low"))
    return pts.with_columns(pl.Series("on_frontier", flags, dtype=pl.Boolean))


# ------------------------------------------------------------------- export
def request_rows(store: Store, f: Filters, columns: list[str], limit: int | None = None) -> pl.DataFrame:
    """Filtered per-request rows (warm-ups excluded) with the given whitelisted columns."""
    from bench.records import REQUEST_COLUMNS

    bad = set(columns) - set(REQUEST_COLUMNS)
    if bad:
        raise ValueError(f"unknown columns: {sorted(bad)}")
    cols = ", ".join(f'"{c}"' for c in columns)
    sql = f"SELECT {cols} FROM requests WHERE {f.where()} ORDER BY run_id, request_idx LIMIT $limit"
    return store.query(sql, f.params() | {"limit": limit if limit is not None else 2**62})


def count_rows(store: Store, f: Filters) -> int:
    frame = store.query(f"SELECT count(*) AS n FROM requests WHERE {f.where()}", f.params())
    return int(frame["n"][0]) if frame.height else 0


# ------------------------------------------------------------------- page-level summaries
def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None



def headline(groups: pl.DataFrame) -> dict[str, Any]:
    """Totals over the selected groups: requests sent (n), ok, error and 429 rates (over n), billed USD."""
    n, ok = int(groups["n"].sum()), int(groups["ok"].sum())
    billed = groups["cost_usd"]
    return {
        "n": n, "ok": ok, "planned": int(groups["planned"].sum()),
        "error_rate": (n - ok) / n if n else None,
        "rate_limited_rate": int(groups["rate_limited"].sum()) / n if n else None,
        "cost_usd": None if billed.null_count() == billed.len() else billed.sum(),
    }


def headroom_usd(*amounts: Decimal | None) -> Decimal | None:
    """What is left to spend: the smallest of the known amounts (key limit, account balance)."""
    known = [a for a in amounts if a is not None]
    return min(known) if known else None


def provider_comparison(groups: pl.DataFrame, ttft: pl.DataFrame, e2e: pl.DataFrame) -> pl.DataFrame:
    """One model's providers side by side: p50 TTFT and e2e with CIs, plus each provider's rates.

    ``ttft``/``e2e`` are percentile_view frames for that model; ``groups`` its summary.
    """
    parts = [t.select("provider", pl.lit(label).alias("metric"), pl.col("p50").alias("p50_ms"),
                      pl.col("p50_ci_lo").alias("ci_lo_ms"), pl.col("p50_ci_hi").alias("ci_hi_ms"), "n")
             for t, label in ((ttft, "TTFT"), (e2e, "end-to-end"))]
    return pl.concat(parts).join(groups.select("provider", pl.col("n").alias("sent"), "error_rate",
                                               "rate_limited_rate"), on="provider", how="left")


def advertised_vs_measured(served: pl.DataFrame, endpoints: Any) -> pl.DataFrame:
    """Measured TTFT p50 per served-by provider next to each endpoint's ``latency_last_30m.p50``.

    ``served`` is the summary with provider_by="served" for one model; ``endpoints`` a
    ``bench.catalog.ModelEndpoints`` (or None when it could not be loaded).
    """
    rows: list[dict[str, Any]] = [
        {"provider": r["provider"], "source": "measured TTFT p50", "ms": r["ttft_p50_ms"], "n": r["ok"]}
        for r in served.iter_rows(named=True)
    ]
    for e in endpoints.endpoints if endpoints is not None else []:
        rows.append({"provider": e.provider_name or e.tag or "?", "source": "advertised p50 (last 30 min)",
                     "ms": _float((e.latency_last_30m or {}).get("p50")), "n": None})
    return pl.DataFrame(rows, schema={"provider": pl.String, "source": pl.String, "ms": pl.Float64,
                                      "n": pl.Int64})

"""Read-only aggregations for the dashboard, computed in DuckDB over the ``requests`` table.

Why this module exists beside ``bench.results.report``: the report pulls one run's rows
into Python, which is fine for the CLI but not for a dashboard that may select a
million rows across runs. Here every figure is one parameterized query through
``Store.query`` (a short read-only connection; ``StoreBusy`` when the file is
locked) that returns a handful of rows per model x provider: counts, rates, money
sums (DECIMAL, exact) and ``quantile_cont`` percentiles (the same definition as
``bench.results.stats.percentile``). Percentile confidence intervals use the same
order-statistic ranks as ``bench.results.stats.percentile_ci``, computed here in a
windowed form that stays fast for large n, and fetched with ``quantile_disc``.

Definitions follow ``bench.results.report``: warm-ups never count; ``sent`` = requests
that got an answer (``FINISHED_OUTCOMES``); error and 429 rates are over ``sent``;
latency statistics use ``ok`` rows only. SQL text is fixed; the only pieces
chosen at run time are identifiers from the whitelists below, never values.
"""

from __future__ import annotations

import functools
import heapq
import math
from decimal import Decimal
from typing import Any

import polars as pl

from bench.records import FINISHED_OUTCOMES
from bench.results import aggregates, stats
from bench.results.filters import PROVIDER_COLUMNS
from bench.results.filters import Filters as Filters  # re-exported: the dashboard builds them
from bench.store.store import Store

METRICS = {
    "ttft_ms": "TTFT ms",
    "e2e_ms": "end-to-end ms",
    "decode_tps": "decode tokens/s",
    "tpot_ms": "TPOT ms",
}
"""Per-request measures a chart may summarise (whitelisted column names)."""

BOX_QUANTILES = [0.05, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99]
BOX_NAMES = ["p05", "q1", "median", "q3", "p90", "p95", "p99"]
CI_PERCENTILES = (50, 90, 95, 99)
SEP = "\x1f"  # joins model and provider into one group key inside SQL
EXACT_ONLY = aggregates.EXACT_ONLY  # min_rows for callers that want exact percentiles at any size


def _metric(name: str) -> str:
    if name not in METRICS:
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


# ------------------------------------------------------------------- per-group summary
_GROUP_STATS = """
WITH cur AS (
    SELECT *, {prov} AS prov, outcome = 'ok' AS is_ok FROM requests WHERE {where}
)
SELECT model, prov AS provider,
    count(*) AS n,
    count(*) FILTER (WHERE list_contains($finished, outcome)) AS sent,
    count(*) FILTER (WHERE is_ok) AS ok,
    count(*) FILTER (WHERE outcome = 'rate_limited') AS rate_limited,
    count(ttft_ms) FILTER (WHERE is_ok) AS n_ttft,
    quantile_cont(ttft_ms, $qs) FILTER (WHERE is_ok) AS ttft_q,
    count(e2e_ms) FILTER (WHERE is_ok) AS n_e2e,
    quantile_cont(e2e_ms, $qs) FILTER (WHERE is_ok) AS e2e_q,
    count(decode_tps) FILTER (WHERE is_ok) AS n_decode,
    quantile_cont(decode_tps, $qs) FILTER (WHERE is_ok) AS decode_q,
    quantile_cont(tpot_ms, 0.5) FILTER (WHERE is_ok) AS tpot_p50_ms,
    sum(cost_usd) AS billed_usd, count(cost_usd) AS n_billed,
    sum(list_cost_usd) AS list_usd, count(list_cost_usd) AS n_list,
    CAST(sum(prompt_tokens) AS BIGINT) AS prompt_tokens,
    CAST(sum(completion_tokens) AS BIGINT) AS completion_tokens,
    count(passed) FILTER (WHERE is_ok) AS n_checked,
    count(*) FILTER (WHERE is_ok AND passed) AS n_passed,
    list_sort(list(DISTINCT token_source) FILTER (WHERE token_source IS NOT NULL)) AS token_sources
FROM cur GROUP BY ALL ORDER BY model, provider
"""

_METRIC_PREFIX = {"ttft_ms": "ttft", "e2e_ms": "e2e", "decode_tps": "decode"}


def group_stats(store: Store, f: Filters, min_rows: int | None = None) -> pl.DataFrame:
    """One row per model x provider: n, sent, ok, rates, percentiles, tokens, money, pass counts.

    Percentile columns are ``<metric>_<p05|q1|median|q3|p90|p95|p99>`` for ttft, e2e
    and decode (tokens/s); money stays DECIMAL; ``cost_per_request_usd`` is billed
    USD over requests sent, ``cost_per_1k_usd`` the same x 1000. ``sketched`` is true
    when the percentiles come from the per-run sketches (``bench.results.aggregates``: within
    0.5 %; every count, rate, token and money figure stays exact), false when exact.
    """
    sketched = aggregates.plan(store, f, min_rows)
    if sketched:
        frame = aggregates.group_frame(store, f, BOX_QUANTILES)
    else:
        params = f.params() | {"finished": sorted(FINISHED_OUTCOMES), "qs": BOX_QUANTILES}
        frame = store.query(_GROUP_STATS.format(prov=f.prov, where=f.where()), params)
    if frame.is_empty():
        return frame
    frame = frame.with_columns(pl.lit(sketched).alias("sketched"))
    cols = []
    for prefix in _METRIC_PREFIX.values():
        for i, name in enumerate(BOX_NAMES):
            cols.append(pl.col(f"{prefix}_q").list.get(i, null_on_oob=True).alias(f"{prefix}_{name}"))
    sent = pl.col("sent")
    sent_dec = sent.cast(pl.Decimal(38, 0))  # money stays DECIMAL through the division
    out = frame.with_columns(cols).drop([f"{p}_q" for p in _METRIC_PREFIX.values()])
    return out.with_columns(
        pl.concat_str([pl.col("model"), pl.lit(" · "), pl.col("provider")]).alias("group"),
        pl.when(sent > 0).then((sent - pl.col("ok")) / sent).alias("error_rate"),
        pl.when(sent > 0).then(pl.col("rate_limited") / sent).alias("rate_limited_rate"),
        pl.when(pl.col("n_checked") > 0).then(pl.col("n_passed") / pl.col("n_checked")).alias("pass_rate"),
        pl.when(sent > 0).then(pl.col("billed_usd") / sent_dec).alias("cost_per_request_usd"),
        pl.when(sent > 0).then(pl.col("list_usd") / sent_dec).alias("list_per_request_usd"),
    ).with_columns(
        (pl.col("cost_per_request_usd") * 1000).alias("cost_per_1k_usd"),
        (pl.col("list_per_request_usd") * 1000).alias("list_per_1k_usd"),
    )


def box_stats(groups: pl.DataFrame, metric: str) -> pl.DataFrame:
    """The box-plot columns of one metric (group, model, provider, n, p05..p95) from group_stats."""
    prefix = _METRIC_PREFIX[_metric(metric)]
    if groups.is_empty():
        return pl.DataFrame(schema={"group": pl.String, "model": pl.String, "n": pl.Int64})
    return groups.select(
        "group", "model", "provider", pl.col(f"n_{prefix}").alias("n"),
        *[pl.col(f"{prefix}_{name}").alias(name) for name in ("p05", "q1", "median", "q3", "p95")],
    )


def rates(groups: pl.DataFrame) -> pl.DataFrame:
    """group, sent, error_rate, rate_limited_rate (over requests sent)."""
    if groups.is_empty():
        return pl.DataFrame(schema={"group": pl.String, "sent": pl.Int64, "error_rate": pl.Float64,
                                    "rate_limited_rate": pl.Float64})
    return groups.select("group", "sent", "error_rate", "rate_limited_rate")


def cost_frame(groups: pl.DataFrame) -> pl.DataFrame:
    """Per group USD per request and per 1,000 requests, billed and list, as floats for charts."""
    if groups.is_empty():
        return pl.DataFrame(schema={"group": pl.String, "billed_per_1k_usd": pl.Float64,
                                    "list_per_1k_usd": pl.Float64, "sent": pl.Int64})
    return groups.select(
        "group", "model", "sent",
        pl.col("cost_per_1k_usd").cast(pl.Float64).alias("billed_per_1k_usd"),
        pl.col("list_per_1k_usd").cast(pl.Float64).alias("list_per_1k_usd"),
    )


# ------------------------------------------------------------------- percentile CIs
@functools.lru_cache(maxsize=4096)
def ci_ranks(n: int, q: float, level: float = 0.95) -> tuple[int, int] | None:
    """``bench.results.stats.order_statistic_ranks`` in O(sqrt(n)): only the binomial's bulk is summed.

    Ranks more than ~9 standard deviations from n*q carry < 1e-18 of the mass,
    far below the 1e-12 tolerance the exact version uses, so the result is the same.
    """
    if n <= 2000:
        return stats.order_statistic_ranks(n, q, level)
    p = q / 100
    sd = math.sqrt(n * p * (1 - p))
    lo_k = max(0, math.floor(n * p - 9 * sd))
    hi_k = min(n, math.ceil(n * p + 9 * sd))
    log_p, log_q = math.log(p), math.log1p(-p)
    head = math.lgamma(n + 1)
    tail, eps = (1 - level) / 2, 1e-12
    total, lower, upper = 0.0, None, None
    for k in range(lo_k, hi_k + 1):
        total += math.exp(head - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * log_p + (n - k) * log_q)
        if total <= tail + eps:
            lower = k
        if upper is None and total >= 1 - tail - eps:
            upper = k
    if lower is None or upper is None or upper + 1 > n:
        return None
    return lower + 1, upper + 1


_CI_VALUES = """
WITH cur AS (
    SELECT {metric} AS x, list_position($keys, model || chr(31) || {prov}) AS gi
    FROM requests WHERE {where} AND outcome = 'ok' AND {metric} IS NOT NULL
), g AS (
    SELECT gi, list_sort(list(x)) AS xs FROM cur
    WHERE gi IS NOT NULL AND len($ranks[gi]) > 0 GROUP BY gi
)
SELECT gi, list_select(xs, $ranks[gi]) AS vals FROM g
"""


def percentile_table(store: Store, f: Filters, metric: str, counts: pl.DataFrame,
                     min_rows: int | None = None) -> pl.DataFrame:
    """p50/p90/p95/p99 of ``metric`` per group with 95 % order-statistic intervals.

    ``counts`` has group, model, provider, n (ok rows with the metric) and the
    point estimates p50..p99 (from group_stats). The interval ranks come from
    ``ci_ranks`` (exact, as ``bench.results.stats.percentile_ci``); one query sorts each
    group's values inside DuckDB and returns only the values at those ranks.
    "n too small" leaves the bounds empty, as the CLI does. For selections the
    aggregates answer (``bench.results.aggregates.plan``) the values at those ranks are read
    from the merged sketches instead (within 0.5 %; the ranks stay exact).
    """
    metric = _metric(metric)
    ranks: list[list[int]] = []
    for row in counts.iter_rows(named=True):
        wanted: list[int] = []
        for q in CI_PERCENTILES:
            r = ci_ranks(int(row["n"]), q) if row["n"] else None
            wanted += list(r) if r else []
        ranks.append(wanted)
    values: dict[int, list[float]] = {}
    if any(ranks) and aggregates.plan(store, f, min_rows):
        sk = aggregates.sketches(store, f, (metric,))
        for gi, (m, p, wanted) in enumerate(zip(counts["model"], counts["provider"], ranks), start=1):
            s = sk.get((m, p, metric))
            if wanted and s is not None and s.n == counts["n"][gi - 1]:
                values[gi] = [s.at(r - 1) for r in wanted]
    elif any(ranks):
        keys = [m + SEP + p for m, p in zip(counts["model"], counts["provider"])]
        sql = _CI_VALUES.format(metric=metric, prov=f.prov, where=f.where())
        frame = store.query(sql, f.params() | {"keys": keys, "ranks": ranks})
        values = {int(r["gi"]): list(r["vals"]) for r in frame.iter_rows(named=True)}
    out = []
    for gi, row in enumerate(counts.iter_rows(named=True), start=1):
        rec: dict[str, Any] = {"group": row["group"], "model": row["model"],
                               "provider": row["provider"], "n": row["n"]}
        got = iter(values.get(gi, []))
        for q in CI_PERCENTILES:
            has = bool(row["n"]) and ci_ranks(int(row["n"]), q) is not None and gi in values
            rec[f"p{q}"] = row.get(f"p{q}")
            rec[f"p{q}_ci_lo"] = next(got) if has else None
            rec[f"p{q}_ci_hi"] = next(got) if has else None
        out.append(rec)
    schema = {"group": pl.String, "model": pl.String, "provider": pl.String, "n": pl.Int64}
    for q in CI_PERCENTILES:
        schema |= {f"p{q}": pl.Float64, f"p{q}_ci_lo": pl.Float64, f"p{q}_ci_hi": pl.Float64}
    return pl.DataFrame(out, schema=schema)


def percentile_counts(groups: pl.DataFrame, metric: str) -> pl.DataFrame:
    """The ``counts`` argument of percentile_table, cut from group_stats."""
    prefix = _METRIC_PREFIX[_metric(metric)]
    if groups.is_empty():
        return pl.DataFrame(schema={"group": pl.String, "model": pl.String, "provider": pl.String,
                                    "n": pl.Int64})
    return groups.select(
        "group", "model", "provider", pl.col(f"n_{prefix}").alias("n"),
        pl.col(f"{prefix}_median").alias("p50"), pl.col(f"{prefix}_p90").alias("p90"),
        pl.col(f"{prefix}_p95").alias("p95"), pl.col(f"{prefix}_p99").alias("p99"),
    )


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


# ------------------------------------------------------------------- cost x latency frontier
def pareto_points(groups: pl.DataFrame, metric: str = "ttft_ms") -> pl.DataFrame:
    """Cost per request vs p50 latency per group; ``on_frontier`` marks the non-dominated ones.

    A group is on the frontier when no other group is at least as cheap and at
    least as fast and strictly better in one of the two.
    """
    prefix = _METRIC_PREFIX[_metric(metric)]
    if groups.is_empty():
        return pl.DataFrame(schema={"group": pl.String, "p50_ms": pl.Float64,
                                    "cost_per_request_usd": pl.Float64, "on_frontier": pl.Boolean})
    pts = groups.select(
        "group", "model", "provider", pl.col("ok").alias("n_ok"), "pass_rate",
        pl.col(f"{prefix}_median").alias("p50_ms"),
        pl.col("cost_per_request_usd").cast(pl.Float64),
    )
    xs, ys = pts["p50_ms"].to_list(), pts["cost_per_request_usd"].to_list()
    flags = []
    for i, (x, y) in enumerate(zip(xs, ys)):
        if x is None or y is None:
            flags.append(False)
            continue
        dominated = any(
            j != i and xj is not None and yj is not None and xj <= x and yj <= y and (xj < x or yj < y)
            for j, (xj, yj) in enumerate(zip(xs, ys))
        )
        flags.append(not dominated)
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
    """Totals over the selected groups: requests, ok, error and 429 rates (over sent), billed USD."""
    sent, ok = int(groups["sent"].sum()), int(groups["ok"].sum())
    billed = groups["billed_usd"]
    return {
        "requests": int(groups["n"].sum()), "ok": ok, "sent": sent,
        "error_rate": (sent - ok) / sent if sent else None,
        "rate_limited_rate": int(groups["rate_limited"].sum()) / sent if sent else None,
        "billed_usd": None if billed.null_count() == billed.len() else billed.sum(),
    }


def headroom_usd(*amounts: Decimal | None) -> Decimal | None:
    """What is left to spend: the smallest of the known amounts (key limit, account balance)."""
    known = [a for a in amounts if a is not None]
    return min(known) if known else None


def provider_comparison(groups: pl.DataFrame, ttft: pl.DataFrame, e2e: pl.DataFrame) -> pl.DataFrame:
    """One model's providers side by side: p50 TTFT and e2e with CIs, plus each provider's rates.

    ``ttft``/``e2e`` are percentile_table frames for that model; ``groups`` its group_stats.
    """
    parts = [t.select("provider", pl.lit(label).alias("metric"), pl.col("p50").alias("p50_ms"),
                      pl.col("p50_ci_lo").alias("ci_lo_ms"), pl.col("p50_ci_hi").alias("ci_hi_ms"), "n")
             for t, label in ((ttft, "TTFT"), (e2e, "end-to-end"))]
    return pl.concat(parts).join(groups.select("provider", "sent", "error_rate", "rate_limited_rate"),
                                 on="provider", how="left")


def advertised_vs_measured(served: pl.DataFrame, endpoints: Any) -> pl.DataFrame:
    """Measured TTFT p50 per served-by provider next to each endpoint's ``latency_last_30m.p50``.

    ``served`` is group_stats with provider_by="served" for one model; ``endpoints`` a
    ``bench.api.catalog.ModelEndpoints`` (or None when it could not be loaded).
    """
    rows: list[dict[str, Any]] = [
        {"provider": r["provider"], "source": "measured TTFT p50", "ms": r["ttft_median"], "n": r["ok"]}
        for r in served.iter_rows(named=True)
    ]
    for e in endpoints.endpoints if endpoints is not None else []:
        rows.append({"provider": e.provider_name or e.tag or "?", "source": "advertised p50 (last 30 min)",
                     "ms": _float((e.latency_last_30m or {}).get("p50")), "n": None})
    return pl.DataFrame(rows, schema={"provider": pl.String, "source": pl.String, "ms": pl.Float64,
                                      "n": pl.Int64})

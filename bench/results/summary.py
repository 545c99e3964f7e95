"""The one summary: per model x provider, computed in DuckDB over ``requests_current``.

Every view that shows a count, a percentile, tokens or money of a group reads it: ``orbench
show`` and ``run``'s table, the CI gates, ``export --summary``, ``orbench decide``, the HTML
report and every dashboard page. Each field is defined once, in the table of
``bench.results.summary_fields`` (name, unit, derivation; METRICS.md "Summary fields"): it gives
this module's SQL its aggregates, an empty summary its schema, and mypy ``SummaryRow``. Everything
is computed over the current row of each planned request (``requests_current``), warm-ups left
out; ``derive`` finishes the fields the SQL's sums and counts give (rates, per-request money,
pass-rate intervals).

Two groupings: ``by="target"`` (model x provider variant x endpoint, the CLI's, labelled
``model [variant]``, with a TOTAL row) and ``by="provider"`` (model x the provider column the
``Filters`` pick, the dashboard's, labelled ``model · provider``). Money stays ``Decimal``.

Large dashboard selections of ended runs are answered from the per-run aggregates of m011
(``bench.results.aggregates``): every count, token and money field stays exact; percentiles come from
sketches (within 0.5 %). ``summarize_frame`` runs the same SQL over a polars frame (``decide``,
which filters pooled rows in memory). SQL text is fixed; identifiers come from the whitelists
below, values are parameters.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any, cast

import duckdb
import polars as pl

from bench.records import FINISHED_OUTCOMES
from bench.results import stats
from bench.results.filters import PROVIDER_COLUMNS as PROVIDER_COLUMNS
from bench.results.filters import Filters as Filters
from bench.results.report import current_rows
from bench.results.summary_fields import (
    CI_PERCENTILES,
    MONEY_FIELDS,
    QUANTILES,
    SUMMARY_METRICS,
    SummaryRow,
    aggregates_sql,
    empty_schema,
    metric_field,
)
from bench.store.connection import DUCKDB_CONFIG

EXACT_ONLY = 2**62
"""A ``min_rows`` no selection reaches: always the exact per-request queries."""
_SEP = "\x1f"  # joins the key columns into one group key inside SQL



def _keys(by: str, f: Filters) -> list[tuple[str, str]]:
    """(field, SQL expression) of the group keys."""
    if by == "target":
        return [("model", "model"), ("provider_variant", "provider_variant"), ("endpoint", "endpoint")]
    if by == "provider":
        return [("model", "model"), ("provider", f.prov)]
    raise ValueError(f"summary: unknown grouping {by!r}")


def _quantiles_sql() -> str:
    """Each metric's percentiles as one list (``derive`` spreads it over the percentile fields)."""
    return ",\n    ".join(f"quantile_cont({col}, $qs) FILTER (WHERE _timed) AS _q_{prefix}"
                          for col, prefix, _ in SUMMARY_METRICS)


_SUMMARY = """
WITH cur AS (
    SELECT *, {key_cols},
        list_contains($finished, outcome) AS _sent,
        coalesce(outcome = 'ok', false) AS _ok,
        coalesce(outcome = 'ok', false) AND NOT ($exclude_cold AND coalesce(conn_reused = false, false)) AS _timed
    FROM {source} WHERE {where}
)
SELECT {key_names}, {is_total} AS _total,
    {aggregates},
    {quantiles}
FROM cur GROUP BY {group_by} ORDER BY _total, {order}
"""


_AGGREGATES = aggregates_sql()


def _sql(by: str, f: Filters, source: str, total: bool) -> str:
    keys = _keys(by, f)
    names = [f"_k{i}" for i in range(len(keys))]
    order = "min(run_id), min(request_idx)" if by == "target" else ", ".join(names)
    return _SUMMARY.format(
        key_cols=", ".join(f"{expr} AS {n}" for n, (_, expr) in zip(names, keys)),
        key_names=", ".join(f"{n} AS {field}" for n, (field, _) in zip(names, keys)),
        is_total=f"grouping({names[0]}) = 1" if total else "false",
        group_by=f"GROUPING SETS (({', '.join(names)}), ())" if total else ", ".join(names),
        order=order, aggregates=_AGGREGATES, quantiles=_quantiles_sql(), source=source,
        where=f.where())


def _params(f: Filters, exclude_cold: bool) -> dict[str, Any]:
    return f.params() | {"finished": sorted(FINISHED_OUTCOMES), "qs": [q / 100 for q in QUANTILES],
                         "exclude_cold": exclude_cold}


# ------------------------------------------------------------------- the entry points
def summarize(store: Any, f: Filters, *, by: str = "provider", total: bool = False,
              exclude_cold: bool = False, cis: Sequence[str] = (), min_rows: int | None = None) -> list[SummaryRow]:
    """One record per group (and a TOTAL record last when ``total``), every field derived.

    ``cis``: metrics (``ttft_ms``, ...) whose p50/p90/p95/p99 get 95 % order-statistic intervals
    (``<prefix>_p50_ci_lo<unit>``, ...). ``exclude_cold`` leaves ok requests that opened a new
    connection out of the latency percentiles (not out of n or money). ``min_rows``: the size
    from which ended runs are read from their aggregates (``bench.results.aggregates.plan``; ``EXACT_ONLY``
    never); only the dashboard grouping without a total or cold exclusion can be.
    """
    from bench.results import aggregates

    sketched = by == "provider" and not total and not exclude_cold and aggregates.plan(store, f, min_rows)
    if sketched:
        raw = aggregates.group_frame(store, f, [q / 100 for q in QUANTILES]).to_dicts()
    else:
        raw = store.query(_sql(by, f, "requests_current", total), _params(f, exclude_cold)).to_dicts()
    if total and all(r["_total"] for r in raw) and not any(r["planned"] for r in raw):
        return []  # GROUPING SETS answers an empty selection with a TOTAL of nothing
    rows = [derive(r, by, exclude_cold, sketched) for r in raw]
    for metric in cis:
        add_cis(store, f, rows, metric, by=by, exclude_cold=exclude_cold)
    return typed(rows)


def run_summary(store: Any, run_id: str, exclude_cold: bool = False) -> list[SummaryRow]:
    """One run per model x provider variant x endpoint plus a TOTAL row last (the CLI's summary);
    a run with conversations also gets their fields (bench.results.conversations)."""
    from bench.results import conversations

    rows = summarize(store, Filters((run_id,)), by="target", total=True, exclude_cold=exclude_cold,
                     cis=("ttft_ms",), min_rows=EXACT_ONLY)
    return conversations.attach(rows, conversations.turn_rows(store, [run_id]))


def summarize_frame(frame: pl.DataFrame, *, by: str = "target", total: bool = False) -> list[SummaryRow]:
    """``summarize`` over per-request rows in memory (``Store.requests_frame`` of one or more runs),
    the same SQL on an in-memory DuckDB: the frame's newest row per request counts, warm-ups never."""
    if frame.is_empty() or "run_id" not in frame.columns:
        return []
    rows = current_rows(frame, include_warmup=True)
    f = Filters(tuple(sorted(set(rows["run_id"].to_list()))))
    con = duckdb.connect(":memory:", config=DUCKDB_CONFIG)  # no extension downloads, as the store
    try:
        con.register("_orbench_rows", rows)
        raw = con.sql(_sql(by, f, "_orbench_rows", total), params=_params(f, False)).pl().to_dicts()
    finally:
        con.close()
    if total and not any(r["planned"] for r in raw):
        return []
    return typed([derive(r, by, False, False) for r in raw])


def typed(rows: list[dict[str, Any]]) -> list[SummaryRow]:
    """``derive``'s records as what they are: every key is a ``FIELDS`` name (tests/test_summary.py)."""
    return cast(list[SummaryRow], rows)


def frame(records: Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    """The records as a polars frame, money as Decimal(38,18) (an empty frame keeps the columns)."""
    schema: dict[str, Any] = {name: pl.Decimal(38, 18) for name in MONEY_FIELDS}
    if not records:
        return pl.DataFrame(schema=empty_schema())
    cols = list(records[0])
    overrides = {c: schema[c] for c in cols if c in schema}
    return pl.DataFrame(records, schema_overrides=overrides, infer_schema_length=None)


# ------------------------------------------------------------------- derived fields
def derive(raw: dict[str, Any], by: str, exclude_cold: bool, sketched: bool) -> dict[str, Any]:
    """Every field from the raw counts and sums of one group (``summary_fields.FIELDS``)."""
    row: dict[str, Any] = {}
    total = bool(raw.pop("_total", False))
    if by == "target":
        row.update(model="TOTAL", provider_variant="", endpoint="", group="TOTAL") if total else row.update(
            model=raw["model"], provider_variant=raw["provider_variant"], endpoint=raw["endpoint"],
            group=f"{raw['model']} [{raw['provider_variant']}]")
    else:
        row.update(model=raw["model"], provider=raw["provider"], group=f"{raw['model']} · {raw['provider']}")
    n, ok, planned = int(raw["n"]), int(raw["ok"]), int(raw["planned"])
    cost, listed = raw["cost_usd"], raw["list_cost_usd"]
    row.update({
        "planned": planned, "n": n, "not_sent": planned - n, "ok": ok,
        "rate_limited": int(raw["rate_limited"]),
        "error_rate": (n - ok) / n if n else None,
        "rate_limited_rate": int(raw["rate_limited"]) / n if n else None,
        "retries_429": raw["retries_429"],
        "cold_connections": raw["cold_connections"],
        "cold_excluded": bool(exclude_cold and raw["cold_connections"]),
        "fresh_connections": raw["fresh_connections"],
    })
    for _, prefix, unit in SUMMARY_METRICS:
        row[f"n_{prefix}"] = int(raw[f"n_{prefix}"] or 0)
        qs = raw.get(f"_q_{prefix}") or [None] * len(QUANTILES)
        for q, v in zip(QUANTILES, qs):
            row[metric_field(prefix, q, unit)] = v
    row["small_n"] = row["n_ttft"] < stats.min_n_for(99)
    row.update({
        "prompt_tokens": raw["prompt_tokens"], "completion_tokens": raw["completion_tokens"],
        "cached_tokens": raw["cached_tokens"],
        "ok_prompt_tokens": raw["ok_prompt_tokens"], "ok_completion_tokens": raw["ok_completion_tokens"],
        "token_source": ",".join(raw["token_source"] or []),
        "cost_usd": cost, "n_billed": int(raw["n_billed"]),
        "cost_per_request_usd": cost / n if cost is not None and n else None,
        "cost_per_1k_requests_usd": cost * 1000 / n if cost is not None and n else None,
        "list_cost_usd": listed, "n_list": int(raw["n_list"]),
        "list_cost_per_request_usd": listed / n if listed is not None and n else None,
        "list_cost_per_1k_requests_usd": listed * 1000 / n if listed is not None and n else None,
        "billed_minus_list_usd": cost - listed if cost is not None and listed is not None else None,
        "providers": ",".join(raw["providers"] or []),
    })
    checked, passed = int(raw["n_checked"]), int(raw["n_passed"])
    row.update(n_checked=checked, n_passed=passed)
    if checked:
        lo, hi = stats.wilson_interval(passed, checked)
        row.update(pass_rate=passed / checked, pass_rate_ci_lo=lo, pass_rate_ci_hi=hi,
                   cost_per_correct_usd=cost / passed if cost is not None and passed else None,
                   e2e_p50_correct_ms=raw["e2e_p50_correct_ms"])
    else:
        row.update(pass_rate=None, pass_rate_ci_lo=None, pass_rate_ci_hi=None, cost_per_correct_usd=None,
                   e2e_p50_correct_ms=None)
    row["sketched"] = sketched
    return row


# ------------------------------------------------------------------- percentile intervals
_CI_VALUES = """
WITH cur AS (
    SELECT {metric} AS x, list_position($keys, {key}) AS gi
    FROM {source} WHERE {where} AND coalesce(outcome = 'ok', false) AND {metric} IS NOT NULL
        AND NOT ($exclude_cold AND coalesce(conn_reused = false, false))
), g AS (
    SELECT gi, list_sort(list(x)) AS xs FROM cur
    WHERE gi IS NOT NULL AND len($ranks[gi]) > 0 GROUP BY gi
)
SELECT gi, list_select(xs, $ranks[gi]) AS vals FROM g
"""


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


def _ci_ranks(n: int) -> list[int]:
    wanted: list[int] = []
    for q in CI_PERCENTILES:
        r = ci_ranks(n, q) if n else None
        wanted += list(r) if r else []
    return wanted


def _key_sql(by: str, f: Filters, total: bool) -> str:
    if total:
        return "''"
    return " || chr(31) || ".join(f"coalesce(CAST({expr} AS VARCHAR), '')" for _, expr in _keys(by, f))


def _group_key(row: dict[str, Any], by: str) -> str:
    return _SEP.join("" if row.get(k) is None else str(row[k]) for k, _ in _keys(by, Filters(())))


def _values_at_ranks(query: Any, f: Filters, by: str, rows: list[dict[str, Any]], metric: str,
                     exclude_cold: bool, source: str, total: bool) -> dict[str, list[float]]:
    """The values at each group's interval ranks, one query (``query(sql, params)``)."""
    prefix = next(p for c, p, _ in SUMMARY_METRICS if c == metric)
    picked = [r for r in rows if (r["group"] == "TOTAL") == total]
    ranks = [_ci_ranks(r[f"n_{prefix}"]) for r in picked]
    if not any(ranks):
        return {}
    keys = [""] if total else [_group_key(r, by) for r in picked]
    sql = _CI_VALUES.format(metric=metric, key=_key_sql(by, f, total), source=source, where=f.where())
    found = query(sql, f.params() | {"keys": keys, "ranks": ranks, "exclude_cold": exclude_cold})
    return {picked[int(r["gi"]) - 1]["group"]: list(r["vals"]) for r in found.iter_rows(named=True)}


def _set_ci(row: dict[str, Any], prefix: str, unit: str, q: int, values: list[float] | None) -> None:
    """Fill ``<prefix>_p<q>_ci_lo/hi<unit>`` from the values at the ranks (None: n too small)."""
    n = row[f"n_{prefix}"]
    lo = hi = None
    if values is not None and n:
        it = iter(values)
        for p in CI_PERCENTILES:
            if ci_ranks(n, p) is None:
                continue
            a, b = next(it), next(it)
            if p == q:
                lo, hi = a, b
    row[f"{prefix}_p{q}_ci_lo{unit}"], row[f"{prefix}_p{q}_ci_hi{unit}"] = lo, hi


def add_cis(store: Any, f: Filters, rows: list[dict[str, Any]], metric: str, *, by: str = "provider",
            exclude_cold: bool = False) -> None:
    """Add 95 % order-statistic intervals of p50/p90/p95/p99 of ``metric`` to every row.

    The ranks are exact (``ci_ranks``, as ``bench.results.stats.percentile_ci``); one query sorts
    each group's values inside DuckDB and returns only the values at those ranks, or, for rows
    answered from the aggregates, the merged sketches are read at them (within 0.5 %).
    "n too small" leaves the bounds None.
    """
    from bench.results import aggregates

    _, prefix, unit = next(m for m in SUMMARY_METRICS if m[0] == metric)
    if any(r.get("sketched") for r in rows):
        sk = aggregates.sketches(store, f, (metric,))
        values: dict[str, list[float]] = {}
        for r in rows:
            s = sk.get((r["model"], r["provider"], metric))
            if s is not None and s.n == r[f"n_{prefix}"]:
                values[r["group"]] = [s.at(k - 1) for k in _ci_ranks(s.n)]
    else:
        values = {}
        for total in (False, True):
            values |= _values_at_ranks(store.query, f, by, rows, metric, exclude_cold, "requests_current", total)
    for r in rows:
        for q in CI_PERCENTILES:
            _set_ci(r, prefix, unit, q, values.get(r["group"]))

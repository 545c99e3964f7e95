"""The summary's fields, one table: name, unit, how each is derived (METRICS.md "Summary fields").

``FIELDS`` drives bench.results.summary: the aggregates its SQL selects (``Field.sql``), the
schema of an empty summary frame (``empty_schema``) and the names ``derive`` must produce (a test
holds it to that). ``SummaryRow`` is the same table as a ``TypedDict``, so mypy knows every key
(``row["ttft_p95_ms"]``) and refuses a misspelled one; tests/test_summary.py fails when the two
disagree. Percentile fields are generated from ``METRICS`` x ``QUANTILES`` (and ``CI_PERCENTILES``).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypedDict

import polars as pl

from bench.store.runs import FRESH_CONNECTION_SQL

SUMMARY_METRICS = (("ttft_ms", "ttft", "_ms"), ("e2e_ms", "e2e", "_ms"), ("decode_tps", "decode_tps", ""),
                   ("tpot_ms", "tpot", "_ms"))
"""Per-request measures summarized: (column, field prefix, unit suffix): ``ttft_p95_ms``, ``decode_tps_p50``."""
QUANTILES = (5, 25, 50, 75, 90, 95, 99)
"""The percentiles of every metric (a box plot's p05, quartiles, median, and the tails)."""
CI_PERCENTILES = (50, 90, 95, 99)
"""The percentiles that get 95 % order-statistic intervals when asked (``summarize(cis=...)``)."""

MONEY = pl.Decimal(38, 18)


@dataclass(frozen=True)
class Field:
    """One summary field. ``sql``: the DuckDB aggregate that computes it (or the raw value
    ``derive`` finishes) over ``cur``, whose ``_sent``/``_ok``/``_timed`` flags the query sets."""

    name: str
    unit: str  # label, count, ratio, ms, tokens/s, tokens, USD, flag
    derivation: str
    dtype: Any  # the polars dtype of its column
    sql: str | None = None
    keys: str = ""  # "target" or "provider": a group key of that grouping only


def metric_field(prefix: str, q: int, unit: str) -> str:
    """``ttft``, 95, ``_ms`` -> ``ttft_p95_ms``; ``decode_tps``, 5, "" -> ``decode_tps_p05``."""
    return f"{prefix}_p{q:02d}{unit}"


def _metric_unit(unit: str) -> str:
    return "ms" if unit == "_ms" else "tokens/s"


def _percentiles() -> list[Field]:
    out = []
    for col, prefix, unit in SUMMARY_METRICS:
        out.append(Field(f"n_{prefix}", "count", f"ok requests with a {col} (cold ones left out with exclude_cold)",
                         pl.Int64, f"count({col}) FILTER (WHERE _timed)"))
        out += [Field(metric_field(prefix, q, unit), _metric_unit(unit), f"p{q} of {col} over those requests",
                      pl.Float64) for q in QUANTILES]
    return out


def _intervals() -> list[Field]:
    return [Field(f"{prefix}_p{q}_ci_{side}{unit}", _metric_unit(unit),
                  f"95 % order-statistic interval of p{q} of {col} ({side}); only for the metrics asked",
                  pl.Float64)
            for col, prefix, unit in SUMMARY_METRICS for q in CI_PERCENTILES for side in ("lo", "hi")]


FIELDS: tuple[Field, ...] = (
    Field("model", "label", "the model id asked for, or TOTAL", pl.String),
    Field("provider_variant", "label", "the provider variant (by='target')", pl.String, keys="target"),
    Field("endpoint", "label", "the endpoint name (by='target')", pl.String, keys="target"),
    Field("provider", "label", "the provider column the Filters pick (by='provider')", pl.String, keys="provider"),
    Field("group", "label", "'model [variant]' or 'model · provider'", pl.String),
    Field("planned", "count", "planned measured requests (rows of requests_current, warm-ups excluded)",
          pl.Int64, "count(*)"),
    Field("n", "count", "requests sent: an outcome in FINISHED_OUTCOMES", pl.Int64,
          "count(*) FILTER (WHERE _sent)"),
    Field("not_sent", "count", "planned - n", pl.Int64),
    Field("ok", "count", "requests that ended ok", pl.Int64, "count(*) FILTER (WHERE _ok)"),
    Field("rate_limited", "count", "requests that ended rate_limited", pl.Int64,
          "count(*) FILTER (WHERE outcome = 'rate_limited')"),
    Field("error_rate", "ratio", "(n - ok) / n", pl.Float64),
    Field("rate_limited_rate", "ratio", "rate_limited / n", pl.Float64),
    Field("retries_429", "count", "429 answers retried, summed", pl.Int64, "CAST(sum(retries_429) AS BIGINT)"),
    Field("cold_connections", "count", "ok requests sent on a new connection", pl.Int64,
          "count(*) FILTER (WHERE _ok AND conn_reused = false)"),
    Field("fresh_connections", "count", "sent requests whose pooled connection the server had closed, so they "
          "went out on a fresh one (retry_reasons closed_idle or dropped)", pl.Int64,
          f"count(*) FILTER (WHERE _sent AND {FRESH_CONNECTION_SQL})"),
    Field("cold_excluded", "flag", "exclude_cold and some cold request was left out of the percentiles",
          pl.Boolean),
    *_percentiles(),
    Field("small_n", "flag", "n_ttft below what a p99 needs (stats.min_n_for(99))", pl.Boolean),
    Field("prompt_tokens", "tokens", "sum over every row with usage, failed ones too", pl.Int64,
          "CAST(sum(prompt_tokens) AS BIGINT)"),
    Field("completion_tokens", "tokens", "sum over every row with usage", pl.Int64,
          "CAST(sum(completion_tokens) AS BIGINT)"),
    Field("cached_tokens", "tokens", "sum over every row with usage", pl.Int64, "CAST(sum(cached_tokens) AS BIGINT)"),
    Field("ok_prompt_tokens", "tokens", "sum over ok rows (for speed)", pl.Int64,
          "CAST(sum(prompt_tokens) FILTER (WHERE _ok) AS BIGINT)"),
    Field("ok_completion_tokens", "tokens", "sum over ok rows (for speed)", pl.Int64,
          "CAST(sum(completion_tokens) FILTER (WHERE _ok) AS BIGINT)"),
    Field("token_source", "label", "the token sources seen, comma-joined", pl.String,
          "list_sort(list(DISTINCT token_source) FILTER (WHERE token_source IS NOT NULL))"),
    Field("cost_usd", "USD", "reported cost summed over every row", MONEY, "CAST(sum(cost_usd) AS DECIMAL(38,18))"),
    Field("n_billed", "count", "rows with a reported cost", pl.Int64, "count(cost_usd)"),
    Field("cost_per_request_usd", "USD", "cost_usd / n (failed requests can be billed)", MONEY),
    Field("cost_per_1k_requests_usd", "USD", "cost_usd * 1000 / n", MONEY),
    Field("list_cost_usd", "USD", "catalog price x tokens, summed", MONEY,
          "CAST(sum(list_cost_usd) AS DECIMAL(38,18))"),
    Field("n_list", "count", "rows with a list cost", pl.Int64, "count(list_cost_usd)"),
    Field("list_cost_per_request_usd", "USD", "list_cost_usd / n", MONEY),
    Field("list_cost_per_1k_requests_usd", "USD", "list_cost_usd * 1000 / n", MONEY),
    Field("billed_minus_list_usd", "USD", "cost_usd - list_cost_usd", MONEY),
    Field("providers", "label", "the providers that answered, comma-joined", pl.String,
          "list_sort(list(DISTINCT provider) FILTER (WHERE provider IS NOT NULL))"),
    Field("n_checked", "count", "ok requests with a check verdict", pl.Int64, "count(passed) FILTER (WHERE _ok)"),
    Field("n_passed", "count", "ok requests that passed their checks", pl.Int64,
          "count(*) FILTER (WHERE _ok AND passed)"),
    Field("pass_rate", "ratio", "n_passed / n_checked", pl.Float64),
    Field("pass_rate_ci_lo", "ratio", "Wilson 95 % interval of pass_rate (lo)", pl.Float64),
    Field("pass_rate_ci_hi", "ratio", "Wilson 95 % interval of pass_rate (hi)", pl.Float64),
    Field("cost_per_correct_usd", "USD", "cost_usd / n_passed", MONEY),
    Field("e2e_p50_correct_ms", "ms", "median e2e_ms of ok requests that passed (None without checks)",
          pl.Float64, "quantile_cont(e2e_ms, 0.5) FILTER (WHERE _ok AND passed)"),
    Field("sketched", "flag", "answered from the per-run aggregates (percentiles within 0.5 %)", pl.Boolean),
    *_intervals(),
)
BY_NAME = {f.name: f for f in FIELDS}
MONEY_FIELDS = tuple(f.name for f in FIELDS if f.unit == "USD")


def aggregates_sql() -> str:
    """The SELECT list of the aggregates the table defines (``<sql> AS <name>``)."""
    return ",\n    ".join(f"{f.sql} AS {f.name}" for f in FIELDS if f.sql is not None)


def empty_schema() -> dict[str, Any]:
    """The columns of a summary with no group (the dashboard's grouping: by='provider')."""
    return {f.name: f.dtype for f in FIELDS if f.keys != "target"}


class SummaryRow(TypedDict, total=False):
    """One summary record (``FIELDS`` as a type; interval fields only for the metrics asked)."""

    model: str
    provider_variant: str
    endpoint: str
    provider: str
    group: str
    planned: int
    n: int
    not_sent: int
    ok: int
    rate_limited: int
    error_rate: float | None
    rate_limited_rate: float | None
    retries_429: int | None
    cold_connections: int
    fresh_connections: int
    cold_excluded: bool
    n_ttft: int
    ttft_p05_ms: float | None
    ttft_p25_ms: float | None
    ttft_p50_ms: float | None
    ttft_p75_ms: float | None
    ttft_p90_ms: float | None
    ttft_p95_ms: float | None
    ttft_p99_ms: float | None
    n_e2e: int
    e2e_p05_ms: float | None
    e2e_p25_ms: float | None
    e2e_p50_ms: float | None
    e2e_p75_ms: float | None
    e2e_p90_ms: float | None
    e2e_p95_ms: float | None
    e2e_p99_ms: float | None
    n_decode_tps: int
    decode_tps_p05: float | None
    decode_tps_p25: float | None
    decode_tps_p50: float | None
    decode_tps_p75: float | None
    decode_tps_p90: float | None
    decode_tps_p95: float | None
    decode_tps_p99: float | None
    n_tpot: int
    tpot_p05_ms: float | None
    tpot_p25_ms: float | None
    tpot_p50_ms: float | None
    tpot_p75_ms: float | None
    tpot_p90_ms: float | None
    tpot_p95_ms: float | None
    tpot_p99_ms: float | None
    small_n: bool
    prompt_tokens: int | None
    completion_tokens: int | None
    cached_tokens: int | None
    ok_prompt_tokens: int | None
    ok_completion_tokens: int | None
    token_source: str
    cost_usd: Decimal | None
    n_billed: int
    cost_per_request_usd: Decimal | None
    cost_per_1k_requests_usd: Decimal | None
    list_cost_usd: Decimal | None
    n_list: int
    list_cost_per_request_usd: Decimal | None
    list_cost_per_1k_requests_usd: Decimal | None
    billed_minus_list_usd: Decimal | None
    providers: str
    n_checked: int
    n_passed: int
    pass_rate: float | None
    pass_rate_ci_lo: float | None
    pass_rate_ci_hi: float | None
    cost_per_correct_usd: Decimal | None
    e2e_p50_correct_ms: float | None
    sketched: bool
    ttft_p50_ci_lo_ms: float | None
    ttft_p50_ci_hi_ms: float | None
    ttft_p90_ci_lo_ms: float | None
    ttft_p90_ci_hi_ms: float | None
    ttft_p95_ci_lo_ms: float | None
    ttft_p95_ci_hi_ms: float | None
    ttft_p99_ci_lo_ms: float | None
    ttft_p99_ci_hi_ms: float | None
    e2e_p50_ci_lo_ms: float | None
    e2e_p50_ci_hi_ms: float | None
    e2e_p90_ci_lo_ms: float | None
    e2e_p90_ci_hi_ms: float | None
    e2e_p95_ci_lo_ms: float | None
    e2e_p95_ci_hi_ms: float | None
    e2e_p99_ci_lo_ms: float | None
    e2e_p99_ci_hi_ms: float | None
    decode_tps_p50_ci_lo: float | None
    decode_tps_p50_ci_hi: float | None
    decode_tps_p90_ci_lo: float | None
    decode_tps_p90_ci_hi: float | None
    decode_tps_p95_ci_lo: float | None
    decode_tps_p95_ci_hi: float | None
    decode_tps_p99_ci_lo: float | None
    decode_tps_p99_ci_hi: float | None
    tpot_p50_ci_lo_ms: float | None
    tpot_p50_ci_hi_ms: float | None
    tpot_p90_ci_lo_ms: float | None
    tpot_p90_ci_hi_ms: float | None
    tpot_p95_ci_lo_ms: float | None
    tpot_p95_ci_hi_ms: float | None
    tpot_p99_ci_lo_ms: float | None
    tpot_p99_ci_hi_ms: float | None

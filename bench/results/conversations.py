"""What conversations cost, and what prompt caching saved: per model x provider, read-only.

A conversation's turns are request rows with a ``conversation_id`` and a ``turn`` (m017). Over the
current row of each planned turn (``requests_current``), warm-ups excluded (METRICS.md
"Conversations and caching"):

| field | definition |
|---|---|
| ``conversations`` | conversations planned |
| ``conversations_complete`` | those whose every turn ended ``ok`` |
| ``conversations_stopped`` | those stopped by a turn that did not end ``ok`` (later turns not sent) |
| ``cost_per_conversation_usd`` | billed ``cost_usd`` of every turn of a complete conversation, averaged over them |
| ``baseline_per_conversation_usd`` | the same turns' tokens at list price with nothing cached (computed, not run) |
| ``cache_discount_pct`` | 100 x (1 - billed / baseline), over the complete conversations |
| ``cache_hit_rate`` | ok turns with ``cached_tokens > 0`` / ok turns |
| ``switches`` | consecutive ok turns of a conversation served by different providers, summed |
| ``conversations_switched`` | conversations with at least one switch |
| ``cost_per_conversation_(un)switched_usd`` | mean cost of complete conversations with / without a switch |

By turn (``by_turn``): for each model x provider and turn number, the ok turns, their cache hit rate,
mean billed cost, and the TTFT median of cached and of uncached turns.

The baseline of a row is its ``list_cost_usd`` (catalog price x tokens, cache reads and writes at
their own prices, as ``bench.api.catalog.list_cost_usd``) with the cached and written tokens put
back at the prompt price of the run's catalog snapshot: the same tokens, nothing cached. A model
with no catalog row (a local endpoint) has no cache prices, so its baseline is its list cost.
Money stays ``Decimal``; SQL text is fixed and values are parameters.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, cast

import polars as pl

from bench.results.report import GROUP_COLS, current_rows
from bench.results.summary_fields import SummaryRow

SUMMARY_FIELDS = ("conversations", "conversations_complete", "conversations_stopped", "cost_per_conversation_usd",
                  "baseline_per_conversation_usd", "cache_discount_pct", "cache_hit_rate", "switches",
                  "conversations_switched", "cost_per_conversation_switched_usd",
                  "cost_per_conversation_unswitched_usd")
TURN_COLUMNS = ("run_id", "request_idx", "session", "is_warmup", "model", "provider_variant", "endpoint",
                "provider", "conversation_id", "turn", "outcome", "ttft_ms", "prompt_tokens", "cached_tokens",
                "cache_write_tokens", "cost_usd", "list_cost_usd")

_ROWS_SQL = """
SELECT r.run_id, r.request_idx, r.session, r.is_warmup, r.model, r.provider_variant, r.endpoint, r.provider,
    r.conversation_id, r.turn, r.outcome, r.ttft_ms, r.prompt_tokens, r.cached_tokens, r.cache_write_tokens,
    r.cost_usd, r.list_cost_usd,
    CAST(r.list_cost_usd
         + coalesce(r.cached_tokens, 0) * (p.prompt - coalesce(p.input_cache_read, p.prompt))
         + coalesce(r.cache_write_tokens, 0) * (p.prompt - coalesce(p.input_cache_write, p.prompt))
         AS DECIMAL(38,18)) AS baseline_usd
FROM requests_current AS r
JOIN runs AS u ON u.run_id = r.run_id
LEFT JOIN (SELECT snapshot_id, model_id, any_value(prompt) AS prompt, any_value(input_cache_read) AS input_cache_read,
                  any_value(input_cache_write) AS input_cache_write
           FROM catalog_prices WHERE provider IS NULL GROUP BY snapshot_id, model_id) AS p
    ON p.snapshot_id = u.catalog_snapshot_id AND p.model_id = r.model
WHERE list_contains($runs, r.run_id) AND r.conversation_id IS NOT NULL AND NOT r.is_warmup
ORDER BY r.run_id, r.model, r.provider_variant, r.endpoint, r.conversation_id, r.turn
"""


# ----------------------------------------------------------------- reading
def turn_rows(store: Any, run_ids: Sequence[str]) -> pl.DataFrame:
    """Every planned conversation turn of the runs (current row), with its no-cache ``baseline_usd``."""
    return store.query(_ROWS_SQL, {"runs": list(run_ids)})  # type: ignore[no-any-return]


def turns_of_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """The conversation turns of a per-request frame (``Store.requests_frame``; no baseline column)."""
    if frame.is_empty() or "conversation_id" not in frame.columns:
        return pl.DataFrame()
    rows = current_rows(frame)
    return rows.filter(pl.col("conversation_id").is_not_null())


# ----------------------------------------------------------------- per conversation
def per_conversation(turns: pl.DataFrame) -> list[dict[str, Any]]:
    """One record per (run, model x provider, conversation): its turns, cost, baseline and switches."""
    if turns.is_empty():
        return []
    out = []
    keys = ["run_id", *GROUP_COLS, "conversation_id"]
    for key, g in turns.sort("turn").group_by(keys, maintain_order=True):
        rows = g.to_dicts()
        ok = [r for r in rows if r["outcome"] == "ok"]
        served = [r["provider"] for r in ok if r["provider"]]
        baseline = [r.get("baseline_usd") for r in rows if r["outcome"] is not None]
        out.append({
            **dict(zip(keys, key)), "turns": len(rows), "turns_ok": len(ok),
            "complete": len(ok) == len(rows),
            "stopped": any(r["outcome"] not in (None, "ok") for r in rows),
            "cost_usd": _sum([r["cost_usd"] for r in rows]),
            "baseline_usd": None if "baseline_usd" not in g.columns or any(b is None for b in baseline)
            else _sum(baseline),
            "switches": sum(a != b for a, b in zip(served, served[1:])),
        })
    return out


def _sum(values: Sequence[Decimal | None]) -> Decimal | None:
    known = [v for v in values if v is not None]
    return sum(known, Decimal(0)) if known else None


def _mean(values: Sequence[Decimal]) -> Decimal | None:
    return sum(values, Decimal(0)) / len(values) if values else None


# ----------------------------------------------------------------- per model x provider
def summarize(turns: pl.DataFrame) -> list[dict[str, Any]]:
    """One record per model x provider variant x endpoint (the fields in the module docstring)."""
    convs = per_conversation(turns)
    out = []
    for key in dict.fromkeys(tuple(c[k] for k in GROUP_COLS) for c in convs):
        mine = [c for c in convs if tuple(c[k] for k in GROUP_COLS) == key]
        rows = turns.filter(*(pl.col(k) == v for k, v in zip(GROUP_COLS, key)))
        out.append({**dict(zip(GROUP_COLS, key)), **_fields(mine, rows)})
    return out


def _fields(convs: list[dict[str, Any]], rows: pl.DataFrame) -> dict[str, Any]:
    complete = [c for c in convs if c["complete"] and c["cost_usd"] is not None]
    billed = [c["cost_usd"] for c in complete]
    priced = [c for c in complete if c["baseline_usd"] is not None]
    billed_sum = sum((c["cost_usd"] for c in priced), Decimal(0))
    baseline_sum = sum((c["baseline_usd"] for c in priced), Decimal(0))
    ok = rows.filter(pl.col("outcome") == "ok")
    hits = ok.filter(pl.col("cached_tokens").fill_null(0) > 0).height
    switched = [c["cost_usd"] for c in complete if c["switches"]]
    unswitched = [c["cost_usd"] for c in complete if not c["switches"]]
    return {
        "conversations": len(convs),
        "conversations_complete": sum(c["complete"] for c in convs),
        "conversations_stopped": sum(c["stopped"] for c in convs),
        "cost_per_conversation_usd": _mean(billed),
        "baseline_per_conversation_usd": _mean([c["baseline_usd"] for c in priced]) if priced else None,
        "cache_discount_pct": float(100 * (1 - billed_sum / baseline_sum)) if priced and baseline_sum else None,
        "cache_hit_rate": hits / ok.height if ok.height else None,
        "switches": sum(c["switches"] for c in convs),
        "conversations_switched": sum(bool(c["switches"]) for c in convs),
        "cost_per_conversation_switched_usd": _mean(switched),
        "cost_per_conversation_unswitched_usd": _mean(unswitched),
    }


def conversation_costs(turns: pl.DataFrame) -> list[float]:
    """Billed cost of each complete conversation (``decide``'s interval of the mean), as floats."""
    return [float(c["cost_usd"]) for c in per_conversation(turns) if c["complete"] and c["cost_usd"] is not None]


def by_turn(turns: pl.DataFrame) -> list[dict[str, Any]]:
    """Per model x provider variant x endpoint and turn: ok turns, cache hit rate, mean cost, and the
    TTFT median of cached (``cached_tokens > 0``) and uncached ok turns."""
    if turns.is_empty():
        return []
    out = []
    ok = turns.filter(pl.col("outcome") == "ok")
    for key, g in ok.sort("turn").group_by([*GROUP_COLS, "turn"], maintain_order=True):
        hit = pl.col("cached_tokens").fill_null(0) > 0
        cached, uncached = g.filter(hit), g.filter(~hit)
        costs = [c for c in g["cost_usd"].to_list() if c is not None]
        out.append({
            **dict(zip([*GROUP_COLS, "turn"], key)), "n": g.height,
            "cache_hit_rate": cached.height / g.height,
            "cost_usd_mean": _mean(costs),
            "ttft_p50_cached_ms": _median(cached["ttft_ms"].to_list()),
            "ttft_p50_uncached_ms": _median(uncached["ttft_ms"].to_list()),
            "n_cached": cached.height, "n_uncached": uncached.height,
            "cached_tokens_mean": _fmean(g["cached_tokens"].to_list()),
        })
    return out


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def _fmean(values: list[int | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.fmean(known) if known else None


# ----------------------------------------------------------------- onto the summary
def attach(summary_rows: list[SummaryRow], turns: pl.DataFrame) -> list[SummaryRow]:
    """Add the conversation fields (``SUMMARY_FIELDS``) to summary rows keyed model x provider variant x
    endpoint (the TOTAL row gets them over every conversation); a run without conversations is
    returned unchanged. They sit beside ``SummaryRow``'s fields, read by name (gates, decide, the
    table's optional columns): a run without conversations has none of them."""
    if turns.is_empty():
        return summary_rows
    by_key = {tuple(r[k] for k in GROUP_COLS): r for r in summarize(turns)}
    total = _fields(per_conversation(turns), turns)
    for row in summary_rows:
        plain = cast(dict[str, Any], row)
        key = tuple(plain.get(k) for k in GROUP_COLS)
        found = total if plain.get("group") == "TOTAL" else by_key.get(key)
        plain.update({f: (found or {}).get(f) for f in SUMMARY_FIELDS})
    return summary_rows


def turn_frame(turns: pl.DataFrame) -> pl.DataFrame:
    """``by_turn`` as a frame for charts: a ``group`` label (``model [variant]``), money as float."""
    records = by_turn(turns)
    schema = {"group": pl.String, "turn": pl.Int64, "n": pl.Int64, "cache_hit_rate": pl.Float64,
              "cost_usd_mean": pl.Float64, "ttft_p50_cached_ms": pl.Float64, "ttft_p50_uncached_ms": pl.Float64}
    rows = [{"group": f"{r['model']} [{r['provider_variant']}]", "turn": r["turn"], "n": r["n"],
             "cache_hit_rate": r["cache_hit_rate"],
             "cost_usd_mean": None if r["cost_usd_mean"] is None else float(r["cost_usd_mean"]),  # drawing only
             "ttft_p50_cached_ms": r["ttft_p50_cached_ms"], "ttft_p50_uncached_ms": r["ttft_p50_uncached_ms"]}
            for r in records]
    return pl.DataFrame(rows, schema=schema)


def summary_frame(turns: pl.DataFrame) -> pl.DataFrame:
    """``summarize`` as a frame for tables: ``group`` first, money as Decimal."""
    rows = [{"group": f"{r['model']} [{r['provider_variant']}]", **r} for r in summarize(turns)]
    money = {f: pl.Decimal(38, 18) for f in SUMMARY_FIELDS if f.endswith("_usd")}
    return pl.DataFrame(rows, schema_overrides=money, infer_schema_length=None) if rows else pl.DataFrame()

"""Per-run summaries for ``show``, ``run``, ``export --summary``, gates and compare.

One run's rows are few enough (thousands) to aggregate in polars; percentiles
get order-statistic confidence intervals from ``bench.results.stats`` and every group
shows ``n``. Latency statistics use ``ok`` rows only; error and 429 rates sit
beside them. The newest row of each planned request counts (resume sessions).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import polars as pl

from bench.records import FINISHED_OUTCOMES
from bench.results import stats
from bench.results.gates import GateResult
from bench.store.runs import RunRecord
from bench.store.store import Store

GROUP_COLS = ["model", "provider_variant", "endpoint"]


def current_rows(frame: pl.DataFrame, include_warmup: bool = False) -> pl.DataFrame:
    """Newest row per (run_id, request_idx); warm-ups dropped unless asked for."""
    if frame.is_empty():
        return frame
    out = frame.sort("session").unique(subset=["run_id", "request_idx"], keep="last",
                                       maintain_order=True).sort("request_idx")
    if not include_warmup:
        out = out.filter(~pl.col("is_warmup"))
    return out


def _pct(values: list[float], q: float) -> float | None:
    return stats.percentile(values, q) if values else None


def _ci(values: list[float], q: float) -> tuple[float | None, float | None]:
    ci = stats.percentile_ci(values, q)
    if ci is None:
        return None, None
    return ci[0], ci[1]


def _dec_sum(values: list[Any]) -> Decimal | None:
    vals = [v for v in values if v is not None]
    return sum(vals, Decimal(0)) if vals else None


def summarize_group(g: pl.DataFrame, exclude_cold: bool = False) -> dict[str, Any]:
    n = g.height
    ok = g.filter(pl.col("outcome") == "ok")
    n_ok = ok.height
    finished = g.filter(pl.col("outcome").is_in(sorted(FINISHED_OUTCOMES)))
    n_fin = finished.height
    # A request on a cold connection carries its TCP+TLS connect inside TTFT (METRICS.md "Clocks").
    cold = ok.filter(pl.col("conn_reused").eq(False).fill_null(False)) if "conn_reused" in ok.columns else ok.head(0)
    timed = ok.filter(~pl.col("conn_reused").eq(False).fill_null(False)) if exclude_cold and cold.height else ok
    ttft = [v for v in timed["ttft_ms"].to_list() if v is not None]
    e2e = [v for v in timed["e2e_ms"].to_list() if v is not None]
    tpot = [v for v in timed["tpot_ms"].to_list() if v is not None]
    dtps = [v for v in timed["decode_tps"].to_list() if v is not None]
    costs = g["cost_usd"].to_list()
    list_costs = g["list_cost_usd"].to_list()
    cost_total = _dec_sum(costs)
    list_total = _dec_sum(list_costs)
    sent = n_fin
    row: dict[str, Any] = {
        "n": n, "sent": sent, "ok": n_ok,
        "error_rate": (n_fin - n_ok) / n_fin if n_fin else None,
        "rate_limited_rate": (finished.filter(pl.col("outcome") == "rate_limited").height / n_fin
                              if n_fin else None),
        "not_sent": n - n_fin,
        "retries_429": int(g["retries_429"].fill_null(0).sum()) if "retries_429" in g.columns else 0,
        "cold_connections": cold.height,
        "cold_excluded": bool(exclude_cold and cold.height),
        "ttft_p50_ms": _pct(ttft, 50), "ttft_p90_ms": _pct(ttft, 90),
        "ttft_p95_ms": _pct(ttft, 95), "ttft_p99_ms": _pct(ttft, 99),
        "tpot_p50_ms": _pct(tpot, 50), "decode_tps_p50": _pct(dtps, 50),
        "e2e_p50_ms": _pct(e2e, 50), "e2e_p95_ms": _pct(e2e, 95),
        "prompt_tokens": int(ok["prompt_tokens"].fill_null(0).sum()) if n_ok else 0,
        "completion_tokens": int(ok["completion_tokens"].fill_null(0).sum()) if n_ok else 0,
        "cached_tokens": int(ok["cached_tokens"].fill_null(0).sum()) if n_ok else 0,
        "token_source": ",".join(sorted({s for s in g["token_source"].to_list() if s})),
        "cost_usd": cost_total,
        "cost_per_request_usd": (cost_total / sent) if cost_total is not None and sent else None,
        "cost_per_1k_requests_usd": (cost_total * 1000 / sent) if cost_total is not None and sent else None,
        "list_cost_usd": list_total,
        "billed_minus_list_usd": (cost_total - list_total
                                  if cost_total is not None and list_total is not None else None),
        "providers": ",".join(sorted({p for p in g["provider"].to_list() if p})),
    }
    for q in (50, 90, 99):
        lo, hi = _ci(ttft, q)
        row[f"ttft_p{q}_ci_lo_ms"], row[f"ttft_p{q}_ci_hi_ms"] = lo, hi
    row["small_n"] = len(ttft) < stats.min_n_for(99)
    checked = ok.filter(pl.col("passed").is_not_null())
    if checked.height:
        passes = int(checked["passed"].sum())
        lo, hi = stats.wilson_interval(passes, checked.height)
        row["pass_rate"] = passes / checked.height
        row["pass_rate_ci_lo"], row["pass_rate_ci_hi"] = lo, hi
        row["cost_per_correct_usd"] = (cost_total / passes) if cost_total is not None and passes else None
        good = [v for v, p in zip(ok["e2e_ms"].to_list(), ok["passed"].to_list()) if p and v is not None]
        row["e2e_p50_correct_ms"] = _pct(good, 50)
    else:
        row["pass_rate"] = row["pass_rate_ci_lo"] = row["pass_rate_ci_hi"] = None
        row["cost_per_correct_usd"] = row["e2e_p50_correct_ms"] = None
    return row


def summarize(frame: pl.DataFrame, exclude_cold: bool = False) -> list[dict[str, Any]]:
    """One dict per model x provider variant x endpoint, plus a TOTAL row last.

    ``cold_connections`` counts ok requests that paid a connect inside their TTFT;
    ``exclude_cold`` leaves them out of the latency percentiles (not out of n or cost)."""
    rows = current_rows(frame)
    out: list[dict[str, Any]] = []
    if rows.is_empty():
        return out
    for key, g in rows.group_by(GROUP_COLS, maintain_order=True):
        d = dict(zip(GROUP_COLS, key))
        d["group"] = f"{d['model']} [{d['provider_variant']}]"
        d.update(summarize_group(g, exclude_cold))
        out.append(d)
    total = {"model": "TOTAL", "provider_variant": "", "endpoint": "", "group": "TOTAL"}
    total.update(summarize_group(rows, exclude_cold))
    out.append(total)
    return out


def run_summary(store: Store, run_id: str, exclude_cold: bool = False) -> list[dict[str, Any]]:
    return summarize(store.requests_frame(run_id), exclude_cold)


SHOW_COLUMNS = [
    "group", "n", "ok", "error_rate", "rate_limited_rate", "retries_429", "ttft_p50_ms", "ttft_p50_ci_lo_ms",
    "ttft_p50_ci_hi_ms", "ttft_p90_ms", "ttft_p99_ms", "tpot_p50_ms", "decode_tps_p50",
    "e2e_p50_ms", "e2e_p95_ms", "prompt_tokens", "completion_tokens", "cost_usd",
    "cost_per_request_usd", "billed_minus_list_usd", "pass_rate",
]
"""The summary fields a table shows (the JSON and CSV carry every field)."""


def _ttft_with_ci(row: dict[str, Any]) -> str:
    """p50 with its 95% CI in one cell, '560 (464-841)'; the CI is absent at small n."""
    from bench.results.render import num

    p50, lo, hi = row.get("ttft_p50_ms"), row.get("ttft_p50_ci_lo_ms"), row.get("ttft_p50_ci_hi_ms")
    if p50 is None:
        return ""
    return num(p50) if lo is None or hi is None else f"{num(p50)} ({num(lo)}-{num(hi)})"


def summary_columns(summary: list[dict[str, Any]]) -> list[Any]:
    """The table's columns in reading order; ``priority`` says which survive a narrow terminal."""
    from bench.results.render import Column, integer, num, rate, usd

    cols = [
        Column("group", "model [provider]", priority=0, min_width=20, align="left"),
        Column("n", fmt=integer, priority=1), Column("ok", fmt=integer, priority=1),
        Column("error_rate", "errors", rate, priority=2),
        Column("rate_limited_rate", "429s", rate, priority=9),
        Column("retries_429", "retried", integer, priority=14),
        Column("ttft_p50_ci", "TTFT p50 ms (CI)", priority=1, align="right"),
        Column("ttft_p90_ms", "TTFT p90", num, priority=10),
        Column("ttft_p99_ms", "TTFT p99", num, priority=11),
        Column("tpot_p50_ms", "TPOT ms", num, priority=7),
        Column("decode_tps_p50", "tok/s", num, priority=6),
        Column("e2e_p50_ms", "e2e p50 ms", num, priority=3),
        Column("e2e_p95_ms", "e2e p95 ms", num, priority=8),
        Column("prompt_tokens", "in tok", integer, priority=12),
        Column("completion_tokens", "out tok", integer, priority=12),
        Column("cost_usd", "cost", usd, priority=4),
        Column("cost_per_1k_requests_usd", "$/1k req", usd, priority=5),
        Column("cost_per_request_usd", "$/req", usd, priority=13),
        Column("billed_minus_list_usd", "billed-list", usd, priority=13),
    ]
    if any(r.get("pass_rate") is not None for r in summary):
        cols.append(Column("pass_rate", "pass", rate, priority=2))
    return cols


def summary_head(run: RunRecord) -> str:
    head = f"run {run['run_id']} ({run['status']}"
    head += f": {run['status_reason']})" if run.get("status_reason") else ")"
    if run.get("simulated"):
        head += "  [SIMULATED: sandbox data, not real providers]"
    return head


def summary_table(summary: list[dict[str, Any]], run: RunRecord,
                  width: int | None = None) -> tuple[str, list[str]]:
    """The head line and the table fitted to ``width`` (None: every column), and the hidden headers."""
    from bench.results.render import fit_table

    rows = [dict(r, ttft_p50_ci=_ttft_with_ci(r)) for r in summary]
    table, hidden = fit_table(rows, summary_columns(summary), width)
    return summary_head(run) + "\n" + table, hidden


def summary_notes(summary: list[dict[str, Any]]) -> list[str]:
    """What a reader must know to read the numbers (small n, cold connections)."""
    notes = []
    if any(r.get("small_n") for r in summary if r["group"] != "TOTAL"):
        notes.append("note: fewer than ~100 ok requests per group: p99 is not bounded (no CI); read p50 first")
    total = next((r for r in summary if r["group"] == "TOTAL"), None)
    if total and total.get("cold_connections"):
        how = ("left out of the latency percentiles" if total.get("cold_excluded")
               else "their TTFT includes the connect; orbench show --exclude-cold leaves them out")
        notes.append(f"note: {total['cold_connections']} ok requests opened a new connection "
                     f"(the server closed one, or no warm-up): {how}")
    return notes


def summary_text(summary: list[dict[str, Any]], run: RunRecord, width: int | None = None) -> str:
    """Head, table and notes as one text (the table fitted to ``width`` when given)."""
    table, _ = summary_table(summary, run, width)
    return "\n".join([table, *summary_notes(summary)])


def summary_markdown(summary: list[dict[str, Any]], run: RunRecord) -> str:
    from bench.results.render import _cell

    cols = ["group", "n", "ok", "error_rate", "ttft_p50_ms", "ttft_p95_ms", "e2e_p50_ms",
            "decode_tps_p50", "cost_usd", "pass_rate"]
    title = f"### orbench run `{run['run_id']}` — {run.get('suite_name') or ''} ({run['status']})"
    if run.get("simulated"):
        title += " — simulated"
    lines = [title, "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in summary:
        lines.append("| " + " | ".join(_cell(r.get(c)) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def summary_json(summary: list[dict[str, Any]], run: RunRecord,
                 results: list[GateResult]) -> dict[str, Any]:
    return {
        "run_id": run["run_id"],
        "status": run["status"],
        "status_reason": run.get("status_reason"),
        "simulated": bool(run.get("simulated")),
        "groups": [_jsonable(r) for r in summary],
        "gates": [{"group": r.group, "gate": r.gate.text, "observed": r.observed,
                   "failed": r.failed} for r in results],
        "gates_failed": sum(r.failed for r in results),
    }


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(d, default=str))
    return out

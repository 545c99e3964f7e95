"""How ``show``, ``run``, ``check`` and ``--summary-md`` print the summary, and the current rows.

The numbers are ``bench.results.summary``'s (one definition, SQL over ``requests_current``); this module
only lays them out: a table fitted to the terminal, its notes, Markdown and the JSON of
``orbench run --json``. ``current_rows`` picks the newest row of each planned request from a
per-request frame (exports, re-scoring, JUnit cases), warm-ups dropped unless asked for.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from bench.results.gates import GateResult
from bench.store.runs import RunRecord

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


SHOW_COLUMNS = [
    "group", "n", "ok", "error_rate", "rate_limited_rate", "retries_429", "ttft_p50_ms", "ttft_p50_ci_lo_ms",
    "ttft_p50_ci_hi_ms", "ttft_p90_ms", "ttft_p99_ms", "tpot_p50_ms", "decode_tps_p50",
    "e2e_p50_ms", "e2e_p95_ms", "prompt_tokens", "completion_tokens", "cost_usd",
    "cost_per_request_usd", "billed_minus_list_usd", "pass_rate", "cost_per_conversation_usd", "cache_discount_pct",
]
"""The summary fields a table shows (the JSON and CSV carry every field)."""


def _ttft_with_ci(row: Mapping[str, Any]) -> str:
    """p50 with its 95% CI in one cell, '560 (464-841)'; the CI is absent at small n."""
    from bench.results.render import num

    p50, lo, hi = row.get("ttft_p50_ms"), row.get("ttft_p50_ci_lo_ms"), row.get("ttft_p50_ci_hi_ms")
    if p50 is None:
        return ""
    return num(p50) if lo is None or hi is None else f"{num(p50)} ({num(lo)}-{num(hi)})"


def summary_columns(summary: Sequence[Mapping[str, Any]]) -> list[Any]:
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
    if any(r.get("cost_per_conversation_usd") is not None for r in summary):  # bench.results.conversations
        cols += [Column("cost_per_conversation_usd", "$/conv", usd, priority=4),
                 Column("cache_discount_pct", "cache saved %", num, priority=5),
                 Column("switches", "switches", integer, priority=9)]
    if any(r.get("pass_rate") is not None for r in summary):
        cols.append(Column("pass_rate", "pass", rate, priority=2))
    return cols


def summary_head(run: RunRecord) -> str:
    head = f"run {run['run_id']} ({run['status']}"
    head += f": {run['status_reason']})" if run.get("status_reason") else ")"
    if run.get("simulated"):
        head += "  [SIMULATED: sandbox data, not real providers]"
    return head


def connection_note(run: RunRecord) -> str | None:
    """Which connection mode ran (the run's settings), in words; None for runs that predate it."""
    mode = (run.get("settings") or {}).get("connections")
    if mode == "cold":
        return ("note: cold connections (--cold-connections): each connection's first request "
                "carries the connect in its TTFT")
    if mode == "prewarmed":
        return "note: connections were opened before the measured phase (--cold-connections measures cold starts)"
    return None


def summary_table(summary: Sequence[Mapping[str, Any]], run: RunRecord,
                  width: int | None = None) -> tuple[str, list[str]]:
    """The head line and the table fitted to ``width`` (None: every column), and the hidden headers."""
    from bench.results.render import fit_table

    rows = [dict(r, ttft_p50_ci=_ttft_with_ci(r)) for r in summary]
    table, hidden = fit_table(rows, summary_columns(summary), width)
    return summary_head(run) + "\n" + table, hidden


def summary_notes(summary: Sequence[Mapping[str, Any]], run: RunRecord | None = None) -> list[str]:
    """What a reader must know to read the numbers (connection mode, small n, cold connections)."""
    mode = connection_note(run) if run is not None else None
    notes = [mode] if mode else []
    if any(r.get("small_n") for r in summary if r["group"] != "TOTAL"):
        notes.append("note: fewer than ~100 ok requests per group: p99 is not bounded (no CI); read p50 first")
    total = next((r for r in summary if r["group"] == "TOTAL"), None)
    if total and total.get("cold_connections"):
        how = ("left out of the latency percentiles" if total.get("cold_excluded")
               else "their TTFT includes the connect; orbench show --exclude-cold leaves them out")
        notes.append(f"note: {total['cold_connections']} ok requests opened a new connection "
                     f"(the server closed one, or closes each after its answer, or --cold-connections): {how}")
    if total and total.get("fresh_connections"):
        notes.append(f"note: {total['fresh_connections']} requests needed a fresh connection: the server had "
                     "closed their pooled one (resent at once, no backoff; retry_reasons in each row says how)")
    return notes


def summary_text(summary: list[dict[str, Any]], run: RunRecord, width: int | None = None) -> str:
    """Head, table and notes as one text (the table fitted to ``width`` when given)."""
    table, _ = summary_table(summary, run, width)
    return "\n".join([table, *summary_notes(summary)])


def summary_markdown(summary: Sequence[Mapping[str, Any]], run: RunRecord) -> str:
    from bench.results.render import cell_text

    cols = ["group", "n", "ok", "error_rate", "ttft_p50_ms", "ttft_p95_ms", "e2e_p50_ms",
            "decode_tps_p50", "cost_usd", "pass_rate"]
    title = f"### orbench run `{run['run_id']}` — {run.get('suite_name') or ''} ({run['status']})"
    if run.get("simulated"):
        title += " — simulated"
    lines = [title, "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in summary:
        lines.append("| " + " | ".join(cell_text(r.get(c)) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def summary_json(summary: Sequence[Mapping[str, Any]], run: RunRecord,
                 results: list[GateResult]) -> dict[str, Any]:
    return {
        "run_id": run["run_id"],
        "status": run["status"],
        "status_reason": run.get("status_reason"),
        "simulated": bool(run.get("simulated")),
        "connections": (run.get("settings") or {}).get("connections"),
        "groups": [_jsonable(r) for r in summary],
        "gates": [{"group": r.group, "gate": r.gate.text, "observed": r.observed,
                   "failed": r.failed} for r in results],
        "gates_failed": sum(r.failed for r in results),
    }


def _jsonable(d: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(d, default=str))
    return out

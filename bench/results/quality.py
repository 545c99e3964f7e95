"""Pass rates of stored runs: per group with Wilson intervals and the quality frontier, and
each case's answers with the reasons its checks failed (the dashboard's Quality page, the
HTML report). Checks themselves are evaluated by ``bench.quality``; this only reads verdicts.
"""

from __future__ import annotations

import json

import polars as pl

from bench.results.filters import Filters
from bench.results.stats import wilson_interval
from bench.store.store import Store

_QUALITY = """
WITH cur AS (SELECT *, {prov} AS prov, outcome = 'ok' AS is_ok FROM requests WHERE {where})
SELECT model, prov AS provider,
    count(*) FILTER (WHERE is_ok) AS n_ok,
    count(passed) FILTER (WHERE is_ok) AS n_checked,
    count(*) FILTER (WHERE is_ok AND passed) AS n_passed,
    sum(coalesce(cost_usd, list_cost_usd)) AS cost_usd,
    quantile_cont(ttft_ms, 0.5) FILTER (WHERE is_ok) AS ttft_p50_ms,
    quantile_cont(e2e_ms, 0.5) FILTER (WHERE is_ok) AS e2e_p50_ms,
    quantile_cont(e2e_ms, 0.5) FILTER (WHERE is_ok AND passed) AS e2e_p50_correct_ms
FROM cur GROUP BY ALL ORDER BY model, provider
"""


def pareto_flags(points: list[tuple[float | None, ...]], better: tuple[str, ...]) -> list[bool]:
    """Non-dominated points; ``better`` says per coordinate "high" or "low" is better.

    A point is dominated when another is at least as good in every coordinate and
    strictly better in one. Points with a missing coordinate are never on the frontier.
    """
    sign = [1.0 if b == "low" else -1.0 for b in better]
    norm = [None if any(v is None for v in p) else [s * float(v) for s, v in zip(sign, p)]  # type: ignore[arg-type]
            for p in points]
    flags = []
    for i, p in enumerate(norm):
        if p is None:
            flags.append(False)
            continue
        dominated = any(
            j != i and q is not None and all(a <= b for a, b in zip(q, p)) and any(a < b for a, b in zip(q, p))
            for j, q in enumerate(norm)
        )
        flags.append(not dominated)
    return flags


def quality_groups(store: Store, f: Filters) -> pl.DataFrame:
    """Per model x provider: pass rate with a 95 % Wilson interval, cost per correct answer,
    p50 latency of correct answers, and the Pareto frontier of (pass rate, p50 e2e, cost per correct)."""
    frame = store.query(_QUALITY.format(prov=f.prov, where=f.where()), f.params())
    if frame.is_empty():
        return frame
    rows = []
    for r in frame.iter_rows(named=True):
        lo, hi = wilson_interval(r["n_passed"], r["n_checked"]) if r["n_checked"] else (None, None)
        cost = None if r["cost_usd"] is None else float(r["cost_usd"])
        rows.append({
            **r,
            "cost_usd": cost,
            "group": f"{r['model']} · {r['provider']}",
            "pass_rate": r["n_passed"] / r["n_checked"] if r["n_checked"] else None,
            "pass_rate_ci_lo": lo, "pass_rate_ci_hi": hi,
            "cost_per_correct_usd": cost / r["n_passed"] if cost is not None and r["n_passed"] else None,
        })
    flags = pareto_flags([(r["pass_rate"], r["e2e_p50_ms"], r["cost_per_correct_usd"]) for r in rows],
                         ("high", "low", "low"))
    for r, flag in zip(rows, flags):
        r["on_frontier"] = flag
    return pl.DataFrame(rows, infer_schema_length=None)


_CASE_ANSWERS = """
SELECT model, {prov} AS provider, repeat, outcome, passed, score, output_text, tool_calls_json,
       check_detail, e2e_ms
FROM requests WHERE {where} AND case_id = $case_id
ORDER BY model, provider, repeat
"""


def case_answers(store: Store, f: Filters, case_id: str) -> pl.DataFrame:
    """Every answer to one case with its verdict and the reasons of its failed checks."""
    frame = store.query(_CASE_ANSWERS.format(prov=f.prov, where=f.where()), f.params() | {"case_id": case_id})
    reasons = []
    for detail in frame["check_detail"].to_list() if frame.height else []:
        failed = [f"{c.get('kind')}: {c.get('reason')}" for c in json.loads(detail or "[]")
                  if c.get("passed") is False]
        reasons.append("; ".join(failed))
    if frame.height:
        frame = frame.with_columns(pl.Series("reasons", reasons, dtype=pl.String),
                                   pl.concat_str([pl.col("model"), pl.lit(" · "), pl.col("provider")]).alias("group"))
    return frame


def cases_with_failures(store: Store, f: Filters) -> list[str]:
    """Cases that have checked answers, the ones with most failures first."""
    frame = store.query(
        f"SELECT case_id, count(*) FILTER (WHERE NOT passed) AS failed FROM requests "
        f"WHERE {f.where()} AND passed IS NOT NULL GROUP BY case_id ORDER BY failed DESC, case_id",
        f.params())
    return frame["case_id"].to_list() if frame.height else []

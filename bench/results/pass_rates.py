"""Pass rates of stored runs: per group with Wilson intervals and the quality frontier, and
each case's answers with the reasons its checks failed (the dashboard's Quality page, the
HTML report). Checks themselves are evaluated by ``bench.quality``; this only reads verdicts.
"""

from __future__ import annotations

import json

import polars as pl

from bench.results.filters import Filters
from bench.store.store import Store


def pareto_flags(points: list[tuple[float | None, ...]], better: tuple[str, ...]) -> list[bool]:
    """Non-dominated points; ``better`` says per coordinate "high" or "low" is better.

    A point is dominated when another is at least as good in every coordinate and
    strictly better in one. Points with a missing coordinate are never on the frontier.
    """
    sign = [1.0 if b == "low" else -1.0 for b in better]
    norm = [None if any(v is None for v in p) else [s * float(v) for s, v in zip(sign, p) if v is not None]
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


def quality_groups(groups: pl.DataFrame) -> pl.DataFrame:
    """Per model x provider (the summary's groups): pass rate with its 95 % Wilson interval, cost
    per correct answer, p50 latency of correct answers, and the Pareto frontier of (pass rate,
    p50 e2e, cost per correct)."""
    if groups.is_empty():
        return groups
    q = groups.select(
        "group", "model", "provider", pl.col("ok").alias("n_ok"), "n_checked", "n_passed",
        pl.col("cost_usd").cast(pl.Float64), "pass_rate", "pass_rate_ci_lo", "pass_rate_ci_hi",
        pl.col("cost_per_correct_usd").cast(pl.Float64), "ttft_p50_ms", "e2e_p50_ms", "e2e_p50_correct_ms",
    )
    flags = pareto_flags(list(zip(q["pass_rate"], q["e2e_p50_ms"], q["cost_per_correct_usd"])),
                         ("high", "low", "low"))
    return q.with_columns(pl.Series("on_frontier", flags, dtype=pl.Boolean))


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

#!/usr/bin/env python3
"""Seed a large orbench database (default 1,000,000 request rows) for dashboard timing.

The schema comes from ``bench.store.migrations``, the store's own steps (``Store.init`` is
avoided: it would also ingest any run journal lying in the same folder). The rows
are generated inside DuckDB from ``range()`` in one ``INSERT ... BY NAME SELECT``
(seconds, not the hours a Python loop would take). Latencies are log-normal per model x provider,
with ~2 % provider errors and ~1 % 429s, reported and list cost as DECIMAL, a
pass/fail verdict on half the cases, and a few catalog snapshots for the price
history. Every run is marked simulated: these numbers are invented. Then each run's
per-run aggregates are built, as the engine does when a run ends (``--no-aggregates``
leaves them out: the dashboard then builds them on the first big read).

    .venv/bin/python scripts/seed_big_db.py data/big.duckdb --rows 1000000 --runs 10
    ORBENCH_DB=data/big.duckdb .venv/bin/streamlit run dashboard/app.py
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.store.migrations import migrate  # noqa: E402
from bench.store.store import Store  # noqa: E402

MODELS = [  # id, TTFT base ms, e2e base ms, decode tok/s, prompt $/token, completion $/token
    ("openai/gpt-4o-mini", 420, 1600, 95, "0.00000015", "0.0000006"),
    ("google/gemini-2.5-flash", 380, 1300, 140, "0.0000003", "0.0000025"),
    ("anthropic/claude-haiku-4.5", 650, 2100, 85, "0.000001", "0.000005"),
    ("meta-llama/llama-3.3-70b-instruct", 300, 1900, 70, "0.00000013", "0.0000004"),
    ("mistralai/mistral-small-3.2-24b-instruct", 350, 1200, 120, "0.00000005", "0.0000001"),
    ("qwen/qwen3-32b", 500, 2600, 60, "0.00000008", "0.00000024"),
]
VARIANTS = [("default", "OpenAI (simulated)", 1.0), ("fast", "Groq (simulated)", 0.7),
            ("cheap", "DeepInfra (simulated)", 1.35)]
CASES = 40

_INSERT = """
INSERT INTO requests BY NAME
WITH base AS (
    SELECT i,
        i // $per_run AS run_no,
        i % $per_run AS idx,
        (i % $n_models) AS m,
        ((i // $n_models) % $n_variants) AS v,
        ((i // ($n_models * $n_variants)) % $n_cases) AS c,
        random() AS u1, random() AS u2, random() AS u3, random() AS u4, random() AS u5
    FROM range($rows) AS t(i)
), shaped AS (
    SELECT *,
        $runs_ids[run_no + 1] AS run_id,
        $models[m + 1] AS model,
        $variants[v + 1] AS variant,
        $served[v + 1] AS served,
        $ttft[m + 1] * $speed[v + 1] AS ttft_base,
        $e2e[m + 1] * $speed[v + 1] AS e2e_base,
        $tps[m + 1] / $speed[v + 1] AS tps_base,
        CASE WHEN u3 < 0.01 THEN 'rate_limited' WHEN u3 < 0.03 THEN 'provider_error' ELSE 'ok' END AS outcome,
        sqrt(-2 * ln(greatest(u1, 1e-12))) AS radius
    FROM base
), timed AS (
    SELECT *,
        exp(ln(ttft_base) + 0.35 * radius * cos(2 * pi() * u2)) * (1 + 0.3 * idx / $per_run)
            * CASE WHEN v = 1 THEN 1 + 0.04 * run_no ELSE 1 END AS ttft,  -- 'fast' slows run by run
        tps_base * (0.8 + 0.4 * u5) AS tps,
        200 + c * 7 AS p_tok,
        60 + CAST(u4 * 250 AS BIGINT) AS c_tok,
        CAST($pp[m + 1] AS DECIMAL(38,18)) AS pp, CAST($cp[m + 1] AS DECIMAL(38,18)) AS cp,
        CAST($cost_bias[v + 1] AS DECIMAL(38,18)) AS bias,
        outcome = 'ok' AS ok
    FROM shaped
), priced AS (
    SELECT *, ttft + (c_tok - 1) * 1000.0 / tps AS e2e,
           CAST(p_tok * pp + c_tok * cp AS DECIMAL(38,18)) AS list_usd
    FROM timed
)
SELECT
    run_id, idx AS request_idx, model, variant AS provider_variant, 'openrouter' AS endpoint,
    'case-' || lpad(CAST(c AS VARCHAR), 2, '0') AS case_id,
    CAST(idx // ($n_models * $n_variants * $n_cases) AS BIGINT) AS repeat,
    false AS is_warmup, outcome, model AS served_model, served AS provider,
    CASE outcome WHEN 'ok' THEN 200 WHEN 'rate_limited' THEN 429 ELSE 502 END AS http_status,
    CASE WHEN ok THEN 1 ELSE 4 END AS attempts,
    $t0 + to_milliseconds(CAST((idx // 16) * 1700 AS BIGINT)) AS started_at,
    (idx // 16) * 1700 + u5 * 300 AS t_start_ms,  -- ~16 in flight
    CASE WHEN ok THEN ttft END AS ttft_ms,
    CASE WHEN ok THEN ttft END AS ttfa_ms,
    CASE WHEN ok THEN ttft * 0.9 END AS ttfb_ms,
    CASE WHEN ok THEN 1000.0 / tps END AS tpot_ms,
    CASE WHEN ok THEN e2e END AS e2e_ms,
    CASE WHEN ok THEN e2e + 3 ELSE 40 + u5 * 200 END AS done_ms,
    CASE WHEN ok THEN tps END AS decode_tps,
    CASE WHEN ok THEN c_tok * 1000.0 / e2e END AS e2e_tps,
    CASE WHEN ok THEN p_tok END AS prompt_tokens,
    CASE WHEN ok THEN c_tok END AS completion_tokens,
    CASE WHEN ok THEN 0 END AS reasoning_tokens,
    CASE WHEN ok THEN 0 END AS cached_tokens,
    CASE WHEN ok THEN 'usage' END AS token_source,
    CASE WHEN ok THEN CAST(list_usd * bias AS DECIMAL(38,18)) END AS cost_usd,
    CASE WHEN ok THEN list_usd END AS list_cost_usd,
    CASE WHEN ok THEN 'reported' END AS cost_source,
    CASE WHEN ok THEN 'stop' END AS finish_reason,
    CASE outcome WHEN 'provider_error' THEN 'HTTP 502: simulated upstream error'
                 WHEN 'rate_limited' THEN 'HTTP 429: simulated rate limit' END AS error,
    CASE WHEN ok THEN 'Simulated answer to case ' || c || '.' END AS output_text,
    CASE WHEN ok AND c % 2 = 0 THEN u5 < 0.6 + 0.06 * m END AS passed,
    CASE WHEN ok AND c % 2 = 0 THEN CASE WHEN u5 < 0.6 + 0.06 * m THEN 1.0 ELSE 0.0 END END AS score
FROM priced
"""


def seed(path: Path, rows: int, runs: int, aggregates: bool = True) -> dict[str, float]:
    """Create ``path`` (replacing it) with ``runs`` runs of ``rows`` requests in total."""
    for p in (path, path.with_name(path.name + ".wal")):
        p.unlink(missing_ok=True)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    start = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    per_run = -(-rows // runs)
    run_ids = [f"seed-{k:03d}" for k in range(runs)]
    con = duckdb.connect(str(path))
    try:
        migrate(con, path)
        for k, run_id in enumerate(run_ids):
            con.execute(
                "INSERT INTO runs (run_id, name, suite_name, settings, status, started_at, simulated) "
                "VALUES (?, ?, 'seeded', ?, 'finished', ?, true)",
                [run_id, f"seeded run {k + 1}", json.dumps({"concurrency": 16, "seeded": True}),
                 start + timedelta(days=k)]).fetchall()
        timings["schema_and_runs_s"] = time.perf_counter() - t
        t = time.perf_counter()
        con.execute("SELECT setseed(0.42)").fetchall()
        con.execute(_INSERT, {
            "rows": rows, "per_run": per_run, "runs_ids": run_ids, "t0": start,
            "n_models": len(MODELS), "n_variants": len(VARIANTS), "n_cases": CASES,
            "models": [m[0] for m in MODELS], "ttft": [float(m[1]) for m in MODELS],
            "e2e": [float(m[2]) for m in MODELS], "tps": [float(m[3]) for m in MODELS],
            "pp": [m[4] for m in MODELS], "cp": [m[5] for m in MODELS],
            "variants": [v[0] for v in VARIANTS], "served": [v[1] for v in VARIANTS],
            "speed": [v[2] for v in VARIANTS], "cost_bias": ["1.0", "1.08", "0.92"],
        }).fetchall()
        con.execute(
            "UPDATE runs SET planned = q.n, finished_at = started_at + INTERVAL 2 HOUR "
            "FROM (SELECT run_id, count(*) AS n FROM requests GROUP BY run_id) AS q "
            "WHERE runs.run_id = q.run_id"
        ).fetchall()
        _seed_snapshots(con, start)
        con.execute("CHECKPOINT").fetchall()
    finally:
        con.close()
    timings["insert_s"] = time.perf_counter() - t
    t = time.perf_counter()
    if aggregates:
        Store(path).build_aggregates(run_ids)
    timings["aggregates_s"] = time.perf_counter() - t
    return timings


def _seed_snapshots(con: duckdb.DuckDBPyConnection, start: datetime) -> None:
    """Three catalog snapshots a few days apart; one model gets cheaper in between."""
    for k, factor in enumerate(("1.0", "1.0", "0.8")):
        sid = f"cat-seed-{k}"
        taken = start + timedelta(days=3 * k)
        con.execute("INSERT INTO catalog_snapshots VALUES (?, ?, ?, ?, ?)",
                    [sid, taken, "http://127.0.0.1/sandbox", True, len(MODELS)]).fetchall()
        for i, (model, *_rest, pp, cp) in enumerate(MODELS):
            f = factor if i == 0 else "1.0"
            con.execute(
                "INSERT INTO catalog_prices "
                "(snapshot_id, model_id, prompt, completion, variable, context_length) "
                "VALUES (?, ?, CAST(? AS DECIMAL(38,18)) * CAST(? AS DECIMAL(38,18)), "
                "CAST(? AS DECIMAL(38,18)) * CAST(? AS DECIMAL(38,18)), false, 128000)",
                [sid, model, pp, f, cp, f]).fetchall()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path", nargs="?", default="data/big.duckdb", help="database file to (re)create")
    ap.add_argument("--rows", type=int, default=1_000_000, help="request rows in total")
    ap.add_argument("--runs", type=int, default=10, help="number of runs to spread them over")
    ap.add_argument("--no-aggregates", action="store_true",
                    help="skip the per-run aggregates (the dashboard builds them lazily)")
    args = ap.parse_args(argv)
    if args.rows < 1 or args.runs < 1:
        ap.error("--rows and --runs must be at least 1")
    path = Path(args.path)
    t = time.perf_counter()
    timings = seed(path, args.rows, args.runs, aggregates=not args.no_aggregates)
    size_mb = path.stat().st_size / 1e6
    print(f"seeded {args.rows:,} rows in {args.runs} runs into {path} ({size_mb:.1f} MB) "
          f"in {time.perf_counter() - t:.2f} s (schema+runs {timings['schema_and_runs_s']:.2f} s, "
          f"rows {timings['insert_s']:.2f} s, aggregates {timings['aggregates_s']:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
